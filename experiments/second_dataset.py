"""Question 12: the same model and budget on the "harder" second corpus (Python standard-library code).

    uv run python experiments/second_dataset.py [--dataset code|owt] [--steps 200]

Trains the base model on --dataset (default: the code corpus; `owt` when data/owt_*.txt exist) and compares it
with the same model on Shakespeare (the baseline run, see common.baseline_run), each with its own 2,048-token BPE
trained on that corpus, same steps, batch and learning rate. Loss per token is not
comparable across tokenizers, so the figure (learning_curves/second_dataset.png) shows validation bits per byte;
results/second_dataset.json (final loss, bits/byte, bytes/token and a 256-token sample of each).
"""

import math
from argparse import Namespace
from pathlib import Path

from common import baseline_run, parser, plot, setup, train_run, write_results


def main() -> None:
    p = parser(__doc__, dataset="code")
    args = p.parse_args()
    if args.dataset == "shakespeare":
        p.error("--dataset: pick the corpus to compare with Shakespeare (code, tinystories or owt)")
    setup(args)
    other = args.dataset
    outcomes = {}
    shakespeare_run, outcomes["shakespeare"] = baseline_run(Namespace(**{**vars(args), "dataset": "shakespeare"}),
                                                            "second_dataset", "shakespeare")
    outcomes[other] = train_run("second_dataset", other, Namespace(**{**vars(args), "dataset": other}),
                                {"run": {"sample_tokens": 256}})
    other_run = Path(outcomes[other]["run_dir"])
    outcomes[other]["sample"] = (other_run / "sample.txt").read_text()
    for outcome in outcomes.values():  # val_loss / (val_bpb ln 2) = bytes per token of the validation text
        outcome["bytes_per_token"] = outcome["val_loss"] / outcome["val_bpb"] / math.log(2)
    # like the other experiments: --steps N writes its own files (_stepsN) next to the base budget's
    suffix = ("" if other == "code" else f"_{other}") + (f"_steps{args.steps}" if args.steps else "")
    plot([shakespeare_run, other_run], f"second_dataset{suffix}.png",
         title=f"Shakespeare vs {other}, same model and budget: bits per byte (the tokenizers differ)", metric="bpb")
    write_results(f"second_dataset{suffix}", outcomes)


if __name__ == "__main__":
    main()
