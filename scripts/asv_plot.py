#!/usr/bin/env python
"""Plot one asv benchmark across commits from the results JSON (asv_benchmarks/results/), as a PNG.

    python scripts/asv_plot.py                                  # mnist samples/s -> docs/bench_output/asv_mnist.png
    python scripts/asv_plot.py --config wide --out wide.png

Reads every ``<commit>-<env>.json`` of one machine, takes the benchmark's value
for each (config, dtype), orders the commits by their date and draws one line
per dtype, a commit per tick (its short hash). ``asv publish`` makes the
interactive HTML from the same files; this is the still image for the docs.
"""

import argparse
import glob
import itertools
import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
RESULTS = os.path.join(ROOT, "asv_benchmarks", "results")
BENCH = "bench_training.Epoch.track_samples_per_second"


def _values(path, bench):
    """(commit hash, commit date, {param tuple: value}) of one results file, or None without ``bench``."""
    with open(path) as f:
        d = json.load(f)
    entry = d.get("results", {}).get(bench)
    if entry is None:
        return None
    row = dict(zip(d["result_columns"], entry))
    params = list(itertools.product(*row["params"])) if row.get("params") else [()]
    values = {tuple(p.strip("'") for p in combo): v for combo, v in zip(params, row["result"] or [])}
    return d["commit_hash"], d["date"], values


def _subject(commit):
    try:
        out = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s", commit], check=True,
                             capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return commit[:7]
    return out if len(out) <= 42 else out[:40] + "..."


def main(argv=None):
    p = argparse.ArgumentParser(prog="scripts/asv_plot.py", description=__doc__.splitlines()[0])
    p.add_argument("--machine", help="the asv machine name (default: the only one in the results)")
    p.add_argument("--bench", default=BENCH, help=f"benchmark name (default {BENCH})")
    p.add_argument("--config", default="mnist", help="the config parameter to plot (default mnist)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "bench_output", "asv_mnist.png"),
                   help="the PNG to write (default docs/bench_output/asv_mnist.png)")
    args = p.parse_args(argv)

    machines = sorted(os.path.basename(os.path.dirname(m))
                      for m in glob.glob(os.path.join(RESULTS, "*", "machine.json")))
    machine = args.machine or (machines[0] if len(machines) == 1 else None)
    if machine not in machines:
        p.error(f"--machine: expected one of {machines}, got {args.machine!r}")
    runs = [v for v in (_values(f, args.bench) for f in glob.glob(os.path.join(RESULTS, machine, "*.json"))
                        if not f.endswith("machine.json")) if v]
    if not runs:
        p.error(f"no results of {args.bench} for machine {machine!r} in {RESULTS}")
    runs.sort(key=lambda r: r[1])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = sorted({k[1] for _, _, v in runs for k in v if len(k) > 1 and k[0] == args.config})
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    x = range(len(runs))
    for dtype, style in zip(dtypes, ("o-", "s--", "^:")):
        ys = [v.get((args.config, dtype)) for _, _, v in runs]
        ax.plot([i for i, y in zip(x, ys) if y is not None], [y for y in ys if y is not None], style, label=dtype)
    ax.set_xticks(list(x))
    ax.set_xticklabels([_subject(c) for c, _, _ in runs], rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("samples / s (higher is better)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{args.bench}\nconfig {args.config}, machine {machine}, commits in date order", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out} ({len(runs)} commits)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
