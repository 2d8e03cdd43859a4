"""The byte data path end to end: ByteTokenizer against Python's own UTF-8 codec, data.tokenizer "bytes", exact bits
per byte (against F.cross_entropy and decoded lengths), the spacebyte preset through Trainer and generate, old
checkpoints, and the accounting of SpaceByte and windowed attention against torch's FlopCounterMode."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from cs336_basics import accounting
from cs336_basics.generate import load_model
from cs336_basics.generate import main as generate_main
from cs336_basics.generation import generate
from cs336_basics.model import ModelConfig, SpaceByteConfig, SpaceByteLM, TransformerLM, build_model
from cs336_basics.tokenizer import ByteTokenizer, Tokenizer, encode_file, load_tokenizer
from cs336_basics.tokenizer import bytes as bytes_module
from cs336_basics.train import main as train_main
from cs336_basics.training.checkpoint import checkpoint_path, save_checkpoint
from cs336_basics.training.config import resolve
from cs336_basics.training.data import eval_batches
from cs336_basics.training.trainer import Trainer

EOT = "<|endoftext|>"


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# ------------------------------------------------------------------------------------------- ByteTokenizer


def test_byte_tokenizer_ids_are_the_utf8_bytes_and_specials_follow():
    tok = ByteTokenizer([EOT, "<|pad|>"])
    assert tok.encode("hé" + EOT + "x<|pad|>") == [104, 0xC3, 0xA9, 256, 120, 257]
    assert tok.special_token_id(EOT) == 256 and tok.vocab_size == 258
    with pytest.raises(ValueError, match="not a special token"):
        tok.special_token_id("<|nope|>")
    with pytest.raises(ValueError, match="token id 300 is not in the vocabulary"):
        tok.decode([1, 300])
    assert tok.decode([0xC3]) == "\ufffd"  # half a character


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=20), st.just(EOT)), max_size=6))
def test_byte_tokenizer_round_trips_and_matches_the_codec(pieces):
    tok = ByteTokenizer([EOT])
    text = "".join(pieces)
    expected = []
    for i, part in enumerate(text.split(EOT)):
        if i:
            expected.append(256)
        expected.extend(part.encode("utf-8"))
    assert tok.encode(text) == expected
    assert tok.decode(tok.encode(text)) == text


def test_encode_iterable_never_splits_a_special_token(monkeypatch):
    monkeypatch.setattr(bytes_module, "_STREAM_BUFFER_CHARS", 8)
    tok = ByteTokenizer([EOT])
    text = ("ab" + EOT + "cdé ") * 20
    chunks = [text[i : i + 5] for i in range(0, len(text), 5)]
    assert list(tok.encode_iterable(chunks)) == tok.encode(text)


def test_saved_byte_tokenizer_loads_as_either_class(tmp_path):
    tok = ByteTokenizer([EOT])
    tok.save(tmp_path / "bytes")
    text = "Hello, wörld" + EOT + "!"
    assert isinstance(load_tokenizer(tmp_path / "bytes"), ByteTokenizer)
    assert Tokenizer.from_dir(tmp_path / "bytes").encode(text) == tok.encode(text)
    Tokenizer({i: bytes([i]) for i in range(256)} | {256: b"ab"}, [(b"a", b"b")], [EOT]).save(tmp_path / "bpe")
    assert isinstance(load_tokenizer(tmp_path / "bpe"), Tokenizer)
    with pytest.raises(ValueError, match="does not hold a byte tokenizer"):
        ByteTokenizer.from_dir(tmp_path / "bpe")


def test_encode_file_with_the_byte_tokenizer(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("to be" + EOT + "or not ü", encoding="utf-8")
    encode_file(ByteTokenizer([EOT]), path, tmp_path / "t.npy", num_workers=1, progress=False)
    ids = np.load(tmp_path / "t.npy")
    assert ids.dtype == np.uint16
    assert ids.tolist() == list(b"to be") + [256] + list("or not ü".encode())


# ------------------------------------------------------------------------------------------- config


def test_bytes_mode_needs_vocab_257(capsys):
    with pytest.raises(ValueError, match="model.vocab_size must be 257, got 2048"):
        resolve("shakespeare", overrides={"data": {"tokenizer": "bytes"}})
    with pytest.raises(SystemExit):
        train_main(["--data.tokenizer", "bytes"])
    err = capsys.readouterr().err.strip().splitlines()
    assert "model.vocab_size must be 257" in err[-1] and "Traceback" not in "\n".join(err)
    with pytest.raises(ValueError, match="set data.tokenizer to 'bytes'"):
        resolve("shakespeare", overrides={"model": {"arch": "spacebyte", "vocab_size": 257}})
    with pytest.raises(ValueError, match="global_context must be >= 1"):
        resolve("spacebyte", overrides={"model": {"spacebyte": {"global_context": 0}}})
    assert resolve("spacebyte").model.spacebyte.d_local == 64


# ------------------------------------------------------------------------------------------- bits per byte


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """An ASCII text of short documents, so that special tokens are among the validation targets."""
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "ran", "away", "home"]
    docs = [" ".join(rng.choice(words, size=rng.integers(5, 30))) + "." for _ in range(400)]
    path = tmp_path_factory.mktemp("corpus") / "docs.txt"
    path.write_text(EOT.join(docs))
    return path


def small_run(tmp_path: Path, corpus: Path, preset: str = "tiny", **model) -> dict:
    return {"data": {"train_path": str(corpus), "cache_dir": str(tmp_path / "cache"), "max_bytes": None,
                     "batch_size": 4},
            "model": model, "schedule": {"max_steps": 3},
            "run": {"out_dir": str(tmp_path / "runs"), "name": "r", "eval_every": 2, "checkpoint_every": 3,
                    "log_every": 1, "sample_tokens": 20}}


def hand_bpb(trainer: Trainer) -> tuple[float, float]:
    """Σ nats / (ln 2 · Σ bytes) over the text targets, from F.cross_entropy and each target's decoded text."""
    eot = trainer.tokenizer.special_token_id(EOT)
    nats = text_nats = num_bytes = 0.0
    count = 0
    with torch.no_grad():
        for x, y in eval_batches(trainer.valid_data, 4, trainer.config.model.context_length, "cpu"):
            losses = F.cross_entropy(trainer.model(x).flatten(0, 1), y.flatten(), reduction="none")
            for loss, target in zip(losses.tolist(), y.flatten().tolist()):
                nats += loss
                count += 1
                if target != eot:
                    text_nats += loss
                    num_bytes += len(trainer.tokenizer.decode([target]).encode("utf-8"))
    return nats / count, text_nats / math.log(2) / num_bytes


def test_bpe_bits_per_byte_is_nats_over_the_bytes_of_the_text_targets(tmp_path, corpus):
    trainer = Trainer(resolve("tiny", overrides=small_run(tmp_path, corpus)), progress=False)
    assert (trainer.valid_data == trainer.tokenizer.special_token_id(EOT)).sum() > 3  # specials are scored
    result = trainer.evaluate(max_batches=None)
    loss, bpb = hand_bpb(trainer)
    assert result["val_loss"] == pytest.approx(loss, rel=1e-5)
    assert result["val_bpb"] == pytest.approx(bpb, rel=1e-5)


def test_byte_model_bits_per_byte_is_its_loss_over_ln2(tmp_path):
    text = tmp_path / "plain.txt"
    text.write_text("a plain text with no special token at all, line after line.\n" * 200)
    overrides = small_run(tmp_path, text, vocab_size=257)
    overrides["data"]["tokenizer"] = "bytes"
    trainer = Trainer(resolve("tiny", overrides=overrides), progress=False)
    assert isinstance(trainer.tokenizer, ByteTokenizer)
    result = trainer.evaluate(max_batches=None)
    assert result["val_bpb"] == pytest.approx(result["val_loss"] / math.log(2), rel=1e-9)
    assert hand_bpb(trainer)[1] == pytest.approx(result["val_bpb"], rel=1e-5)


def test_spacebyte_preset_trains_evaluates_and_generates(tmp_path, corpus, capsys):
    overrides = small_run(tmp_path, corpus, context_length=64, d_model=32, num_heads=2, attention_window=16,
                          spacebyte={"d_local": 16, "global_context": 4})
    trainer = Trainer(resolve("spacebyte", overrides=overrides), progress=False)
    assert isinstance(trainer.model, SpaceByteLM)
    summary = trainer.train()
    records = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    left_out = [r["left_out_frac"] for r in records if "left_out_frac" in r]
    assert left_out and all(0.3 < f < 1 for f in left_out)  # 4 patches of 64 bytes of ~4-byte words
    assert math.isfinite(summary["final_val_bpb"]) and (trainer.run_dir / "sample.txt").is_file()
    model, _ = load_model(trainer.run_dir)
    assert isinstance(model, SpaceByteLM)
    generate_main(["--checkpoint", str(trainer.run_dir), "--prompt", "the cat", "--max-new-tokens", "30",
                   "--temperature", "0"])
    assert capsys.readouterr().out.startswith("the cat")


def test_old_checkpoints_without_the_new_fields_still_load(tmp_path):
    """A checkpoint written before model.arch existed: its config has no arch, attention_window or spacebyte."""
    old = {"vocab_size": 257, "context_length": 16, "d_model": 16, "num_layers": 1, "num_heads": 2,
           "d_ff": None, "rope_theta": 10000.0, "norm": "pre", "positions": "rope", "ffn": "swiglu",
           "tie_embeddings": False, "attn_backend": "scratch", "eps": 1e-5}
    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(**old))
    save_checkpoint(model, None, 5, checkpoint_path(tmp_path, 5), extra={"config": {"model": old}})
    loaded, _ = load_model(tmp_path)
    assert isinstance(loaded, TransformerLM) and loaded.config.arch == "transformer"
    ids = torch.randint(0, 257, (1, 16))
    torch.testing.assert_close(loaded(ids), model(ids))
    assert resolve(None, overrides={"model": old}).model == ModelConfig(**old)
    tokenizer = ByteTokenizer([EOT])
    assert isinstance(generate(loaded, tokenizer, "ab", max_new_tokens=4, temperature=0), str)


# ------------------------------------------------------------------------------------------- accounting

SPACEBYTE = ModelConfig(arch="spacebyte", vocab_size=257, context_length=48, d_model=64, num_layers=2, num_heads=4,
                        attention_window=8, spacebyte=SpaceByteConfig(d_local=32, num_local_layers=3,
                                                                      global_context=6))
CONFIGS = [
    SPACEBYTE,
    dataclasses.replace(SPACEBYTE, spacebyte=SpaceByteConfig(d_local=32, patching="periodic", patch_size=4,
                                                             global_context=12), tie_embeddings=True),
    dataclasses.replace(SPACEBYTE, num_layers=0),
    ModelConfig(vocab_size=257, context_length=48, d_model=32, num_layers=2, num_heads=2, attention_window=8),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.arch}-{c.spacebyte.patching}-{c.num_layers}")
def test_parameters_and_flops_of_every_architecture_match_the_model(config):
    model = build_model(config)
    assert sum(accounting.parameter_counts(config).values()) == sum(p.numel() for p in model.parameters())
    ids = torch.tensor([list(b"a b c d e f g h i j k l m n o p q r s t u v w x ")])  # 24 patches >= the cap
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(ids)
    expected = sum(accounting.forward_flops(config, as_computed=True).values())
    assert counter.get_total_flops() == pytest.approx(expected, rel=0.01)


def test_windowed_attention_counts_only_the_window_and_flops_per_byte():
    full = dataclasses.replace(CONFIGS[-1], attention_window=None)
    windowed, long_window = CONFIGS[-1], dataclasses.replace(CONFIGS[-1], attention_window=1000)
    f_full, f_win = accounting.forward_flops(full), accounting.forward_flops(windowed)
    assert f_win["attention scores (Q K^T)"] == f_full["attention scores (Q K^T)"] * 8 / 48
    assert accounting.forward_flops(long_window) == f_full
    per_byte = accounting.flops_per_byte(full, bytes_per_token=4.0)
    assert per_byte["inference"] == sum(f_full.values()) / 48 / 4 and per_byte["training"] == 3 * per_byte["inference"]


def test_accounting_cli_reports_spacebyte_per_byte(capsys):
    accounting.main(["--preset", "spacebyte"])
    out = capsys.readouterr().out
    assert "global feed-forward" in out and "FLOPs per byte of text" in out and "Training memory" not in out
