"""Question 11: architecture ablations of the base model, each against the baseline at the same budget.

    uv run python experiments/ablations.py [--dataset shakespeare] [--steps 200] [--seeds 0 1 2] [--variants ...]

Runs (runs/ablations/<variant>) against the baseline (pre-norm, RoPE, SwiGLU d_ff 320: the learning-rate sweep's
run at the base rate 3e-3, see common.baseline_run): no_norm (every RMSNorm removed) at the baseline rate, at a
10x lower one and at 1e-2 (where the normalized model still trains); post_norm; nope (no position information at
all); silu (plain SiLU FFN with d_ff 480, so 2 x 128 x 480 = 3 x 128 x 320 weights per layer: matched parameters).
The KEY variants (or --seeded-variants) are trained once per --seeds value; --variants picks a subset.
Figures: learning_curves/ablation_<name>.png (baseline vs each variant, seed 0; only figures whose variants all
ran; the y-axis stops at ln(vocab) + 0.5); results/ablations.json.
"""

import json
import math

from common import BASE, baseline_run, parser, plot, runs_dir, seeded_runs, setup, train_run, write_results

LR = BASE["schedule"]["max_lr"]
VARIANTS = {
    "no_norm": {"model": {"norm": "none"}},
    "no_norm_low_lr": {"model": {"norm": "none"}, "schedule": {"max_lr": LR / 10, "min_lr": LR / 100}},
    "no_norm_high_lr": {"model": {"norm": "none"}, "schedule": {"max_lr": 1e-2, "min_lr": 1e-3}},
    "post_norm": {"model": {"norm": "post"}},
    "nope": {"model": {"positions": "nope"}},
    "silu": {"model": {"ffn": "silu", "d_ff": 480}},
}
KEY = ["no_norm", "post_norm", "nope", "silu"]
FIGURES = {"layer_norm": ["no_norm", "no_norm_low_lr", "no_norm_high_lr"], "pre_vs_post_norm": ["post_norm"],
           "nope": ["nope"], "swiglu_vs_silu": ["silu"]}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                   help="which variants to train (default: all)")
    p.add_argument("--seeded-variants", nargs="*", choices=list(VARIANTS), default=KEY,
                   help="the variants trained once per --seeds value (default: %(default)s)")
    args = p.parse_args()
    setup(args)
    baseline, outcomes = baseline_run(args, "ablations")
    outcomes = {"baseline": outcomes}
    for name in args.variants:
        run = seeded_runs if name in args.seeded_variants else train_run
        outcomes[name] = run("ablations", name, args, VARIANTS[name])
    out = runs_dir("ablations", args)
    suffix = ("" if args.dataset == "shakespeare" else f"_{args.dataset}") + (f"_steps{args.steps}" if args.steps
                                                                              else "")
    for figure, variants in FIGURES.items():
        if not set(variants) <= set(args.variants):
            continue
        runs = [baseline] + [out / v for v in variants]
        # a uniform guess plus 0.5: a spike of one run (no_norm_high_lr's first steps) does not set the y-range
        ymax = math.log(json.loads((out / variants[0] / "config.json").read_text())["model"]["vocab_size"]) + 0.5
        plot(runs, f"ablation_{figure}{suffix}.png", title=f"ablation: {figure.replace('_', ' ')}", ymax=ymax)
    write_results(f"ablations{suffix}", outcomes)


if __name__ == "__main__":
    main()
