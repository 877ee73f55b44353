"""asv benchmarks for fastbp (run from asv_benchmarks/, see docs/benchmarks.md)."""
