"""Question 11: architecture ablations of the base model, each against the baseline at the same budget.

    uv run python experiments/ablations.py [--dataset shakespeare] [--steps 200]

Runs (runs/ablations/<variant>) against the baseline (pre-norm, RoPE, SwiGLU d_ff 320: the learning-rate sweep's
run at the base rate 3e-3, see common.baseline_run): no_norm (every RMSNorm removed) at the baseline rate, at a
10x lower one and at 1e-2 (where the normalized model still trains); post_norm; nope (no position information at
all); silu (plain SiLU FFN with d_ff 480, so 2 x 128 x 480 = 3 x 128 x 320 weights per layer: matched parameters).
Figures: learning_curves/ablation_<name>.png (baseline vs each variant); results/ablations.json.
"""

from common import BASE, baseline_run, parser, plot, runs_dir, setup, train_run, write_results

LR = BASE["schedule"]["max_lr"]
VARIANTS = {
    "no_norm": {"model": {"norm": "none"}},
    "no_norm_low_lr": {"model": {"norm": "none"}, "schedule": {"max_lr": LR / 10, "min_lr": LR / 100}},
    "no_norm_high_lr": {"model": {"norm": "none"}, "schedule": {"max_lr": 1e-2, "min_lr": 1e-3}},
    "post_norm": {"model": {"norm": "post"}},
    "nope": {"model": {"positions": "nope"}},
    "silu": {"model": {"ffn": "silu", "d_ff": 480}},
}
FIGURES = {"layer_norm": ["no_norm", "no_norm_low_lr", "no_norm_high_lr"], "pre_vs_post_norm": ["post_norm"],
           "nope": ["nope"], "swiglu_vs_silu": ["silu"]}


def main() -> None:
    args = parser(__doc__).parse_args()
    setup(args)
    baseline, outcomes = baseline_run(args, "ablations")
    outcomes = {"baseline": outcomes}
    outcomes.update({name: train_run("ablations", name, args, overrides) for name, overrides in VARIANTS.items()})
    out = runs_dir("ablations", args.dataset)
    suffix = "" if args.dataset == "shakespeare" else f"_{args.dataset}"
    for figure, variants in FIGURES.items():
        runs = [baseline] + [out / v for v in variants]
        plot(runs, f"ablation_{figure}{suffix}.png", title=f"ablation: {figure.replace('_', ' ')}")
    write_results(f"ablations{suffix}", outcomes)


if __name__ == "__main__":
    main()
