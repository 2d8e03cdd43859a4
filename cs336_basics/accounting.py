"""Resource accounting for a language model: parameters, memory, FLOPs and training time, from its ModelConfig alone.

    uv run python -m cs336_basics.accounting --preset gpt2-xl
    uv run python -m cs336_basics.accounting --preset all --context-length 16384

Conventions. A matmul of (m x n) by (n x p) costs 2·m·n·p FLOPs. Attention scores are counted for the full T x T
square, as the kernels compute them (the causal mask does not skip work). Training costs 3x the forward matmul
FLOPs (the backward pass computes gradients for inputs and weights: 2x). Elementwise work (norms, softmax, RoPE,
SiLU, residual adds) is estimated separately and left out of the totals: it is memory-bound and under ~1% of the
FLOPs. Activation memory counts the output of every operation listed in the handout, kept for the backward pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import math

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # dtypes are accepted as torch.dtype or by name; torch itself is never needed here
    import torch

from cs336_basics.model import ModelConfig, SpaceByteConfig


def _gpt2(d_model: int, num_layers: int, num_heads: int) -> ModelConfig:
    return ModelConfig(
        vocab_size=50257,
        context_length=1024,
        d_model=d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        d_ff=4 * d_model,
    )


PRESETS: dict[str, ModelConfig] = {
    "tinystories": ModelConfig(
        vocab_size=10000, context_length=256, d_model=512, num_layers=4, num_heads=16, d_ff=1344
    ),
    # the `spacebyte` training preset's model
    "spacebyte": ModelConfig(
        arch="spacebyte", vocab_size=257, context_length=256, d_model=128, num_layers=2, num_heads=4,
        attention_window=64, spacebyte=SpaceByteConfig(d_local=64, num_local_layers=2, global_context=64),
    ),
    "gpt2-small": _gpt2(768, 12, 12),
    "gpt2-medium": _gpt2(1024, 24, 16),
    "gpt2-large": _gpt2(1280, 36, 20),
    "gpt2-xl": _gpt2(1600, 48, 25),
}
GPT2_PRESETS = ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"]
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}  # fmt: skip
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}


def dtype_name(dtype: torch.dtype | str) -> str:
    """torch.bfloat16 or "bf16" -> "bfloat16"."""
    name = str(dtype).removeprefix("torch.")
    return DTYPES.get(name, name)


def dtype_bytes(dtype: torch.dtype | str) -> int:
    """Bytes per element: torch.float32 -> 4, "bf16" -> 2."""
    name = dtype_name(dtype)
    if name not in _BYTES:
        raise ValueError(f"unsupported dtype {dtype!r}; use one of {sorted(_BYTES)}")
    return _BYTES[name]


def _ffn_matrices(config: ModelConfig) -> int:
    return 3 if config.ffn == "swiglu" else 2


def _block_params(config: ModelConfig, d: int, num_layers: int, d_ff: int, prefix: str = "") -> dict[str, int]:
    return {
        f"{prefix}attention projections (Q, K, V, O)": num_layers * 4 * d * d,
        f"{prefix}feed-forward": num_layers * _ffn_matrices(config) * d * d_ff,
    }


def _block_flops(config: ModelConfig, d: int, num_layers: int, d_ff: int, positions: int, keys: int,
                 prefix: str = "") -> dict[str, int]:
    """Matmul FLOPs of num_layers blocks of width d over `positions` queries, each scored against `keys` keys."""
    return {
        f"{prefix}attention projections (Q, K, V, O)": num_layers * 4 * 2 * positions * d * d,
        f"{prefix}attention scores (Q K^T)": num_layers * 2 * positions * keys * d,  # summed over heads
        f"{prefix}attention weighted sum (A V)": num_layers * 2 * positions * keys * d,
        f"{prefix}feed-forward": num_layers * _ffn_matrices(config) * 2 * positions * d * d_ff,
    }


def _keys_per_query(config: ModelConfig, seq_len: int, as_computed: bool) -> int:
    """Keys each query is scored against: the whole sequence (the causal mask skips no work), or with an attention
    window W the last W (as a sliding-window kernel computes; as_computed=True: our kernels, which mask a full
    square)."""
    window = config.attention_window
    return seq_len if window is None or as_computed else min(window, seq_len)


def _spacebyte_d_ff_local(config: ModelConfig) -> int:
    sb = config.spacebyte
    return sb.d_ff_local or ModelConfig(d_model=sb.d_local, num_heads=1, ffn=config.ffn).resolved_d_ff


def _transformer_params(config: ModelConfig) -> dict[str, int]:
    c, L, d = config, config.num_layers, config.d_model
    return {
        "token embeddings": c.vocab_size * d,
        **_block_params(c, d, L, c.resolved_d_ff),
        "RMSNorm gains": 0 if c.norm == "none" else (2 * L + 1) * d,
        "LM head": 0 if c.tie_embeddings else c.vocab_size * d,
    }


def _transformer_flops(config: ModelConfig, seq_len: int, as_computed: bool) -> dict[str, int]:
    c, T = config, seq_len
    return {
        **_block_flops(c, c.d_model, c.num_layers, c.resolved_d_ff, T, _keys_per_query(c, T, as_computed)),
        "LM head": 2 * T * c.d_model * c.vocab_size,
    }


def _spacebyte_params(config: ModelConfig) -> dict[str, int]:
    c, sb, L = config, config.spacebyte, config.num_layers
    norms = 0 if c.norm == "none" else 2 * sb.num_local_layers * sb.d_local + sb.d_local
    if L > 0 and c.norm != "none":
        norms += (2 * L + 1) * c.d_model
    return {
        "token embeddings": c.vocab_size * sb.d_local,
        **_block_params(c, sb.d_local, sb.num_local_layers, _spacebyte_d_ff_local(c), "local "),
        "global in/out projections": 2 * sb.d_local * c.d_model if L > 0 else 0,
        **_block_params(c, c.d_model, L, c.resolved_d_ff, "global "),
        "RMSNorm gains": norms,
        "LM head": 0 if c.tie_embeddings else c.vocab_size * sb.d_local,
    }


def _spacebyte_flops(config: ModelConfig, seq_len: int, as_computed: bool) -> dict[str, int]:
    """Local blocks over every byte; global blocks (and their in/out projections) over global_context patches,
    the most a sequence sends through them (the model pads a batch to its longest row of patches)."""
    c, sb, T, L = config, config.spacebyte, seq_len, config.num_layers
    patches = min(sb.global_context, T) if L > 0 else 0
    return {
        **_block_flops(c, sb.d_local, sb.num_local_layers, _spacebyte_d_ff_local(c), T,
                       _keys_per_query(c, T, as_computed), "local "),
        "global in/out projections": 2 * 2 * patches * sb.d_local * c.d_model,
        **_block_flops(c, c.d_model, L, c.resolved_d_ff, patches, patches, "global "),
        "LM head": 2 * T * sb.d_local * c.vocab_size,
    }


# model.arch -> (parameters by component, forward matmul FLOPs by component)
_BREAKDOWNS = {"transformer": (_transformer_params, _transformer_flops),
               "spacebyte": (_spacebyte_params, _spacebyte_flops)}


def parameter_counts(config: ModelConfig) -> dict[str, int]:
    """Trainable parameters by component; a tied LM head adds none. The values sum to the model's total."""
    return _BREAKDOWNS[config.arch][0](config)


def forward_flops(config: ModelConfig, seq_len: int | None = None, as_computed: bool = False) -> dict[str, int]:
    """Matmul FLOPs of one forward pass over one sequence of seq_len tokens (default: the context length).

    With an attention window W each query counts W keys (a sliding-window kernel's work); as_computed=True counts
    the full square our masked kernels compute (what torch's FlopCounterMode sees)."""
    T = config.context_length if seq_len is None else seq_len
    return _BREAKDOWNS[config.arch][1](config, T, as_computed)


def flops_per_byte(config: ModelConfig, bytes_per_token: float = 1.0) -> dict[str, float]:
    """Inference (forward) and training (3x forward) matmul FLOPs per byte of text at the full context.

    bytes_per_token is 1 for byte-level models; for a BPE model, the corpus's UTF-8 bytes per token."""
    forward = sum(forward_flops(config).values()) / (config.context_length * bytes_per_token)
    return {"inference": forward, "training": 3 * forward}


def elementwise_flops(config: ModelConfig, seq_len: int | None = None) -> dict[str, int]:
    """Rough FLOPs of the elementwise operations of one forward pass (operations per element in the comments)."""
    c, L, d, f = config, config.num_layers, config.d_model, config.resolved_d_ff
    T = c.context_length if seq_len is None else seq_len
    num_norms = 0 if c.norm == "none" else 2 * L + 1
    return {
        "RMSNorm": num_norms * 4 * T * d,  # square, sum, scale, gain
        "RoPE": 0 if c.positions == "nope" else L * 2 * 3 * T * d,  # q and k: 2 multiplies + 1 add each
        # softmax: scale, mask, max, subtract, exp, sum, divide
        "softmax (+ scale, mask)": L * c.num_heads * 6 * T * T,
        "SiLU (+ gate)": L * (5 if c.ffn == "swiglu" else 4) * T * f,  # x·sigmoid(x) ≈ 4, gate product 1
        "residual adds": L * 2 * T * d,
    }


def training_flops_per_token(config: ModelConfig) -> float:
    """Forward + backward matmul FLOPs per token at the full context length: 3x the forward pass."""
    return 3 * sum(forward_flops(config).values()) / config.context_length


def activation_counts(config: ModelConfig, batch_size: int = 1) -> dict[str, int]:
    """Elements of activations kept for the backward pass, by component, over all layers, at the full context."""
    c, L, d, f = config, config.num_layers, config.d_model, config.resolved_d_ff
    BT = batch_size * c.context_length
    BHTT = batch_size * c.num_heads * c.context_length**2
    gated = 2 if c.ffn == "swiglu" else 1  # SwiGLU keeps W1x and W3x, SiLU(W1x) and the product
    norms = 0 if c.norm == "none" else 2 * L * BT * d
    return {
        "RMSNorms (in blocks)": norms,
        "Q, K, V projections": L * 3 * BT * d,
        "RoPE (rotated Q, K)": 0 if c.positions == "nope" else L * 2 * BT * d,
        "attention scores (Q K^T)": L * BHTT,
        "softmax": L * BHTT,
        "weighted sum (A V)": L * BT * d,
        "output projection": L * BT * d,
        "FFN W1 (and W3)": L * gated * BT * f,
        "SiLU (and gate)": L * gated * BT * f,
        "FFN W2": L * BT * d,
        "final RMSNorm": 0 if c.norm == "none" else BT * d,
        "LM head (logits)": BT * c.vocab_size,
        "cross-entropy (softmax)": BT * c.vocab_size,
    }


def memory_bytes(
    config: ModelConfig, batch_size: int = 1, dtype: torch.dtype | str = "float32"
) -> dict[str, int]:
    """Training memory in bytes: parameters, gradients, AdamW's two moments and activations, all in `dtype`."""
    n_params = sum(parameter_counts(config).values())
    size = dtype_bytes(dtype)
    return {
        "parameters": n_params * size,
        "gradients": n_params * size,
        "AdamW state (m, v)": 2 * n_params * size,
        "activations": sum(activation_counts(config, batch_size).values()) * size,
    }


def max_batch_size(config: ModelConfig, memory_limit_bytes: float, dtype: torch.dtype | str = "float32") -> int:
    """The largest batch whose training memory fits in memory_limit_bytes (0 if not even the weights fit)."""
    fixed = memory_bytes(config, 0, dtype)
    per_sequence = memory_bytes(config, 1, dtype)["activations"]
    return max(0, math.floor((memory_limit_bytes - sum(fixed.values())) / per_sequence))


def training_days(config: ModelConfig, steps: int, batch_size: int, peak_flops: float, mfu: float) -> float:
    """Days to train `steps` steps of batch_size full-context sequences at mfu × peak_flops FLOP/s."""
    tokens = steps * batch_size * config.context_length
    return tokens * training_flops_per_token(config) / (peak_flops * mfu) / 86400


# --- printing -------------------------------------------------------------------------------------------------


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table, first column left-aligned and the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells):
        return "  ".join(
            str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(cells, widths))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def _share_rows(values: dict[str, int], fmt) -> list[list[str]]:
    total = sum(values.values())
    rows = [[name, fmt(v), f"{100 * v / total:.1f}%"] for name, v in values.items()]
    return rows + [["total", fmt(total), "100.0%"]]


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.2f} GiB"


def describe(config: ModelConfig) -> str:
    return (
        f"vocab {config.vocab_size:,}, context {config.context_length:,}, d_model {config.d_model}, "
        f"{config.num_layers} layers, {config.num_heads} heads, d_ff {config.resolved_d_ff} "
        f"({config.ffn}, {config.norm}-norm, {config.positions}{', tied' if config.tie_embeddings else ''}"
        + (f", window {config.attention_window}" if config.attention_window else "")
        + (f"; SpaceByte: d_local {sb.d_local}, {sb.num_local_layers} local layers, global_context "
           f"{sb.global_context}, {sb.patching} patches" if (sb := config.spacebyte) and config.arch == "spacebyte"
           else "")
        + ")"
    )


def report(
    name: str,
    config: ModelConfig,
    batch_size: int = 1,
    dtype: torch.dtype | str = "float32",
    steps: int = 400_000,
    peak_tflops: float = 19.5,
    mfu: float = 0.5,
    gpu_memory_gib: float = 80.0,
    bytes_per_token: float = 1.0,
) -> str:
    """All the accounting for one config as printable text (memory and elementwise estimates: Transformer only)."""
    T = config.context_length
    params = parameter_counts(config)
    memory = memory_bytes(config, batch_size, dtype)
    activations = activation_counts(config, batch_size)
    size = dtype_bytes(dtype)
    flops = forward_flops(config)
    small = elementwise_flops(config)
    per_token = training_flops_per_token(config)
    days = training_days(config, steps, batch_size, peak_tflops * 1e12, mfu)
    fits = max_batch_size(config, gpu_memory_gib * 2**30, dtype)
    precision = dtype_name(dtype)
    six_n = 6 * (sum(params.values()) - params["token embeddings"])
    sections = [
        f"=== {name}: {describe(config)} ===",
        "Parameters\n"
        + format_table(["component", "parameters", "share"], _share_rows(params, lambda v: f"{v:,}")),
        f"Training memory at batch {batch_size}, {precision} (activations: outputs kept for backward)\n"
        + format_table(["component", "memory", "share"], _share_rows(memory, _gib))
        + f"\nlargest batch that fits in {gpu_memory_gib:g} GiB: {fits:,}",
        f"Activations by component at batch {batch_size}\n"
        + format_table(
            ["component", "memory", "share"], _share_rows({k: v * size for k, v in activations.items()}, _gib)
        ),
        f"Forward matmul FLOPs per sequence of {T:,} tokens\n"
        + format_table(["component", "GFLOPs", "share"], _share_rows(flops, lambda v: f"{v / 1e9:,.1f}"))
        + "\nelementwise (estimate, not in the total above): "
        + ", ".join(f"{k} {v / 1e9:,.2f}" for k, v in small.items())
        + f" GFLOPs; {100 * sum(small.values()) / sum(flops.values()):.2f}% of the matmul FLOPs",
        (
            f"Training FLOPs per token (3 x forward): {per_token / 1e9:,.2f} GFLOPs "
            f"(6 x non-embedding parameters would say {six_n / 1e9:,.2f})\n"
            f"{steps:,} steps x batch {batch_size:,} x {T:,} tokens at {peak_tflops:g} TFLOP/s and {mfu:.0%} MFU: "
            f"{days:,.2f} days"
        ),
        "FLOPs per byte of text (at {:g} bytes per token): inference {:,.0f}, training {:,.0f}".format(
            bytes_per_token, *flops_per_byte(config, bytes_per_token).values()),
    ]
    if config.arch != "transformer":  # the memory and elementwise models describe the Transformer only
        sections = [sections[0], sections[1], sections[4].split("\nelementwise")[0], *sections[5:]]
    return "\n\n".join(sections)


def compare(configs: dict[str, ModelConfig]) -> str:
    """One table across configs: size and the share of forward FLOPs per component."""
    headers = ["component"] + list(configs)
    rows = [
        ["parameters"] + [f"{sum(parameter_counts(c).values()) / 1e6:,.0f}M" for c in configs.values()],
        ["forward TFLOPs / sequence"]
        + [f"{sum(forward_flops(c).values()) / 1e12:,.2f}" for c in configs.values()],
    ]
    shares = {name: forward_flops(c) for name, c in configs.items()}
    for component in next(iter(shares.values())):
        rows.append([component] + [f"{100 * s[component] / sum(s.values()):.1f}%" for s in shares.values()])
    return "Share of forward FLOPs by component\n" + format_table(headers, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cs336_basics.accounting",
        description="Parameters, memory, FLOPs and training time of a TransformerLM config.",
        epilog="Example: python -m cs336_basics.accounting --preset all --batch-size 1024",
    )
    parser.add_argument(
        "--preset", action="append", choices=[*PRESETS, "all"],
        help="model preset; repeat for several; 'all' = the four GPT-2 sizes (default: tinystories)",
    )  # fmt: skip
    overrides = parser.add_argument_group("config overrides (applied to every preset)")
    for field in ["vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff"]:
        overrides.add_argument("--" + field.replace("_", "-"), type=int)
    overrides.add_argument("--ffn", choices=["swiglu", "silu"])
    overrides.add_argument("--norm", choices=["pre", "post", "none"])
    overrides.add_argument("--positions", choices=["rope", "nope"])
    overrides.add_argument("--tie-embeddings", action="store_true", default=None)
    overrides.add_argument("--attention-window", type=int)
    parser.add_argument("--batch-size", type=int, default=1, help="sequences per step, for memory and time")
    parser.add_argument("--bytes-per-token", type=float, default=1.0,
                        help="UTF-8 bytes per token of your corpus, for FLOPs per byte (1 for byte-level models)")
    parser.add_argument(
        "--dtype", choices=list(DTYPES), default="float32", help="precision of weights, state, activations"
    )
    parser.add_argument("--steps", type=int, default=400_000, help="training steps for the time estimate")
    parser.add_argument("--peak-tflops", type=float, default=19.5, help="GPU peak TFLOP/s (A100 fp32: 19.5)")
    parser.add_argument("--mfu", type=float, default=0.5, help="model FLOPs utilization, in (0, 1]")
    parser.add_argument(
        "--gpu-memory-gib", type=float, default=80.0, help="memory for the largest-batch estimate"
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.steps < 0:
        parser.error("--batch-size must be >= 1 and --steps >= 0")
    if not 0 < args.mfu <= 1 or args.peak_tflops <= 0:
        parser.error("--mfu must be in (0, 1] and --peak-tflops positive")

    names = []
    for preset in args.preset or ["tinystories"]:
        names += GPT2_PRESETS if preset == "all" else [preset]
    changes = {
        k: v
        for k, v in vars(args).items()
        if k in {f.name for f in dataclasses.fields(ModelConfig)} and v is not None
    }
    try:
        configs = {name: dataclasses.replace(PRESETS[name], **changes) for name in dict.fromkeys(names)}
    except ValueError as err:
        parser.error(str(err))
    for name, config in configs.items():
        print(report(name, config, args.batch_size, DTYPES[args.dtype], args.steps, args.peak_tflops, args.mfu,
                     args.gpu_memory_gib, args.bytes_per_token), end="\n\n")  # fmt: skip
    if len(configs) > 1:
        print(compare(configs))


if __name__ == "__main__":
    main()
