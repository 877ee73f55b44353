"""Helpers of scripts/bench.py (the benchmark against PyTorch, JAX and scikit-learn) and scripts/profile_epoch.py.

- ``configs``: the benchmark configurations and data, from the asv suite's
  ``asv_benchmarks/benchmarks/common.py`` (their one definition), and the
  ``SIZES:BATCH:SAMPLES`` option parser;
- ``machine``: the CPU, BLAS libraries and versions, /proc sampling of the
  other processes' load;
- ``workers``: what runs in each measuring process (one framework each);
- ``report``: the tables and the width plot.

Not part of the installed package: the wheel ships the trainer only.
"""
