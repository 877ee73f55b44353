#!/usr/bin/env python
"""Sweep the learning rate and hidden width on the bundled digits; write a CSV and a plot.

    python scripts/sweep_lr.py [--lrs 0.003,0.01,0.03,0.1,0.3] [--widths 16,64] [--epochs 20] [--out sweep_lr]

Every (lr, width) pair is trained with plain SGD through fastbp.sweep, which
trains the networks of one width side by side in one compiled call.
"""

import argparse
import os

import fastbp
from fastbp.datasets import digits


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lrs", default="0.003,0.01,0.03,0.1,0.3", help="learning rates, comma-separated")
    p.add_argument("--widths", default="16,64", help="hidden widths, comma-separated")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, default=2, help="seeds per setting")
    p.add_argument("--out", default="sweep_lr", help="output directory")
    args = p.parse_args(argv)

    X, y = digits()
    lrs = [float(v) for v in args.lrs.split(",")]
    widths = [int(v) for v in args.widths.split(",")]
    result = fastbp.sweep({"lr": lrs, "layers": [[w] for w in widths], "seed": list(range(args.seeds))}, X, y,
                          validation_split=0.2, epochs=args.epochs, batch_size=32, optimizer="sgd")
    os.makedirs(args.out, exist_ok=True)
    result.to_csv(os.path.join(args.out, "trials.csv"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for w in widths:
        means = []
        for lr in lrs:
            accs = [t["final"]["val_accuracy"] for t in result.trials
                    if t["config"]["lr"] == lr and t["config"]["layers"] == [w]]
            means.append(sum(accs) / len(accs))
        ax.plot(lrs, means, "o-", label=f"64-{w}-10")
    ax.set(xscale="log", xlabel="learning rate", ylabel="validation accuracy",
           title=f"digits, SGD, {args.epochs} epochs (mean of {args.seeds} seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "accuracy_vs_lr.png"))
    best = result.best
    print(f"best: lr {best['config']['lr']}, width {best['config']['layers'][0]}, "
          f"val_accuracy {best['final']['val_accuracy']:.4f}")
    print(f"wrote {args.out}/trials.csv and {args.out}/accuracy_vs_lr.png")


if __name__ == "__main__":
    main()
