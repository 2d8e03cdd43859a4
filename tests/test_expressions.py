"""Expression hyperparameters: the safe evaluator against Python's own arithmetic, its refusals, and the config
hook (flags, files, presets; recorded in config.json; a resumed run keeps the value)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs336_basics.accounting import parameter_counts, training_flops_per_token
from cs336_basics.scaling.expressions import NAMES, config_names, evaluate
from cs336_basics.training.config import PRESETS, load_config, resolve, to_dict
from tests.adapters import run_eval_expression

REPO = Path(__file__).resolve().parents[1]
TABLE = {"N": 5e4, "N_total": 9e4, "d": 64.0, "L": 2.0, "T": 32.0, "B": 128.0, "flops": 1.5e9, "steps": 400.0}

# (expression, value): the values are Python's own arithmetic written out, an independent statement of each rule.
KNOWN = [
    ("3e13/flops", 3e13 / 1.5e9),
    ("3e-3*(B/32)**0.5", 3e-3 * (128 / 32) ** 0.5),
    ("steps/10", 40.0),
    ("20*N", 1e6),
    ("-2 + 3", 1.0),
    ("-(2**2)", -4.0),
    ("-2**2", -4.0),  # ** binds tighter than unary minus, as in Python
    ("2**-1", 0.5),
    ("+d", 64.0),
    ("2**3**2", 2.0**9),  # right-associative
    ("7 - 2 - 1", 4.0),  # left-associative
    ("min(d, T)", 32.0),
    ("max(1, 2, 3, L)", 3.0),
    ("sqrt(N_total)", math.sqrt(9e4)),
    ("log(exp(2))", 2.0),
    ("exp(0)", 1.0),
    ("log(N) / log(10)", math.log10(5e4)),
    ("1_000 * 2", 2000.0),
    ("  ( ( 1 + 2 ) * 3 )  ", 9.0),
]


@pytest.mark.parametrize(("expression", "value"), KNOWN)
def test_known_values(expression, value):
    assert run_eval_expression(expression, TABLE) == pytest.approx(value, rel=1e-12)


# Random expression trees over the whitelist, evaluated both ways: ours and Python's eval (trusted input here).
_leaf = st.one_of(st.sampled_from(["N", "d", "T", "B", "steps"]),
                  st.floats(0.1, 100.0).map(lambda x: f"{x:.6g}"), st.integers(1, 50).map(str))
_tree = st.recursive(_leaf, lambda inner: st.one_of(
    st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
    inner.map(lambda x: f"-{x}"),
    st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    inner.map(lambda x: f"sqrt(({x})**2)"),
), max_leaves=12)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(_tree)
def test_random_expressions_match_python(text):
    try:
        expected = eval(text, {"__builtins__": {}, "min": min, "max": max, "sqrt": math.sqrt},  # noqa: S307
                        {k: v for k, v in TABLE.items()})
    except (ZeroDivisionError, ValueError, OverflowError):
        with pytest.raises(ValueError):
            evaluate(text, TABLE)
        return
    if isinstance(expected, complex) or not math.isfinite(expected):
        return
    assert evaluate(text, TABLE) == pytest.approx(expected, rel=1e-9, abs=1e-12)


REFUSED = [
    ("(1).real", "attribute access"),
    ("N.__class__", "attribute access"),
    ("__import__('os')", "calling '__import__' is not allowed"),
    ("open('x')", "calling 'open' is not allowed"),
    ("print(1)", "calling 'print' is not allowed"),
    ("math.sqrt(4)", "calling 'math.sqrt' is not allowed"),
    ("(lambda: 1)()", "not allowed"),
    ("lambda: 1", "a lambda"),
    ("[x for x in (1, 2)]", "a comprehension"),
    ("max(x for x in (1, 2))", "a comprehension"),
    ("{x: 1 for x in (1,)}", "a comprehension"),
    ("x", "unknown name 'x'"),
    ("flop", "unknown name 'flop'"),
    ("__builtins__", "unknown name '__builtins__'"),
    ("10**10**10", "too large"),
    ("9**9**9", "too large"),
    ("2.0**5000", "too large"),
    ("exp(1000)", "too large"),
    ("1/0", "division by zero"),
    ("N/(d-64)", "division by zero"),
    ("0**-1", "division by zero"),
    ("log(0)", "log(0) is undefined"),
    ("sqrt(-1)", "sqrt(-1) is undefined"),
    ("(-8)**(1/3)", "not a real number"),
    ("'abc'", "is not a number"),
    ("True", "is not a number"),
    ("1j", "is not a number"),
    ("N[0]", "indexing"),
    ("N if d else T", "if/else"),
    ("N > 1", "a comparison"),
    ("N and d", "and/or"),
    ("7 // 2", "FloorDiv is not allowed"),
    ("7 % 2", "Mod is not allowed"),
    ("~1", "Invert is not allowed"),
    ("max(1)", "max() takes 2 to 16 arguments"),
    ("sqrt(1, 2)", "sqrt() takes 1 arguments"),
    ("min(1, 2, key=3)", "no keyword arguments"),
    ("(n := 3)", "assignment"),
    ("1 +", "not a valid expression"),
    ("import os", "not a valid expression"),
    ("1; 2", "not a valid expression"),
    ("(" * 400 + "1" + ")" * 400, "cannot evaluate"),
    ("1+" * 300 + "1", "longer than 500 characters"),
]


@pytest.mark.parametrize(("expression", "reason"), REFUSED)
def test_refusals_name_the_field_and_the_expression(expression, reason):
    with pytest.raises(ValueError) as info:
        evaluate(expression, TABLE, "schedule.max_steps")
    message = str(info.value)
    assert message.startswith(f"schedule.max_steps: cannot evaluate {expression!r}"), message
    assert reason in message and "\n" not in message
    with pytest.raises(ValueError):
        run_eval_expression(expression, TABLE)


def test_a_known_name_not_available_yet():
    with pytest.raises(ValueError, match="'steps' is not known yet"):
        evaluate("steps/10", {"N": 1.0}, "run.eval_every")


# ------------------------------------------------------------------------------------------- the config hook


def test_config_names_are_the_accounting_values():
    c = resolve("tiny")
    names = config_names(c)
    counts = parameter_counts(c.model)
    m = c.model
    assert names["N_total"] == sum(counts.values())
    # Independent statement: vocab x d for the embedding and for the untied head; the rest is non-embedding.
    assert names["N_embed"] == 2 * m.vocab_size * m.d_model
    assert names["N"] == names["N_total"] - 2 * m.vocab_size * m.d_model
    assert (names["d"], names["L"], names["T"]) == (m.d_model, m.num_layers, m.context_length)
    assert names["B"] == c.data.batch_size and names["tokens"] == c.data.batch_size * m.context_length
    assert names["flops"] == training_flops_per_token(m) * names["tokens"]
    assert names["steps"] == c.total_steps
    assert set(names) == set(NAMES)


def test_expressions_resolve_in_dependency_order_and_are_recorded():
    overrides = {"model": {"d_ff": "2*d"}, "schedule": {"max_steps": "3e9/flops", "max_lr": "3e-3*(B/32)**0.5"},
                 "run": {"eval_every": "steps/10"}}
    c = resolve("tiny", overrides=overrides)
    assert c.model.d_ff == 2 * c.model.d_model
    flops = training_flops_per_token(c.model) * c.tokens_per_step  # with the resolved d_ff
    assert c.schedule.max_steps == round(3e9 / flops) and isinstance(c.schedule.max_steps, int)
    assert c.schedule.max_lr == pytest.approx(3e-3 * (c.data.batch_size / 32) ** 0.5)
    assert c.run.eval_every == round(c.schedule.max_steps / 10)
    saved = to_dict(c)
    assert saved["expressions"]["schedule.max_steps"] == {"expression": "3e9/flops", "value": c.schedule.max_steps}
    assert saved["schedule"]["max_steps"] == c.schedule.max_steps
    assert load_config(json.loads(json.dumps(saved))) == c  # config.json round trip


def test_a_section_may_be_inconsistent_until_its_expression_is_resolved():
    # The preset has d_model 128 with 4 heads; d_model 12 with the old 4 heads would be refused (head dim 3).
    c = resolve("shakespeare", overrides={"model": {"d_model": 12, "num_heads": "max(1, d/16)"}})
    assert (c.model.d_model, c.model.num_heads) == (12, 1)
    with pytest.raises(ValueError, match=r"head dimension, got d_model/num_heads = 3 \(from model.num_heads = '4'"):
        resolve("shakespeare", overrides={"model": {"d_model": 12, "num_heads": "4"}})
    with pytest.raises(ValueError, match="head dimension, got d_model/num_heads = 3$"):
        resolve("shakespeare", overrides={"model": {"d_model": 12, "num_heads": 4}})  # no expression: as before


def test_a_later_plain_value_replaces_an_expression(tmp_path):
    file = tmp_path / "run.json"
    file.write_text(json.dumps({"schedule": {"max_steps": "3e9/flops"}}))
    c = resolve("tiny", file, {"schedule": {"max_steps": 7}})
    assert c.schedule.max_steps == 7 and c.expressions == {}
    c = resolve("tiny", file, {"model": {"d_model": 64}})  # the expression sees the flag's width
    assert c.schedule.max_steps == round(3e9 / config_names(c)["flops"])


def test_presets_may_hold_expressions(monkeypatch):
    monkeypatch.setitem(PRESETS, "budget", {**PRESETS["tiny"], "schedule": {"max_steps": "1e9/flops"}})
    c = resolve("budget")
    assert c.expressions["schedule.max_steps"]["expression"] == "1e9/flops"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"schedule": {"max_steps": "steps/2"}}, "schedule.max_steps: 'steps/2' uses steps, which depends on "
                                              "schedule.max_steps"),
    ({"schedule": {"max_steps": "1/(d-32)"}}, "schedule.max_steps: cannot evaluate '1/(d-32)': division by zero"),
    ({"schedule": {"max_lr": "1e-3 - d"}}, "schedule.max_lr: '1e-3 - d' = -31.999 is negative"),
    ({"run": {"eval_every": "0.2"}}, "run.eval_every must be positive, got 0 (from the expression '0.2')"),
    ({"model": {"num_heads": "3"}}, "divisible by num_heads (3) (from model.num_heads = '3' = 3)"),
    ({"schedule": {"max_steps": "N.real"}}, "schedule.max_steps: cannot evaluate 'N.real': attribute access"),
    ({"model": {"norm": "2*d"}}, "model.norm: '2*d' is not one of"),  # not a numeric field: no expression
])  # fmt: skip
def test_bad_expressions_in_the_config_name_the_field(overrides, message):
    with pytest.raises(ValueError) as info:
        resolve("tiny", overrides=overrides)
    assert message in str(info.value)


def test_cli_takes_expressions_and_reports_bad_ones_in_one_line(capsys, monkeypatch):
    from cs336_basics.train import build_parser, main

    assert main(["--preset", "tiny", "--schedule.max_steps", "2e9/flops", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["expressions"]["schedule.max_steps"]["expression"] == "2e9/flops"
    out = subprocess.run([sys.executable, "-m", "cs336_basics.train", "--preset", "tiny", "--schedule.max_steps",
                          "__import__('os').getcwd()", "--print-config"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--schedule.max_steps: cannot evaluate" in out.stderr and "not allowed" in out.stderr
    monkeypatch.setenv("COLUMNS", "1000")  # no line wrapping inside the help text
    help_text = build_parser().format_help()
    assert all(f"{name} = " in help_text for name in NAMES)


def test_a_resumed_run_reuses_the_resolved_value(tmp_path):
    from cs336_basics.training.trainer import Trainer

    overrides = {"schedule": {"max_steps": "4e8/flops"}, "run": {"out_dir": str(tmp_path), "name": "r",
                 "eval_every": "steps/2", "checkpoint_every": 4}, "data": {"cache_dir": str(tmp_path / "cache")}}
    config = resolve("tiny", overrides=overrides)
    steps = config.schedule.max_steps
    assert 4 < steps < 40
    Trainer(config, progress=False).train()
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["expressions"]["schedule.max_steps"] == {"expression": "4e8/flops", "value": steps}
    # Doubling the batch would halve the expression's value; a resume keeps the recorded one.
    resumed = Trainer.from_run(tmp_path / "r", {"data": {"batch_size": 16}}, progress=False)
    assert resumed.total_steps == steps and resumed.config.run.eval_every == saved["run"]["eval_every"]
    assert resumed.config.expressions["schedule.max_steps"]["value"] == steps
