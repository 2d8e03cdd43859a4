"""Question 5: the assignment's toy SGD (step size lr / sqrt(t + 1)) on a 10x10 quadratic at three learning rates.

    uv run python experiments/sgd_toy.py

loss = mean(w^2) with w ~ 5 * N(0, 1) (seed 0), 10 steps each at lr 1e1, 1e2, 1e3 (and 1, for reference).
Prints the losses and writes results/sgd_toy.json.
"""

import argparse
import os

from common import ROOT, write_results

RATES = [1.0, 1e1, 1e2, 1e3]


def losses(lr: float, steps: int = 10) -> list[float]:
    import torch

    from cs336_basics.training.optimizer import SGD

    torch.manual_seed(0)
    weights = torch.nn.Parameter(5 * torch.randn((10, 10)))
    optimizer = SGD([weights], lr=lr)
    out = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (weights**2).mean()
        out.append(loss.item())
        loss.backward()
        optimizer.step()
    return out


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    os.chdir(ROOT)
    results = {f"{lr:g}": losses(lr) for lr in RATES}
    for lr, values in results.items():
        print(f"lr {lr:>5}: " + " ".join(f"{v:.3g}" for v in values))
    write_results("sgd_toy", results)


if __name__ == "__main__":
    main()
