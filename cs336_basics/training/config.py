"""The training configuration: one dataclass tree, named presets, JSON files and dotted command-line overrides.

A run's configuration is resolved in layers, each overriding the one before:

    dataclass defaults (the assignment's TinyStories settings) < preset < --config file < --section.field flags

Presets and config files are the same thing, nested dicts of overrides, e.g. {"model": {"d_model": 256}};
the flag `--model.d_model 256` is the one-key version. The resolved tree is written as JSON into the run directory.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cs336_basics.atomic import atomic_write_text
from cs336_basics.model.config import ModelConfig
from cs336_basics.scaling.expressions import (
    check,
    explain_error,
    numeric_args,
    record_expressions,
    resolve_expressions,
    split_expressions,
)
from cs336_basics.training.config_help import FIELD_HELP


@dataclass
class OptimConfig:
    """AdamW hyperparameters and gradient clipping (max_grad_norm <= 0 disables clipping)."""

    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    max_grad_norm: float = 1.0


@dataclass
class ScheduleConfig:
    """Length of the run and the cosine learning-rate schedule.

    Total steps = max_steps when set, else total_tokens // (batch_size * grad_accum_steps * context_length).
    The learning rate warms up linearly over warmup_frac of the steps, then decays to min_lr at the last step.
    """

    max_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_frac: float = 0.02
    total_tokens: int = 327_680_000
    max_steps: int | None = None


@dataclass
class DataConfig:
    """Where the text comes from and how it becomes batches.

    Plain text or .gz files, documents separated by the special token. Only the first max_bytes of each file are used when set. Without valid_path, the last whole documents
    of train_path (at least valid_fraction of its bytes) are held out for validation. Decompressed, split and
    tokenized files and the trained tokenizer are cached under cache_dir, keyed by everything that shapes them.
    tokenizer "bytes" trains no BPE: ids are the UTF-8 bytes, the special token is 256 (model.vocab_size = 257).
    """

    train_path: str = "data/TinyStoriesV2-GPT4-train.txt"
    valid_path: str | None = "data/TinyStoriesV2-GPT4-valid.txt"
    valid_fraction: float = 0.05
    max_bytes: int | None = None
    tokenizer_dir: str | None = None
    tokenizer: Literal["bpe", "bytes"] = "bpe"
    special_token: str = "<|endoftext|>"
    cache_dir: str = "data/cache"
    batch_size: int = 32
    grad_accum_steps: int = 1


@dataclass
class RunConfig:
    """Everything about the run that does not change the maths: where, on what, and how often to report.

    Checkpoints are written every checkpoint_every steps, at the end, and at checkpoint_steps: a list of steps
    (e.g. [0, 100, 1000]; on the command line "0,100,1000") or "log2" for 0, 1, 2, 4, 8, ... (0 = the
    initialisation). keep_checkpoints=N deletes all but the newest N, never the checkpoint_steps ones; None keeps all.
    """

    name: str | None = None
    out_dir: str = "runs"
    seed: int = 0
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    compile: bool = False
    parallel: Literal["ddp", "fsdp"] = "ddp"  # under torchrun: replicate (DDP) or shard (FSDP2) the model
    log_every: int = 10
    eval_every: int = 500
    eval_batches: int | None = 50
    checkpoint_every: int = 1000
    checkpoint_minutes: float | None = 5.0
    init_from: str | None = None
    checkpoint_steps: list[int] | str | None = None
    keep_checkpoints: int | None = None
    wandb: bool = False
    wandb_project: str = "cs336-basics"
    sample_prompt: str = ""
    sample_tokens: int = 256
    sample_temperature: float = 0.8
    sample_top_p: float = 0.95


def assignment_model() -> ModelConfig:
    """The assignment's TinyStories model: ~17M non-embedding parameters."""
    return ModelConfig(
        vocab_size=10_000, context_length=256, d_model=512, num_layers=4, num_heads=16, d_ff=1344, rope_theta=10_000.0
    )


@dataclass
class TrainConfig:
    """The whole run. Defaults are the assignment's TinyStories settings (32 x 256 tokens x 40k steps)."""

    model: ModelConfig = field(default_factory=assignment_model)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # Fields given as expressions: {"schedule.max_steps": {"expression": "3e13/flops", "value": 2000}} (no "value"
    # while pending). Written with the rest, so config.json shows both; see cs336_basics/scaling/expressions.py.
    expressions: dict[str, Any] = field(default_factory=dict, metadata={"flag": False})

    @property
    def tokens_per_step(self) -> int:
        return self.data.batch_size * self.data.grad_accum_steps * self.model.context_length

    @property
    def total_steps(self) -> int:
        if self.schedule.max_steps is not None:
            return self.schedule.max_steps
        return max(1, self.schedule.total_tokens // self.tokens_per_step)


# Named presets: nested dicts of overrides on top of the defaults, exactly like a --config file.
PRESETS: dict[str, dict[str, Any]] = {
    # The bundled default: all of Shakespeare (5 MB), a few minutes on a 2-core laptop CPU.
    "shakespeare": {
        "model": {"vocab_size": 2048, "context_length": 128, "d_model": 128, "num_layers": 4, "num_heads": 4,
                  "d_ff": 344, "attn_backend": "torch"},
        "schedule": {"max_lr": 3e-3, "min_lr": 3e-4, "warmup_frac": 0.05, "max_steps": 600},
        "data": {"train_path": "data/shakespeare.txt.gz", "valid_path": None, "valid_fraction": 0.05,
                 "batch_size": 32},
        "run": {"log_every": 10, "eval_every": 150, "eval_batches": 10, "checkpoint_every": 150,
                "sample_prompt": "ROMEO.\n", "sample_tokens": 200},
    },
    # Character-level Shakespeare, the classic nanoGPT comparison: a 257-token vocabulary (the 256 bytes and the
    # separator, no merges), so every character of this ASCII corpus is one token. Model and schedule follow
    # nanoGPT's CPU shakespeare_char settings (context 64, batch 12, 4 x 4 heads x 128, 2000 steps at 1e-3).
    "shakespeare-char": {
        "model": {"vocab_size": 257, "context_length": 64, "d_model": 128, "num_layers": 4, "num_heads": 4,
                  "d_ff": 344, "attn_backend": "torch"},
        "schedule": {"max_lr": 1e-3, "min_lr": 1e-4, "warmup_frac": 0.05, "max_steps": 2000},
        "data": {"train_path": "data/shakespeare.txt.gz", "valid_path": None, "valid_fraction": 0.05,
                 "batch_size": 12},
        "run": {"log_every": 10, "eval_every": 250, "eval_batches": 20, "checkpoint_every": 500,
                "sample_prompt": "ROMEO.\n", "sample_tokens": 500},
    },
    # SpaceByte on the bytes of Shakespeare: about 10 CPU-minutes (measured; see the README).
    "spacebyte": {
        "model": {"arch": "spacebyte", "vocab_size": 257, "context_length": 256, "d_model": 128, "num_layers": 2,
                  "num_heads": 4, "d_ff": None, "attention_window": 64, "attn_backend": "torch",
                  "spacebyte": {"d_local": 64, "num_local_layers": 2, "num_local_heads": 2, "global_context": 64,
                                "patching": "spacelike"}},
        "schedule": {"max_lr": 3e-3, "min_lr": 3e-4, "warmup_frac": 0.05, "max_steps": 500},
        "data": {"train_path": "data/shakespeare.txt.gz", "valid_path": None, "valid_fraction": 0.05,
                 "tokenizer": "bytes", "batch_size": 16},
        "run": {"log_every": 10, "eval_every": 125, "eval_batches": 10, "checkpoint_every": 125,
                "sample_prompt": "ROMEO.\n", "sample_tokens": 300},
    },
    # The assignment's TinyStories run: exactly the dataclass defaults.
    "tinystories": {},
    # A few seconds on a CPU: smoke tests and the test suite.
    "tiny": {
        "model": {"vocab_size": 320, "context_length": 32, "d_model": 32, "num_layers": 2, "num_heads": 2, "d_ff": 64},
        "schedule": {"max_lr": 3e-3, "min_lr": 3e-4, "warmup_frac": 0.1, "max_steps": 20},
        "data": {"train_path": "data/shakespeare.txt.gz", "valid_path": None, "valid_fraction": 0.1,
                 "max_bytes": 100_000, "batch_size": 8},
        "run": {"log_every": 5, "eval_every": 10, "eval_batches": 4, "checkpoint_every": 10, "sample_prompt": "ROMEO.\n",
                "sample_tokens": 32},
    },
}
DEFAULT_PRESET = "shakespeare"


# ---------------------------------------------------------------------------------------------------------------
# Converting between the dataclass tree, nested dicts and strings


def _field_types(cls: type) -> dict[str, Any]:
    """A dataclass's field types, with string annotations (from __future__ import annotations) resolved."""
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def coerce(value: Any, tp: Any, name: str) -> Any:
    """Check `value` (from JSON or parsed from a flag) against the annotation `tp`; return it in that type.

    coerce(3, float, "x") -> 3.0;  coerce([0.9, 0.95], tuple[float, float], "x") -> (0.9, 0.95);
    coerce("1", int, "x") -> ValueError (a JSON value must already have the right type).
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, name)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if len(errors) == 1 else f"{name}: {value!r} does not fit {tp}")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{name}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"{name}: expected an object, got {value!r}")
        return dict(value)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ValueError(f"{name}: expected {len(args)} values, got {len(value)}")
            return tuple(coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        return origin(coerce(v, inner, f"{name}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {value!r}")
        return value
    raise ValueError(f"{name}: unsupported field type {tp}")


def parse_value(text: str, tp: Any, name: str) -> Any:
    """Parse a command-line string for a field of type `tp`.

    parse_value("256", int, "model.d_model") -> 256;  parse_value("none", int | None, ...) -> None;
    parse_value("true", bool, ...) -> True;  parse_value("ROMEO.", str, ...) -> "ROMEO.".
    """
    lowered = text.strip().lower()
    allowed = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    if type(None) in allowed and lowered in ("none", "null"):
        return None
    non_none = [a for a in allowed if a is not type(None)]
    if str in non_none or (typing.get_origin(non_none[0]) is Literal and len(non_none) == 1):
        return coerce(text, tp, name)
    if bool in non_none:
        truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if lowered not in truth:
            raise ValueError(f"{name}: expected true or false, got {text!r}")
        return truth[lowered]
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        if typing.get_origin(non_none[0]) in (tuple, list):  # "0.9,0.95"
            value = [json.loads(part) for part in text.split(",")]
        elif numeric_args(tp):  # an expression such as "3e13/flops", evaluated when the config is resolved
            check(text, name)
            return text
        else:
            raise ValueError(f"{name}: cannot parse {text!r} as {tp}") from None
    if isinstance(value, int) and not isinstance(value, bool) and float in non_none and int not in non_none:
        value = float(value)
    return coerce(value, tp, name)


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build the dataclass `cls` from a nested dict; missing fields keep their defaults, unknown keys are errors."""
    if not isinstance(data, dict):
        raise ValueError(f"{prefix.rstrip('.') or 'config'}: expected an object, got {data!r}")
    return merge(cls(), data, prefix)


def merge(obj: Any, overrides: dict[str, Any], prefix: str = "") -> Any:
    """A copy of the dataclass `obj` with the nested `overrides` applied (checked against the field types).

    On a TrainConfig, strings given to numeric fields are recorded as pending expressions (see resolve()).
    """
    if isinstance(obj, TrainConfig):
        overrides, found = split_expressions(overrides)
        pending = set(found) | {f for f, r in obj.expressions.items() if "value" not in r}
        return record_expressions(_merge(obj, overrides, prefix, frozenset(pending)), overrides, found)
    return _merge(obj, overrides, prefix)


def _merge(obj: Any, overrides: dict[str, Any], prefix: str = "", pending: frozenset[str] = frozenset()) -> Any:
    """merge() without the expression bookkeeping. A section with a pending expression may be inconsistent until
    it is resolved (d_model changed, num_heads still the old value), so its own checks wait for resolve()."""
    types_ = _field_types(type(obj))
    changes = {}
    for key, value in overrides.items():
        name = prefix + key
        if key not in types_:
            raise ValueError(f"unknown config field {name!r}; known fields: {', '.join(prefix + k for k in types_)}")
        tp = types_[key]
        if _is_dataclass_type(tp):
            if not isinstance(value, dict):
                raise ValueError(f"{name}: expected an object of fields, got {value!r}")
            changes[key] = _merge(getattr(obj, key), value, name + ".", pending)
        else:
            changes[key] = coerce(value, tp, name)
    try:
        return dataclasses.replace(obj, **changes)
    except ValueError:
        if not any(f.startswith(prefix) for f in pending) or not prefix:
            raise
        unchecked = copy.copy(obj)  # resolve_expressions checks the section again once its values are final
        for key, value in changes.items():
            object.__setattr__(unchecked, key, value)
        return unchecked


def to_dict(config: Any) -> dict[str, Any]:
    """The dataclass tree as plain JSON-able dicts (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def load_config(config: TrainConfig | dict[str, Any]) -> TrainConfig:
    """A TrainConfig from itself or from a nested dict such as a checkpoint's extra["config"].

    Pending expressions are evaluated; resolved ones (a saved config.json) keep their recorded values.
    """
    return resolve_expressions(config if isinstance(config, TrainConfig) else from_dict(TrainConfig, config))


def read_json(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A --config file (or another `what`): a JSON object of (nested) overrides."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path} must hold a JSON object, got {type(data).__name__}")
    return data


def save_json(config: TrainConfig, path: str | Path) -> None:
    atomic_write_text(path, json.dumps(to_dict(config), indent=2) + "\n")


def flat_fields(cls: type = TrainConfig, prefix: str = "") -> dict[str, Any]:
    """Every leaf field as {"model.d_model": type, ...}."""
    out = {}
    types_ = _field_types(cls)
    for f in dataclasses.fields(cls):
        key, tp = f.name, types_[f.name]
        if not f.metadata.get("flag", True):  # not a leaf to set by hand (TrainConfig.expressions)
            continue
        if _is_dataclass_type(tp):
            out.update(flat_fields(tp, f"{prefix}{key}."))
        else:
            out[prefix + key] = tp
    return out


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"model.d_model": 256} -> {"model": {"d_model": 256}}."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def get_field(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def resolve(
    preset: str | None = DEFAULT_PRESET,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    base: TrainConfig | None = None,
) -> TrainConfig:
    """Apply, in order: the defaults (or `base`), the preset, the JSON file, the nested overrides."""
    config = base if base is not None else TrainConfig()
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        config = merge(config, PRESETS[preset])
    if config_file is not None:
        config = merge(config, read_json(config_file))
    if overrides:
        config = merge(config, overrides)
    config = resolve_expressions(config)
    try:
        validate(config)
    except ValueError as e:
        raise explain_error(config, e) from None
    return config


def checkpoint_steps(spec: list[int] | str | None, total_steps: int) -> set[int]:
    """The steps <= total_steps that run.checkpoint_steps asks to keep.

    None -> set();  "log2" -> {0, 1, 2, 4, 8, ...};  [0, 50] or "0,50" or "[0, 50]" -> {0, 50}.
    """
    if spec is None:
        return set()
    if spec == "log2":
        return {0} | {2**k for k in range(total_steps.bit_length()) if 2**k <= total_steps}
    if isinstance(spec, str):
        try:
            spec = [int(part) for part in spec.strip().strip("[]").split(",") if part.strip()]
        except ValueError:
            raise ValueError(f'run.checkpoint_steps: expected "log2" or a list of steps such as 0,100,1000, '
                             f"got {spec!r}") from None
    negative = [step for step in spec if step < 0]
    if negative:
        raise ValueError(f"run.checkpoint_steps: steps must be >= 0, got {negative[0]}")
    return {step for step in spec if step <= total_steps}


def validate(config: TrainConfig) -> None:
    """Cross-field checks that the field types alone cannot express."""
    positive = ["data.batch_size", "data.grad_accum_steps", "run.log_every", "run.eval_every", "run.checkpoint_every",
                "schedule.total_tokens", "model.context_length", "model.vocab_size", "run.checkpoint_minutes"]
    for name in positive:
        if get_field(config, name) is not None and get_field(config, name) <= 0:
            raise ValueError(f"{name} must be positive, got {get_field(config, name)}")
    if config.schedule.max_steps is not None and config.schedule.max_steps <= 0:
        raise ValueError(f"schedule.max_steps must be positive, got {config.schedule.max_steps}")
    if not 0.0 <= config.schedule.warmup_frac <= 1.0:
        raise ValueError(f"schedule.warmup_frac must be in [0, 1], got {config.schedule.warmup_frac}")
    if config.schedule.min_lr > config.schedule.max_lr:
        raise ValueError(f"schedule.min_lr ({config.schedule.min_lr}) exceeds schedule.max_lr "
                         f"({config.schedule.max_lr})")
    checkpoint_steps(config.run.checkpoint_steps, config.total_steps)  # raises on a malformed spec
    if config.run.keep_checkpoints is not None and config.run.keep_checkpoints < 1:
        raise ValueError(f"run.keep_checkpoints must be >= 1 (or none to keep all), got {config.run.keep_checkpoints}")
    if config.data.valid_path is None and not 0.0 < config.data.valid_fraction < 1.0:
        raise ValueError(f"data.valid_fraction must be in (0, 1), got {config.data.valid_fraction}")
    if config.data.tokenizer == "bytes" and config.model.vocab_size != 257:
        raise ValueError(f"data.tokenizer 'bytes' has 256 byte ids + 1 special token "
                         f"({config.data.special_token}), so model.vocab_size must be 257, got "
                         f"{config.model.vocab_size}")
    if config.data.tokenizer == "bytes" and config.data.tokenizer_dir is not None:
        raise ValueError("data.tokenizer_dir loads a BPE tokenizer; leave it unset with data.tokenizer 'bytes'")
    if config.model.arch == "spacebyte" and config.data.tokenizer != "bytes":
        raise ValueError("model.arch 'spacebyte' reads bytes: set data.tokenizer to 'bytes' (and model.vocab_size "
                         "to 257)")


# ---------------------------------------------------------------------------------------------------------------
# Command line


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "{" + ",".join(map(str, typing.get_args(tp))) + "}"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def add_config_arguments(parser: argparse.ArgumentParser, preset_for_help: str | None = DEFAULT_PRESET) -> None:
    """One `--section.field VALUE` flag per leaf of the tree; help shows the default and the preset's value."""
    defaults = TrainConfig()
    preset = merge(defaults, PRESETS[preset_for_help]) if preset_for_help else defaults
    groups: dict[str, argparse._ArgumentGroup] = {}
    for dotted, tp in flat_fields().items():
        section = dotted.split(".")[0]
        if section not in groups:
            cls_name = type(getattr(defaults, section)).__name__
            groups[section] = parser.add_argument_group(f"--{section}.* fields ({cls_name})")
        default, in_preset = get_field(defaults, dotted), get_field(preset, dotted)
        text = f"{FIELD_HELP.get(dotted, '')} [{_type_name(tp)}; default {default!r}"
        if preset_for_help and in_preset != default:
            text += f", {preset_for_help} preset {in_preset!r}"
        text = (text + "]").replace("%", "%%")
        kwargs: dict[str, Any] = dict(dest=dotted, default=argparse.SUPPRESS, metavar="V", help=text)
        if tp is bool:
            kwargs.update(nargs="?", const="true")
        groups[section].add_argument(f"--{dotted}", **kwargs)


def overrides_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> dict[str, Any]:
    """The nested overrides given as --section.field flags, parsed to their field types."""
    fields = flat_fields()
    flat = {}
    for dotted, text in vars(args).items():
        if dotted in fields:
            try:
                flat[dotted] = parse_value(text, fields[dotted], dotted)
            except ValueError as e:
                if parser is None:
                    raise
                parser.error(f"--{e}")
    return nest(flat)
