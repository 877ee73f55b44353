#!/usr/bin/env bash
# Run asv benchmarks over past commits without building a virtualenv per commit.
#
#   scripts/asv_history.sh [-b REGEX] [-f] [-a ATTR=VALUE]... COMMIT...
#
# -b: the benchmarks (asv's --bench regex; default the training throughput);
# -f: full statistics (asv's default sampling) instead of one --quick sample;
# -a: a benchmark attribute passed to asv run (e.g. -a rounds=4: four processes, median quoted).
#
# Each commit's tree is exported (git archive) to a temporary directory and put
# first on the benchmark processes' path through ASV_PYTHONPATH; asv runs in the
# current interpreter (--python=same) and files the results under that commit
# (--set-commit-hash), in asv_benchmarks/results/. The benchmark suite is the
# one of the working tree, so every commit is measured by the same code.
# ASV_MACHINE names the asv machine (default: this host's). Runs at the lowest
# CPU priority. The interpreter's numpy/numba/scipy must suit every commit (true
# for this project's history so far).
set -euo pipefail
cd "$(dirname "$0")/../asv_benchmarks"

bench='^bench_training\.Epoch\.'  # the training throughput (time_epoch, track_samples_per_second)
quick=--quick
attrs=()
usage="usage: $0 [-b REGEX] [-f] [-a ATTR=VALUE]... COMMIT..."
while getopts "b:fa:" opt; do
    case $opt in
        b) bench=$OPTARG ;;
        f) quick= ;;
        a) attrs+=(-a "$OPTARG") ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
(( $# )) || { echo "$usage" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for rev in "$@"; do
    sha=$(git rev-parse --verify "$rev^{commit}")
    tree="$tmp/$sha"
    mkdir -p "$tree"
    git -C .. archive "$sha" fastbp | tar -x -C "$tree"
    echo "== $(git log -1 --format='%h %ad %s' --date=iso "$sha" | cut -c1-110)"
    ASV_PYTHONPATH="$tree" NUMBA_CACHE_DIR="$tree/.numba_cache" \
        nice -n 19 asv run --python=same $quick ${ASV_MACHINE:+--machine "$ASV_MACHINE"} --set-commit-hash "$sha" -b "$bench" "${attrs[@]}" --show-stderr \
        || echo "asv: some benchmarks failed at $sha (older code without the API they use); the others are kept"
    rm -rf "$tree"
done
