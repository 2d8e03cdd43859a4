"""Question 13: our own modifications, compared at a fixed wall-clock budget (x-axis: minutes of training).

    uv run python experiments/own_modification.py [--dataset shakespeare] [--seconds 60]

The cosine schedule needs its length in steps up front, so each variant first times a few training steps (after
a warm-up) in a throwaway trainer, and is then given as many steps as fit in --seconds at that speed. Variants:
- baseline: the base model (scratch attention, untied embeddings);
- fused_attention: attention through torch's fused scaled_dot_product_attention (same maths, faster kernel), so
  more steps fit in the budget;
- fused_tied: the same plus tied input/output embeddings (262K fewer parameters, the same compute);
- fused_wide_shallow: fused attention, d_model 192 with 2 layers instead of 128 with 4 (about the same
  FLOPs per token, fewer sequential layers).
The load on the machine changes the step times; results/own_modification.json records the calibrated step times.
Figure: learning_curves/own_modification.png (x = wall-clock).
"""

import time

from common import BASE, deep_merge, dataset_overrides, parser, plot, runs_dir, setup, train_run, write_results

VARIANTS = {
    "baseline": {},
    "fused_attention": {"model": {"attn_backend": "torch"}},
    "fused_tied": {"model": {"attn_backend": "torch", "tie_embeddings": True}},
    "fused_wide_shallow": {"model": {"attn_backend": "torch", "d_model": 192, "num_layers": 2, "num_heads": 6}},
}


def seconds_per_step(settings: dict, warmup: int = 3, steps: int = 10) -> float:
    """Mean time of `steps` training steps after `warmup` (a throwaway trainer, no run dir)."""
    from cs336_basics.training.config import resolve
    from cs336_basics.training.trainer import Trainer

    trainer = Trainer(resolve(None, overrides=settings), run_dir="runs/own_modification/.calibration",
                      progress=False)
    for _ in range(warmup):
        trainer.train_step()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seconds", type=float, default=60.0, help="training wall-clock budget per variant")
    args = p.parse_args()
    setup(args)
    outcomes = {}
    for name, overrides in VARIANTS.items():
        step_time = seconds_per_step(deep_merge(BASE, dataset_overrides(args.dataset), overrides))
        steps = max(10, int(args.seconds / step_time))
        outcome = train_run("own_modification", name, args, overrides,
                            {"schedule": {"max_steps": steps}, "run": {"eval_every": max(5, steps // 8)}})
        outcomes[name] = {**outcome, "calibrated_seconds_per_step": step_time}
    out = runs_dir("own_modification", args)
    suffix = "" if args.dataset == "shakespeare" else f"_{args.dataset}"
    plot([out / name for name in VARIANTS], f"own_modification{suffix}.png", x="time",
         title=f"own modifications at a fixed {args.seconds:g} s training budget")
    write_results(f"own_modification{suffix}", outcomes)


if __name__ == "__main__":
    main()
