"""Question 12: the same model and budget on the "harder" second corpus (Python standard-library code).

    uv run python experiments/second_dataset.py [--steps 200] [--other code|owt]

Trains the base model on Shakespeare and on --other (default: the code corpus; `owt` when data/owt_*.txt exist),
each with its own 2,048-token BPE trained on that corpus, same steps, batch and learning rate. Loss per token is not
comparable across tokenizers, so the writeup compares bits per byte too. Figure: learning_curves/second_dataset.png;
results/second_dataset.json (final loss, bits/byte, bytes/token and a 256-token sample of each).
"""

from argparse import Namespace
from pathlib import Path

from common import parser, plot, setup, train_run, write_results


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--other", default="code", choices=["code", "owt"])
    args = p.parse_args()
    setup(args)
    outcomes = {}
    for dataset in ("shakespeare", args.other):
        run_args = Namespace(**{**vars(args), "dataset": dataset})
        outcome = train_run("second_dataset", dataset, run_args, {"run": {"sample_tokens": 256}})
        run_dir = Path(outcome["run_dir"])
        outcome["sample"] = (run_dir / "sample.txt").read_text() if (run_dir / "sample.txt").is_file() else None
        outcome["bytes_per_token"] = outcome["val_loss"] / outcome["val_bpb"] / 0.6931471805599453
        outcomes[dataset] = outcome
    plot([Path(o["run_dir"]) for o in outcomes.values()], f"second_dataset{'' if args.other == 'code' else '_' + args.other}.png",
         title=f"same model and budget: Shakespeare vs {args.other}")
    write_results("second_dataset", outcomes)


if __name__ == "__main__":
    main()
