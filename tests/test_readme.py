"""Every command and code block of README.md runs as written, in README order, after the default run.

The blocks run in a fresh directory holding what a clone has (the bundled corpus, the test fixtures, the
experiment scripts), with this interpreter standing in for `uv run python` (see DRIVER). Three kinds are not run
exactly as written, each listed below with its reason:

- the default run itself (`uv run python -m cs336_basics.train`, minutes) is replaced by the `tiny` preset, which
  makes the same run directory (`runs/tiny-<date>-<time>/`, same layout) and points `runs/latest` at it;
- the two 256-step seed runs that `cs336_basics.analyze` reads (`--run.name seed0` / `seed1`) train the `tiny`
  preset with the README's flags (same names, seeds, log2 checkpoints and 256 steps; one evaluation and no other
  checkpoints), and their held-out text is the corpus's last 40 lines instead of 3,000 (SHORTER), so that score,
  kl, convergence and the Python block run on them in seconds;
- other training commands that take minutes (the full Shakespeare model, TinyStories) run with `--print-config`
  appended: every flag and file is parsed and the config resolved, the training itself is skipped;
- experiment scripts (tens of minutes each) run with `--help`.

Only commands that need a GPU, a cloud account, several machines or the network (Modal, 8-GPU and multi-node
torchrun, downloads) and `uv run pytest` (this very suite) are not executed at all; `uv run torchrun` runs as
`python -m torch.distributed.run`, which is what the torchrun script does; NOT_EXECUTED lists them with the reason, and the test fails if the README gains a
command that is neither run nor listed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

DEFAULT_RUN = "uv run python -m cs336_basics.train"
STAND_IN = "uv run python -m cs336_basics.train --preset tiny"
NOT_EXECUTED = {
    "uv run pytest": "the test suite itself",
    "uv run modal run ": "needs a Modal account and a cloud GPU",
    "uv run python -m cs336_basics.sweep experiments/sweep_example.json --backend modal": "needs a Modal account",
    "modal volume get ": "needs a Modal account",
    "uv run python -m cs336_basics.data download ": "needs the network",
    "uv run torchrun --standalone --nproc_per_node 8 ": "needs 8 GPUs",
    "uv run torchrun --nnodes ": "needs several machines on a network",
    "uv run python -m cs336_basics.analyze score runs/score-bench ": "a measurement: scores 1 MB of text (minutes)",
}
CHEAP_TRAINING = re.compile(r"--preset tiny\b(?!stories)|--print-config|--help")
SEED_RUN = re.compile(r"--run\.name seed\d ")  # the runs the analyze commands read: trained as the tiny preset
SEED_RUN_QUICKER = " --run.eval_every 256 --run.checkpoint_every 256"  # only the log2 checkpoints, one evaluation
SHORTER = {"tail -n 3000 > held_out.txt": "tail -n 40 > held_out.txt"}  # what analyze scores: a few windows


def code_blocks(text: str) -> list[tuple[str, str]]:
    """[(language, code)] of the fenced blocks tagged bash, sh or python, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(bash|sh|python)\n(.*?)```", text, re.S)]


def shell_commands(code: str) -> list[str]:
    """One string per command: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()  # a trailing comment (never inside our quoted strings)
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


def as_run(command: str) -> str | None:
    """The command the test executes for a README command, or None when it is not executed."""
    if any(command.startswith(prefix) for prefix in NOT_EXECUTED):
        return None
    if command == DEFAULT_RUN:
        command = STAND_IN
    elif command.startswith(DEFAULT_RUN + " ") and SEED_RUN.search(command):
        command = STAND_IN + command[len(DEFAULT_RUN):] + SEED_RUN_QUICKER
    elif command.startswith(DEFAULT_RUN + " ") and not CHEAP_TRAINING.search(command):
        command += " --print-config"
    elif command.startswith("uv run python experiments/"):
        command += " --help"
    for long, short in SHORTER.items():
        command = command.replace(long, short)
    command = command.replace("uv run torchrun ", "python -m torch.distributed.run ", 1)  # what torchrun runs
    return command.replace("uv run python ", "python ", 1)


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A directory laid out like a fresh clone for the parts the README uses (the big ones linked, not copied)."""
    root = tmp_path_factory.mktemp("clone")
    (root / "data").mkdir()
    os.symlink(REPO / "data" / "shakespeare.txt.gz", root / "data" / "shakespeare.txt.gz")
    (root / "tests").mkdir()
    for name in ("fixtures",):
        os.symlink(REPO / "tests" / name, root / "tests" / name)
    for name in ("experiments", "benchmarks"):
        os.symlink(REPO / name, root / name)
    return root


def test_readme_has_the_blocks_this_test_expects():
    blocks = code_blocks(README.read_text())
    commands = [c for lang, code in blocks if lang != "python" for c in shell_commands(code)]
    assert DEFAULT_RUN in commands and len([b for b in blocks if b[0] == "python"]) >= 4
    assert commands.index(DEFAULT_RUN) == 0  # everything else runs after the default run
    assert sum(bool(SEED_RUN.search(c)) for c in commands) == 2
    assert all(any(long in c for c in commands) for long in SHORTER)  # each stand-in still has its README command


def test_commands_that_take_minutes_are_cut_short():
    assert as_run(DEFAULT_RUN).endswith("cs336_basics.train --preset tiny")
    assert as_run(DEFAULT_RUN + " --preset tinystories").endswith("--preset tinystories --print-config")
    assert as_run(DEFAULT_RUN + " --preset tiny").endswith("--preset tiny")
    assert as_run("uv run python experiments/lr_sweep.py").endswith("experiments/lr_sweep.py --help")
    assert as_run("uv run modal run cs336_basics/train_modal.py --preset shakespeare") is None
    seed_run = DEFAULT_RUN + " --run.name seed1 --run.seed 1 --run.checkpoint_steps log2 --schedule.max_steps 256"
    assert as_run(seed_run) == ("python -m cs336_basics.train --preset tiny --run.name seed1 --run.seed 1 "
                                "--run.checkpoint_steps log2 --schedule.max_steps 256" + SEED_RUN_QUICKER)
    held_out = as_run("gunzip -c data/shakespeare.txt.gz | tail -n 3000 > held_out.txt")
    assert held_out == "gunzip -c data/shakespeare.txt.gz | tail -n 40 > held_out.txt"
    assert as_run("uv run python -m cs336_basics.analyze kl runs/seed0 runs/seed1 --step 256 --text held_out.txt "
                  "--out kl.npz") == "python -m cs336_basics.analyze kl runs/seed0 runs/seed1 --step 256 --text " \
                                     "held_out.txt --out kl.npz"
    assert as_run("uv run torchrun --standalone --nproc_per_node 2 -m cs336_basics.train --preset tiny") == (
        "python -m torch.distributed.run --standalone --nproc_per_node 2 -m cs336_basics.train --preset tiny")


# Runs the steps in one process, so torch is imported once (a fresh interpreter per command costs seconds each):
# `python -m X args` through runpy with sys.argv set (what `python -m` does), scripts through run_path, python
# blocks through exec in a fresh namespace, anything else (echo, printf) through the shell.
DRIVER = """
import json, os, runpy, shlex, subprocess, sys, time, warnings
warnings.filterwarnings("ignore", message=".*found in sys.modules after import of package")  # runpy, harmless
start = time.perf_counter()
for kind, text in json.load(open(sys.argv[1])):
    if kind == "python":
        exec(compile(text, "<README python block>", "exec"), {"__name__": "__readme__"})
    else:
        argv = shlex.split(text)
        code = 0
        if argv[:2] == ["python", "-m"]:
            sys.argv = argv[2:]
            try:
                runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
            except SystemExit as e:
                code = e.code
        elif argv[0] == "python":
            sys.argv = argv[1:]
            sys.path.insert(0, os.path.dirname(os.path.abspath(argv[1])))  # as `python script.py` does
            try:
                runpy.run_path(argv[1], run_name="__main__")
            except SystemExit as e:
                code = e.code
        else:
            code = subprocess.run(text, shell=True, executable="/bin/bash").returncode
        if code not in (0, None):
            sys.exit(f"README command failed with exit code {code}: {text}")
    print(f"{time.perf_counter() - start:7.1f}s ok: {text.splitlines()[0]}", file=sys.stderr, flush=True)
"""


def test_every_readme_command_and_snippet_runs(clone):
    steps, skipped = [], []
    for lang, code in code_blocks(README.read_text()):
        if lang == "python":
            steps.append(("python", code))
            continue
        for command in shell_commands(code):
            run = as_run(command)
            if run is None:
                skipped.append(command)
            else:
                steps.append(("shell", run))
    (clone / "steps.json").write_text(json.dumps(steps))
    # one torch thread: on a busy 2-core machine two threads spin against each other (the tiny seed runs took 5x
    # the CPU time with two); no README command depends on the thread count
    env = {**os.environ, "PYTHONHASHSEED": "0", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", DRIVER, "steps.json"], cwd=clone, capture_output=True,
                            text=True, timeout=1200, env=env)
    print(result.stderr[-5000:])
    assert result.returncode == 0, result.stderr[-5000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.count(" ok: ") == len(steps) >= 25
    assert (clone / "runs" / "latest" / "checkpoints").is_dir() and len(skipped) <= 20, skipped
    # the analyze commands read the stand-in seed runs and wrote what the README says they write
    assert (clone / "runs" / "seed1" / "checkpoints" / "step_0000256.pt").is_file()
    assert (clone / "scores.npz").is_file() and (clone / "kl.npz").is_file()
    assert (clone / "convergence" / "convergence.csv").is_file()
