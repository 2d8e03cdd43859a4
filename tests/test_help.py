"""`--help` of every command answers at once (no torch, no matplotlib loaded: torch alone costs seconds) and the
train command describes every config field in one line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cs336_basics.train import build_parser
from cs336_basics.training.config import flat_fields
from cs336_basics.training.config_help import FIELD_HELP

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [["train"], ["train_bpe"], ["tokenize_data"], ["generate"], ["evaluate"], ["plot"], ["accounting"],
            ["data"], ["data", "download"], ["export_hf"]]
PROBE = """
import runpy, sys
module, args = sys.argv[1], sys.argv[2:]
sys.argv = [module, *args, "--help"]
try:
    runpy.run_module(module, run_name="__main__")
except SystemExit as e:
    assert e.code in (0, None), e.code
heavy = sorted(m for m in ("torch", "matplotlib") if m in sys.modules)
print("HEAVY:", ",".join(heavy) or "none")
"""


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_loads_no_heavy_library(command):
    module, *args = command
    result = subprocess.run([sys.executable, "-c", PROBE, f"cs336_basics.{module}", *args], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m cs336_basics.{module}")
    assert result.stdout.rstrip().endswith("HEAVY: none")


def test_every_config_field_has_a_one_line_description():
    fields = flat_fields()
    assert set(FIELD_HELP) == set(fields), set(FIELD_HELP) ^ set(fields)
    assert all(text and "\n" not in text and len(text) <= 110 for text in FIELD_HELP.values())
    help_text = " ".join(build_parser().format_help().split())  # argparse wraps lines
    for dotted, text in FIELD_HELP.items():
        assert re.search(rf"--{re.escape(dotted)} \[?V\]? {re.escape(' '.join(text.split()))} \[", help_text), dotted


def test_importing_the_config_does_not_load_torch():
    code = "import sys, cs336_basics.training.config, cs336_basics.train; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
