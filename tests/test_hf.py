"""Hugging Face export/import: transformers (the reference) loads the exported folder with no custom code and
computes the same logits, greedy continuations and token ids as we do; export -> import is exact; variants Llama
cannot express are refused naming the setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cs336_basics import export_hf
from cs336_basics import generate as generate_cli
from cs336_basics.generation import generate_ids
from cs336_basics.hf import (
    export,
    halves_to_interleaved,
    interleaved_to_halves,
    load_llama,
    tokenizer_from_hf,
    tokenizer_json,
)
from cs336_basics.model import ModelConfig, TransformerLM
from cs336_basics.tokenizer import Tokenizer, train_bpe
from cs336_basics.training.checkpoint import save_checkpoint
from cs336_basics.training.config import TrainConfig, to_dict

transformers = pytest.importorskip("transformers")

FIXTURES = Path(__file__).parent / "fixtures"
EOT = "<|endoftext|>"
TEXTS = ["", "Hello, world!", "  two spaces\tand\ttabs\n\nnew lines  ", "it's we've they'll I'd 123 4567",
         f"Once upon a time{EOT}There was a dog.{EOT}", "Ünïcödé: 日本語 🙂 naïve café"]
FILES = ["corpus.en", "tinystories_sample.txt", "german.txt", "address.txt"]


@pytest.fixture(scope="module")
def bpe(tmp_path_factory) -> Tokenizer:
    """A 400-token BPE trained on the fixture corpus, saved the way a run saves it."""
    vocab, merges = train_bpe(FIXTURES / "corpus.en", 400, [EOT])
    return Tokenizer(vocab, merges, [EOT])


def make_run(root: Path, tokenizer: Tokenizer, model_overrides: dict | None = None, data: dict | None = None,
             tie: bool = False) -> tuple[Path, TransformerLM]:
    """A run directory with one checkpoint of a randomly initialized model (norm gains randomized too)."""
    torch.manual_seed(0)
    config = TrainConfig()
    config.model = ModelConfig(vocab_size=tokenizer.vocab_size, context_length=96, d_model=64, num_layers=2,
                               num_heads=4, d_ff=96, rope_theta=500.0, tie_embeddings=tie)
    model = TransformerLM(config.model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.uniform_(0.5, 1.5)
            elif "lm_head" in name:
                p.mul_(20)  # confident logits: greedy choices far from ties
    saved = to_dict(config)
    saved["model"].update(model_overrides or {})
    saved["data"].update(data or {})
    tokenizer.save(root / "tokenizer")
    save_checkpoint(model, None, 7, root / "checkpoints" / "step_0000007.pt", extra={"config": saved})
    return root, model


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def exported(request, bpe, tmp_path_factory) -> tuple[TransformerLM, Path]:
    root = tmp_path_factory.mktemp("run")
    run, model = make_run(root, bpe, tie=request.param)
    out = export(run, root / "hf")
    return model.eval(), out


def test_exported_logits_equal_ours_in_transformers(exported):
    model, folder = exported
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    assert hf.config.tie_word_embeddings == model.config.tie_embeddings
    ids = torch.randint(0, model.config.vocab_size, (3, model.config.context_length))
    with torch.no_grad():
        torch.testing.assert_close(hf(input_ids=ids).logits, model(ids), atol=1e-4, rtol=1e-4)


def test_greedy_generation_in_transformers_equals_ours(exported, bpe):
    model, folder = exported
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    prompt = bpe.encode("Once upon a time")
    ours = generate_ids(model, [prompt], max_new_tokens=50, temperature=0.0)[0]  # no stop token: 50 tokens
    config = transformers.GenerationConfig(max_new_tokens=50, do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        theirs = hf.generate(torch.tensor([prompt]), generation_config=config)[0, len(prompt):].tolist()
    assert len(ours) == 50 and theirs == ours


def test_autotokenizer_ids_equal_ours(exported, bpe):
    _, folder = exported
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    texts = TEXTS + [(FIXTURES / name).read_text(encoding="utf-8") for name in FILES]
    for text in texts:
        ids = bpe.encode(text)
        assert hf(text, add_special_tokens=False)["input_ids"] == ids, text[:60]
        assert hf.decode(ids) == bpe.decode(ids)
    assert hf.eos_token == EOT and hf.eos_token_id == bpe.special_token_id(EOT)


def test_gpt2_tokenizer_exports_to_the_same_ids(tmp_path):
    """GPT-2's own vocabulary and merges (which our Tokenizer matches tiktoken on) survive the conversion."""
    gpt2 = Tokenizer.from_files(FIXTURES / "gpt2_vocab.json", FIXTURES / "gpt2_merges.txt", [EOT])
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer_json(gpt2)))
    from tokenizers import Tokenizer as HFTokenizer

    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in TEXTS + [(FIXTURES / name).read_text(encoding="utf-8") for name in FILES]:
        assert hf.encode(text, add_special_tokens=False).ids == gpt2.encode(text)


def test_export_then_import_round_trips_exactly(exported, bpe):
    model, folder = exported
    back = TransformerLM.from_hf(folder)
    assert back.config == model.config
    ours, theirs = model.state_dict(), back.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    tokenizer = tokenizer_from_hf(folder)
    assert (tokenizer.vocab, tokenizer.merges) == (bpe.vocab, bpe.merges)
    assert tokenizer.special_tokens == bpe.special_tokens


def test_a_model_saved_by_transformers_loads_and_samples(exported, tmp_path, capsys):
    """A folder written by transformers itself (not by us) loads with from_hf and through the generate CLI."""
    model, folder = exported
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder)
    hf.save_pretrained(tmp_path)
    transformers.AutoTokenizer.from_pretrained(folder).save_pretrained(tmp_path)
    back = load_llama(tmp_path)
    ids = torch.randint(0, model.config.vocab_size, (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(back(ids), model(ids), atol=1e-5, rtol=1e-5)
    generate_cli.main(["--checkpoint", str(tmp_path), "--prompt", "Once", "--max-new-tokens", "5", "--seed", "0"])
    assert capsys.readouterr().out.startswith("Once")


def test_rope_permutation_is_its_own_inverse_and_pairs_halves():
    w = torch.arange(8.0)[:, None]  # two heads of d=4: rows 0..3, 4..7
    assert interleaved_to_halves(w, 2).flatten().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    assert torch.equal(halves_to_interleaved(interleaved_to_halves(w, 2), 2), w)


@pytest.mark.parametrize(("model_overrides", "data", "named"), [
    ({"norm": "post"}, {}, "model.norm='post'"),
    ({"norm": "none"}, {}, "model.norm='none'"),
    ({"positions": "nope"}, {}, "model.positions='nope'"),
    ({"ffn": "silu"}, {}, "model.ffn='silu'"),
    ({"arch": "spacebyte"}, {}, "model.arch='spacebyte'"),
    ({}, {"tokenizer": "bytes"}, "data.tokenizer='bytes'"),
    ({"attention_window": 16}, {}, "model.attention_window=16"),
])
def test_unsupported_variants_are_refused_naming_the_setting(bpe, tmp_path, capsys, model_overrides, data, named):
    run, _ = make_run(tmp_path, bpe, model_overrides, data)
    assert export_hf.main([str(run), "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {named} cannot be exported") and err.count("\n") == 1
    assert not (tmp_path / "hf").exists()  # nothing half-written


def test_export_cli_writes_the_folder(bpe, tmp_path, capsys):
    run, _ = make_run(tmp_path, bpe)
    assert export_hf.main([str(run), "--out", str(tmp_path / "hf")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == [
        "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    assert export_hf.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "neither a checkpoint file nor a run directory" in capsys.readouterr().err
    future, _ = make_run(tmp_path / "future", bpe, {"d_latent": 8})  # a field this ModelConfig does not know
    assert export_hf.main([str(future), "--out", str(tmp_path / "y")]) == 2
    assert "does not fit ModelConfig" in capsys.readouterr().err


def test_llama_folders_we_cannot_represent_are_refused(exported, tmp_path):
    _, folder = exported
    config = json.loads((folder / "config.json").read_text())
    for field, value, named in [("num_key_value_heads", 2, "num_key_value_heads=2"),
                                ("hidden_act", "gelu", "hidden_act='gelu'"),
                                ("model_type", "gpt2", "model_type 'gpt2'")]:
        (tmp_path / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
        (tmp_path / "config.json").write_text(json.dumps({**config, field: value}))
        with pytest.raises(ValueError, match=named):
            TransformerLM.from_hf(tmp_path)
    with pytest.raises(ValueError, match="no config.json"):
        TransformerLM.from_hf(tmp_path / "empty")
