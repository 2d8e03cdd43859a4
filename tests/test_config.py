"""The config tree: defaults, presets, JSON files, dotted flags, their precedence, and clear errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cs336_basics.train import build_parser, main
from cs336_basics.training.config import (
    PRESETS,
    DataConfig,
    ModelConfig,
    TrainConfig,
    flat_fields,
    from_dict,
    get_field,
    nest,
    parse_value,
    resolve,
    to_dict,
)


def test_defaults_are_the_assignment_tinystories_settings():
    c = TrainConfig()
    m = c.model
    assert (m.vocab_size, m.context_length, m.d_model, m.d_ff, m.num_layers, m.num_heads, m.rope_theta) == (
        10_000, 256, 512, 1344, 4, 16, 10_000.0)
    assert c.data.batch_size * c.model.context_length * c.total_steps == 327_680_000
    assert "TinyStoriesV2-GPT4-train.txt" in c.data.train_path
    assert isinstance(m, ModelConfig)  # the model's own config class, nested as is


def test_every_preset_resolves_and_tinystories_is_the_defaults():
    for name in PRESETS:
        resolve(name)
    assert resolve("tinystories") == TrainConfig()
    assert resolve("shakespeare").data.train_path == "data/shakespeare.txt.gz"


def test_precedence_defaults_preset_file_flags(tmp_path):
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps({"model": {"d_model": 128, "num_layers": 3}, "run": {"seed": 7}}))
    c = resolve("shakespeare", config_file, {"model": {"d_model": 64}})
    assert c.model.d_model == 64  # flag beats file
    assert c.model.num_layers == 3  # file beats preset (4)
    assert c.model.context_length == PRESETS["shakespeare"]["model"]["context_length"]  # preset beats default
    assert c.optim.beta1 == TrainConfig().optim.beta1  # untouched default
    assert c.run.seed == 7


def test_cli_flags_reach_the_resolved_config(tmp_path, capsys):
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps({"schedule": {"max_lr": 0.01}}))
    argv = ["--preset", "tiny", "--config", str(config_file), "--model.d_model", "48", "--run.compile",
            "--data.max_bytes", "none", "--schedule.min_lr", "1e-5", "--model.norm", "post", "--print-config"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"]["d_model"] == 48 and printed["model"]["norm"] == "post"
    assert printed["run"]["compile"] is True and printed["data"]["max_bytes"] is None
    assert printed["schedule"] == {**printed["schedule"], "max_lr": 0.01, "min_lr": 1e-5}


def test_json_round_trip(tmp_path):
    c = resolve("shakespeare", overrides={"run": {"name": "x"}, "data": {"valid_path": None}})
    assert from_dict(TrainConfig, json.loads(json.dumps(to_dict(c)))) == c


def test_help_lists_every_field_with_its_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no line wrapping inside the help strings
    text = build_parser().format_help()
    defaults = TrainConfig()
    for dotted in flat_fields():
        assert f"--{dotted}" in text
        assert f"default {get_field(defaults, dotted)!r}" in text, dotted
    assert "shakespeare" in text  # the default preset is documented


def test_help_runs_as_a_command():
    out = subprocess.run([sys.executable, "-m", "cs336_basics.train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--model.d_model" in out.stdout and "--resume" in out.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": {"d_modle": 3}}, "unknown config field 'model.d_modle'"),
        ({"nope": 1}, "unknown config field 'nope'"),
        ({"model": {"d_model": "big"}}, "model.d_model: cannot evaluate 'big': unknown name 'big'"),  # an expression
        ({"model": {"d_model": 2.5}}, "model.d_model: expected an integer"),
        ({"run": {"compile": "yes"}}, "run.compile: expected true or false"),
        ({"run": {"dtype": "fp8"}}, "run.dtype: 'fp8' is not one of"),
        ({"model": 3}, "model: expected an object"),
        ({"data": {"batch_size": 0}}, "data.batch_size must be positive"),
        ({"schedule": {"min_lr": 1.0}}, "exceeds schedule.max_lr"),
        ({"model": {"d_model": 100, "num_heads": 3}}, "divisible by num_heads"),  # the model's own check
    ],
)
def test_bad_overrides_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve("shakespeare", overrides=overrides)


def test_bad_preset_and_files(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'gpt5'; choose one of"):
        resolve("gpt5")
    with pytest.raises(ValueError, match="does not exist"):
        resolve("tiny", tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{model: 1")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        resolve("tiny", tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        resolve("tiny", tmp_path / "list.json")


@pytest.mark.parametrize("argv", [["--model.d_model", "abc"], ["--run.dtype", "fp8"], ["--run.wandb", "maybe"]])
def test_bad_flags_are_parser_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--print-config"])
    assert exit_info.value.code == 2
    assert "--" + argv[0][2:] in capsys.readouterr().err


def test_parse_value_examples():
    assert parse_value("256", int, "x") == 256
    assert parse_value("3", float, "x") == 3.0 and isinstance(parse_value("3", float, "x"), float)
    assert parse_value("None", int | None, "x") is None
    assert parse_value("no", bool, "x") is False
    assert parse_value("none", str, "x") == "none"  # a str field takes the text as is
    assert parse_value("ROMEO.\n", str | None, "x") == "ROMEO.\n"
    with pytest.raises(ValueError, match="x: cannot evaluate '1e': not a valid expression"):
        parse_value("1e", float, "x")  # numeric fields also take expressions, checked as they are parsed
    assert parse_value("3e13/flops", int | None, "x") == "3e13/flops"  # evaluated when the config is resolved


def test_nest_inverts_flat_fields():
    flat = {name: get_field(TrainConfig(), name) for name in flat_fields()}
    assert from_dict(TrainConfig, nest(flat)) == TrainConfig()


@given(
    batch_size=st.integers(1, 4096),
    valid_fraction=st.floats(0.001, 0.999, allow_nan=False),
    max_bytes=st.none() | st.integers(1, 2**40),
    cache_dir=st.text(min_size=1, max_size=20),
)
def test_any_valid_data_config_survives_flags_and_json(batch_size, valid_fraction, max_bytes, cache_dir):
    """Printing a value, parsing it back as a flag, and a JSON round trip all give the same config."""
    want = DataConfig(batch_size=batch_size, valid_fraction=valid_fraction, max_bytes=max_bytes, cache_dir=cache_dir)
    types = flat_fields(DataConfig)
    parsed = {}
    for f in dataclasses.fields(DataConfig):
        value = getattr(want, f.name)
        text = value if isinstance(value, str) else json.dumps(value)
        parsed[f.name] = parse_value(text, types[f.name], f.name)
    assert DataConfig(**parsed) == want
    assert from_dict(DataConfig, json.loads(json.dumps(dataclasses.asdict(want)))) == want
