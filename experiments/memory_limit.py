"""Question 9, in practice: the largest batch of the base model that trains under a memory limit.

    uv run python experiments/memory_limit.py [--cap-mib 512]

The machine is shared, so the limit is imposed, not the machine's: a child process caps its own address space
(RLIMIT_AS) at what it holds after building the model and AdamW plus --cap-mib, then trains one step (forward,
backward, AdamW) at doubling batch sizes until an allocation fails, and bisects between the last batch that fit
and the first that did not. The cap can only make the child fail, never the machine. Each batch's peak resident
memory growth is recorded (a running maximum: after the first failure it no longer tells one batch from another), and the accounting module's prediction (accounting.max_batch_size for the same budget
plus the weights, gradients and AdamW state the child already holds) is set beside the measured limit.
Writes results/memory_limit.json.
"""

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

from common import BASE, ROOT, write_results


def _vm_size() -> int:
    """This process's virtual memory size in bytes (VmSize of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def child(cap_mib: int, start: int) -> None:
    """Runs in the capped process; prints one JSON line per batch tried."""
    import torch

    from cs336_basics.model import ModelConfig, TransformerLM
    from cs336_basics.nn_utils import cross_entropy
    from cs336_basics.training.optimizer import AdamW

    torch.set_num_threads(1)
    config = ModelConfig(**{**BASE["model"], "d_ff": None})
    model = TransformerLM(config)
    optimizer = AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, config.vocab_size, (1, config.context_length + 1))
    for _ in range(2):  # allocate AdamW's state and warm the allocator at batch 1
        cross_entropy(model(x[:, :-1]), x[:, 1:]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    limit = _vm_size() + cap_mib * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def fits(batch: int) -> bool:
        try:
            data = torch.randint(0, config.vocab_size, (batch, config.context_length + 1))
            loss = cross_entropy(model(data[:, :-1]), data[:, 1:])
            loss.backward()
            optimizer.step()
            ok = True
        except (RuntimeError, MemoryError) as e:  # torch: "DefaultCPUAllocator: can't allocate memory ..."
            ok, error = False, str(e).splitlines()[0][:160]
        optimizer.zero_grad(set_to_none=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_rss
        print(json.dumps({"batch": batch, "fits": ok, "peak_rss_growth_mib": peak / 2**20,
                          **({} if ok else {"error": error})}), flush=True)
        return ok

    low, high = 0, start
    while fits(high):
        low, high = high, 2 * high
    while high - low > max(1, low // 16):  # bisect to within ~6%
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cap-mib", type=int, default=512, help="memory the child may add after building the model")
    p.add_argument("--start", type=int, default=16, help="first batch size tried (then doubled)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.cap_mib, args.start)
        return
    import os

    import torch

    from cs336_basics.accounting import max_batch_size, memory_bytes

    os.chdir(ROOT)
    from cs336_basics.model import ModelConfig

    out = subprocess.run([sys.executable, __file__, "--child", "--cap-mib", str(args.cap_mib), "--start",
                          str(args.start)], cwd=ROOT, capture_output=True, text=True)
    tries = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if not tries:
        sys.exit(f"the capped child produced nothing (rc {out.returncode}): {out.stderr.strip()[-500:]}")
    largest = max((t["batch"] for t in tries if t["fits"]), default=0)
    config = ModelConfig(**{**BASE["model"], "d_ff": None})
    held = sum(memory_bytes(config, 0, torch.float32).values())  # weights, gradients, AdamW state: already held
    predicted = max_batch_size(config, args.cap_mib * 2**20 + held, torch.float32)
    result = {"cap_mib": args.cap_mib, "largest_batch_that_fits": largest,
              "first_batch_that_failed": min((t["batch"] for t in tries if not t["fits"]), default=None),
              "accounting_prediction": predicted, "tries": tries}
    for t in tries:
        print(f"batch {t['batch']:5d}: {'fits' if t['fits'] else 'FAILS'}  peak RSS growth "
              f"{t['peak_rss_growth_mib']:.0f} MiB" + (f"  ({t['error']})" if not t["fits"] else ""))
    print(f"largest batch under the {args.cap_mib} MiB cap: {largest} (accounting predicts {predicted})")
    write_results("memory_limit", result)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "experiments"))
    main()
