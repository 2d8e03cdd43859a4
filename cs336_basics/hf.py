"""Hugging Face interop: export a trained TransformerLM as a Llama folder, and load a Llama folder back.

    export(run_or_checkpoint, out_dir)  -> out_dir/config.json, model.safetensors, generation_config.json,
                                           tokenizer.json, tokenizer_config.json
    load_llama(folder)                  -> TransformerLM (also TransformerLM.from_hf(folder))
    tokenizer_from_hf(folder)           -> Tokenizer

Our default model *is* a Llama (pre-norm RMSNorm, SwiGLU, RoPE, no biases), so the weights map one to one except
for RoPE's pairing: we rotate interleaved pairs (2k, 2k+1) of each head, Llama rotates halves (k, k + d/2), both
at frequency θ^(-2k/d). Permuting the rows of W_q and W_k within each head, our row 2k+j -> Llama row j·d/2 + k,
makes the two compute the same attention scores (q·k is invariant under the same permutation of q and k).

Only what Llama expresses is exported; other variants are refused naming the setting. Nothing here needs
`transformers`: the folder is plain JSON plus safetensors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from einops import rearrange
from torch import Tensor

from cs336_basics.model import ModelConfig, TransformerLM
from cs336_basics.tokenizer import Tokenizer
from cs336_basics.tokenizer.io import CHAR_TO_BYTE, token_to_str
from cs336_basics.training.checkpoint import find_latest_checkpoint, read_checkpoint, restore_checkpoint

EOT = "<|endoftext|>"


# ---------------------------------------------------------------------------------------------------------------
# What Llama can express


def unsupported(config: dict[str, Any]) -> str | None:
    """The first setting of a run's config (as saved in a checkpoint) that Llama cannot express, as a sentence;
    None if the model exports. Takes the whole config so that data settings (the tokenizer) are checked too."""
    model, data = config.get("model", {}), config.get("data", {})
    rules = [
        (model.get("arch", "transformer") != "transformer", "model.arch", "Llama is a plain Transformer"),
        (data.get("tokenizer", "bpe") != "bpe", "data.tokenizer", "the export writes a byte-level BPE tokenizer"),
        (model.get("norm", "pre") != "pre", "model.norm", "Llama is pre-norm"),
        (model.get("positions", "rope") != "rope", "model.positions", "Llama uses RoPE"),
        (model.get("ffn", "swiglu") != "swiglu", "model.ffn", "Llama's feed-forward is SwiGLU"),
        (model.get("attention_window") is not None, "model.attention_window", "Llama attends to all positions"),
    ]
    for bad, name, why in rules:
        if bad:
            key = name.split(".")[1]
            value = (model if name.startswith("model") else data).get(key)
            return f"{name}={value!r} cannot be exported to the Llama format: {why}"
    return None


def llama_config(config: ModelConfig, eot_id: int | None = None) -> dict[str, Any]:
    """config.json of the LlamaForCausalLM with our shape (the end-of-text token doubles as bos/eos)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.resolved_d_ff,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_heads,
        "head_dim": config.d_head,
        "max_position_embeddings": config.context_length,
        "rms_norm_eps": config.eps,
        "rope_theta": config.rope_theta,
        "rope_scaling": None,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "torch_dtype": "float32",
    }


def model_config_from_llama(hf: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """The ModelConfig of a Llama config.json; a ValueError naming the first field we cannot represent."""
    if hf.get("model_type") != "llama":
        raise ValueError(f"{source}: model_type {hf.get('model_type')!r} is not 'llama'")
    heads = hf["num_attention_heads"]
    checks = [
        ("num_key_value_heads", hf.get("num_key_value_heads", heads), heads, "grouped-query attention"),
        ("hidden_act", hf.get("hidden_act", "silu"), "silu", "another activation"),
        ("attention_bias", hf.get("attention_bias", False), False, "attention biases"),
        ("mlp_bias", hf.get("mlp_bias", False), False, "feed-forward biases"),
        ("head_dim", hf.get("head_dim") or hf["hidden_size"] // heads, hf["hidden_size"] // heads,
         "a head dimension other than hidden_size / num_attention_heads"),
    ]
    rope = hf.get("rope_scaling") or hf.get("rope_parameters") or {}
    checks.append(("rope_type", rope.get("rope_type", rope.get("type", "default")), "default", "scaled RoPE"))
    for name, got, want, what in checks:
        if got != want:
            raise ValueError(f"{source}: {name}={got!r} ({what}) is not supported by TransformerLM")
    theta = hf.get("rope_theta", rope.get("rope_theta", 10000.0))
    return ModelConfig(vocab_size=hf["vocab_size"], context_length=hf["max_position_embeddings"],
                       d_model=hf["hidden_size"], num_layers=hf["num_hidden_layers"], num_heads=heads,
                       d_ff=hf["intermediate_size"], rope_theta=float(theta), eps=hf.get("rms_norm_eps", 1e-6),
                       tie_embeddings=hf.get("tie_word_embeddings", False))


# ---------------------------------------------------------------------------------------------------------------
# Weights


def interleaved_to_halves(w: Tensor, num_heads: int) -> Tensor:
    """Rows of W_q / W_k from our RoPE pairing (2k, 2k+1) to Llama's (k, k + d/2), within each head.
    e.g. one head of d=4: rows [r0, r1, r2, r3] -> [r0, r2, r1, r3]."""
    return rearrange(w, "(h k two) d_in -> (h two k) d_in", h=num_heads, two=2)


def halves_to_interleaved(w: Tensor, num_heads: int) -> Tensor:
    """The inverse of interleaved_to_halves."""
    return rearrange(w, "(h two k) d_in -> (h k two) d_in", h=num_heads, two=2)


# our state-dict name -> Llama's, per layer (q and k also get the RoPE permutation)
_LAYER_NAMES = {
    "attn.q_proj": "self_attn.q_proj", "attn.k_proj": "self_attn.k_proj", "attn.v_proj": "self_attn.v_proj",
    "attn.output_proj": "self_attn.o_proj", "ffn.w1": "mlp.gate_proj", "ffn.w3": "mlp.up_proj",
    "ffn.w2": "mlp.down_proj", "ln1": "input_layernorm", "ln2": "post_attention_layernorm",
}
_TOP_NAMES = {"token_embeddings": "model.embed_tokens", "ln_final": "model.norm", "lm_head": "lm_head"}


def _name_map(config: ModelConfig) -> dict[str, str]:
    names = {f"{ours}.weight": f"{theirs}.weight" for ours, theirs in _TOP_NAMES.items()}
    for i in range(config.num_layers):
        names |= {f"layers.{i}.{ours}.weight": f"model.layers.{i}.{theirs}.weight"
                  for ours, theirs in _LAYER_NAMES.items()}
    if config.tie_embeddings:  # one matrix, stored once as the embedding
        del names["lm_head.weight"]
    return names


def to_llama_state(model: TransformerLM) -> dict[str, Tensor]:
    """Our state dict under Llama's names, W_q and W_k permuted for rotate-half RoPE (contiguous CPU copies)."""
    config, ours = model.config, model.state_dict()
    out = {}
    for name, hf_name in _name_map(config).items():
        w = ours[name].detach().cpu()
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            w = interleaved_to_halves(w, config.num_heads)
        out[hf_name] = w.contiguous().clone()
    return out


def from_llama_state(state: dict[str, Tensor], config: ModelConfig) -> dict[str, Tensor]:
    """The inverse of to_llama_state: a state dict TransformerLM(config) loads."""
    out = {}
    for name, hf_name in _name_map(config).items():
        if hf_name not in state:
            raise ValueError(f"the Llama weights lack {hf_name!r}")
        w = state[hf_name]
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            w = halves_to_interleaved(w, config.num_heads)
        out[name] = w
    if config.tie_embeddings:
        out["lm_head.weight"] = out["token_embeddings.weight"]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer


def tokenizer_json(tokenizer: Tokenizer) -> dict[str, Any]:
    """Our byte-level BPE in the `tokenizers` library's format: GPT-2's byte-level pre-tokenizer (same regex),
    our vocabulary and merges in GPT-2's printable-byte form, special tokens as added tokens."""
    specials = {tokenizer.special_token_id(t): t for t in tokenizer.special_tokens}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, t in sorted(specials.items())],
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": None,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {token_to_str(b) if i not in specials else specials[i]: i
                      for i, b in sorted(tokenizer.vocab.items())},
            "merges": [[token_to_str(a), token_to_str(b)] for a, b in tokenizer.merges],
        },
    }


def tokenizer_from_hf(folder: str | os.PathLike) -> Tokenizer:
    """Our Tokenizer from a byte-level BPE tokenizer.json (GPT-2 style; what `export` writes)."""
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise ValueError(f"{str(folder)!r} has no tokenizer.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    model, pre = data.get("model", {}), data.get("pre_tokenizer") or {}
    if model.get("type") != "BPE" or pre.get("type") != "ByteLevel":
        raise ValueError(f"{path}: only byte-level BPE tokenizers (GPT-2 style) can be loaded, got model "
                         f"{model.get('type')!r} with pre-tokenizer {pre.get('type')!r}")
    specials = {t["id"]: t["content"] for t in data.get("added_tokens", []) if t.get("special")}

    def to_bytes(text: str) -> bytes:
        try:
            return bytes(CHAR_TO_BYTE[c] for c in text)
        except KeyError as e:
            raise ValueError(f"{path}: token {text!r} is not in GPT-2's printable-byte form ({e})") from None

    vocab = {i: specials[i].encode("utf-8") if i in specials else to_bytes(t) for t, i in model["vocab"].items()}
    vocab |= {i: t.encode("utf-8") for i, t in specials.items()}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return Tokenizer(vocab, [(to_bytes(a), to_bytes(b)) for a, b in merges], list(specials.values()))


# ---------------------------------------------------------------------------------------------------------------
# Export and import


def _write_json(data: dict[str, Any], path: Path) -> None:
    _atomic_write(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def _atomic_write(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run_tokenizer_dir(checkpoint: Path) -> Path:
    """RUN/tokenizer for RUN/checkpoints/step_N.pt (or a tokenizer/ folder next to a lone checkpoint file)."""
    for folder in (checkpoint.parent.parent / "tokenizer", checkpoint.parent / "tokenizer"):
        if (folder / "vocab.json").is_file():
            return folder
    raise ValueError(f"no tokenizer/ folder (vocab.json, merges.txt) found for {str(checkpoint)!r}")


def export(run_or_checkpoint: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write the Llama folder of a run's latest checkpoint (or of a checkpoint file) into out_dir."""
    from safetensors.torch import save

    path = find_latest_checkpoint(run_or_checkpoint)
    ckpt = read_checkpoint(path)
    config = ckpt.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ValueError(f"checkpoint {str(path)!r} holds no run config, so its model cannot be rebuilt")
    problem = unsupported(config)
    if problem:
        raise ValueError(problem)
    try:
        model = TransformerLM(ModelConfig(**config["model"]))
    except TypeError as e:  # a field this version of ModelConfig does not know
        raise ValueError(f"checkpoint {str(path)!r}: its model config does not fit ModelConfig ({e})") from e
    restore_checkpoint(ckpt, model, name=repr(str(path)))
    tokenizer = Tokenizer.from_dir(run_tokenizer_dir(path))
    special = config.get("data", {}).get("special_token", EOT)
    eot = tokenizer.special_token_id(special) if special in tokenizer.special_tokens else None

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "model.safetensors", save(to_llama_state(model), metadata={"format": "pt"}))
    _write_json(llama_config(model.config, eot), out / "config.json")
    _write_json({"bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot}, out / "generation_config.json")
    _write_json(tokenizer_json(tokenizer), out / "tokenizer.json")
    eot_token = special if eot is not None else None
    _write_json({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model.config.context_length,
                 "bos_token": eot_token, "eos_token": eot_token, "clean_up_tokenization_spaces": False},
                out / "tokenizer_config.json")
    return out


def load_llama(folder: str | os.PathLike, device: str | torch.device = "cpu") -> TransformerLM:
    """A TransformerLM from a Llama-format folder (config.json + model.safetensors or sharded safetensors)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{str(folder)!r} is not a Hugging Face model folder (no config.json)")
    config = model_config_from_llama(json.loads(config_path.read_text()), str(config_path))
    index = folder / "model.safetensors.index.json"
    files = (sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file()
             else ["model.safetensors"])
    state: dict[str, Tensor] = {}
    for name in files:
        if not (folder / name).is_file():
            raise ValueError(f"{str(folder)!r} lacks {name}")
        state |= load_file(folder / name)
    model = TransformerLM(config, device=device)
    model.load_state_dict(from_llama_state(state, config))
    return model.eval()


def is_hf_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / "config.json").is_file() and any(Path(path).glob("*.safetensors"))
