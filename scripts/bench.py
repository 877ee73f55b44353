#!/usr/bin/env python
"""Benchmark fastbp against PyTorch, JAX and scikit-learn: a thin wrapper around ``fastbp.bench``.

    python scripts/bench.py --help
    python scripts/bench.py --quick --only tiny --peers none     # a smoke run, a few seconds
    python scripts/bench.py --json bench.json --plot bench.png   # the full run, several minutes

Peers: pip install -e '.[bench]' (scikit-learn, JAX, matplotlib) and pip install torch==2.13.0.
"""

import os
import sys

try:
    import fastbp.bench  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from fastbp.bench import main

if __name__ == "__main__":
    sys.exit(main())
