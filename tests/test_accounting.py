"""Accounting against reality: parameter counts of instantiated models and FLOPs counted by torch."""

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cs336_basics.accounting import (
    PRESETS,
    activation_counts,
    forward_flops,
    main,
    max_batch_size,
    memory_bytes,
    parameter_counts,
    training_days,
    training_flops_per_token,
)
from cs336_basics.model import ModelConfig, TransformerLM

BASE = ModelConfig(vocab_size=101, context_length=24, d_model=48, num_layers=3, num_heads=4)
CONFIGS = [
    BASE,
    dataclasses.replace(BASE, d_ff=100),
    dataclasses.replace(BASE, ffn="silu"),
    dataclasses.replace(BASE, norm="none", positions="nope"),
    dataclasses.replace(BASE, norm="post", tie_embeddings=True),
    dataclasses.replace(BASE, attn_backend="torch", num_layers=1, num_heads=6),
]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_parameter_count_equals_the_instantiated_model(config):
    model = TransformerLM(config, device="meta")
    assert sum(parameter_counts(config).values()) == sum(p.numel() for p in model.parameters())


def test_gpt2_xl_parameter_count_equals_the_instantiated_model():
    model = TransformerLM(PRESETS["gpt2-xl"], device="meta")  # meta: shapes only, no memory
    assert sum(parameter_counts(PRESETS["gpt2-xl"]).values()) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("seq_len", [24, 7])
def test_matmul_flops_equal_torch_flop_counter(config, seq_len):
    model = TransformerLM(config)
    ids = torch.randint(0, config.vocab_size, (1, seq_len))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(ids)
    expected = sum(forward_flops(config, seq_len).values())
    assert counter.get_total_flops() == pytest.approx(expected, rel=0.01)


def test_training_flops_per_token_and_days():
    config = PRESETS["gpt2-small"]
    per_token = training_flops_per_token(config)
    assert per_token == 3 * sum(forward_flops(config).values()) / 1024
    # 6N (non-embedding parameters) is the textbook estimate; ours adds the T^2 attention term
    n = sum(parameter_counts(config).values()) - parameter_counts(config)["token embeddings"]
    assert 6 * n < per_token < 6 * n * 2
    days = training_days(config, steps=1000, batch_size=2, peak_flops=1e12, mfu=0.5)
    assert days == pytest.approx(1000 * 2 * 1024 * per_token / 0.5e12 / 86400)


def test_memory_scales_as_expected():
    config = PRESETS["tinystories"]
    n = sum(parameter_counts(config).values())
    fp32, bf16 = memory_bytes(config, 4, torch.float32), memory_bytes(config, 4, torch.bfloat16)
    assert fp32["parameters"] == fp32["gradients"] == 4 * n
    assert fp32["AdamW state (m, v)"] == 8 * n
    assert fp32["activations"] == 2 * bf16["activations"]
    assert sum(activation_counts(config, 4).values()) == 4 * sum(activation_counts(config, 1).values())
    # the per-layer attention matrices (scores + softmax) are batch · heads · T^2 each
    assert activation_counts(config, 2)["softmax"] == 4 * 2 * 16 * 256**2
    fixed = sum(memory_bytes(config, 0).values())
    per_seq = memory_bytes(config, 1)["activations"]
    assert max_batch_size(config, fixed + 10.5 * per_seq) == 10
    assert max_batch_size(config, fixed / 2) == 0


def test_cli_prints_all_gpt2_tables(capsys):
    main(["--preset", "all", "--batch-size", "2"])
    out = capsys.readouterr().out
    for name in ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"]:
        assert f"=== {name}:" in out
    assert "2,127,057,600" in out  # GPT-2 XL shape with a SwiGLU FFN of 4·d_model
    assert "Share of forward FLOPs by component" in out


def test_cli_overrides_and_errors(capsys):
    main(["--preset", "gpt2-small", "--context-length", "16384", "--dtype", "bf16"])
    out = capsys.readouterr().out
    assert "context 16,384" in out and "bfloat16" in out
    with pytest.raises(SystemExit):
        main(["--preset", "gpt2-small", "--num-heads", "7"])
    assert "divisible" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--mfu", "1.5"])
    assert "--mfu" in capsys.readouterr().err
