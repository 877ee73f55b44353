"""Start-up costs, each in a fresh Python subprocess running the same script:
import fastbp, build the tiny network (64-32-10), train one epoch (8000 rows, batch 32).

- ``time_first_compile``: with an empty ``NUMBA_CACHE_DIR`` (a new one for every
  call), so every kernel the script touches is compiled: what a user pays the
  first time.
- ``time_cold_start``: with a ``NUMBA_CACHE_DIR`` that setup has already filled,
  so the kernels are loaded from Numba's on-disk cache: what every later
  process pays.

Both include the interpreter's start-up and the imports of NumPy and Numba.
"""

import os
import shutil
import subprocess
import sys
import tempfile

SCRIPT = """
import numpy as np
import fastbp
rng = np.random.default_rng(0)
X = rng.standard_normal((8000, 64), dtype=np.float32)
y = rng.integers(0, 10, 8000)
net = fastbp.Network([64, 32, 10], activation="relu", output="softmax", loss="cross_entropy",
                     dtype="float32", seed=0)
net.fit(X, y, epochs=1, batch_size=32, lr=0.01, verbose=0)
"""


def run_script(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed ({proc.returncode}):\n{proc.stderr}")


class FirstCompile:
    # A cold compile takes ~25 s on a 2-core machine: one call per sample, no warm-up call.
    timeout = 600
    number = 1
    repeat = 1
    warmup_time = 0

    def setup(self):
        self.root = tempfile.mkdtemp(prefix="fastbp-asv-cold-")

    def teardown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def time_first_compile(self):
        run_script(tempfile.mkdtemp(dir=self.root))


class ColdStart:
    timeout = 600
    number = 1
    repeat = (1, 5, 20.0)
    warmup_time = 0

    def setup_cache(self):
        # Runs once per `asv run` (per environment and commit), in a working
        # directory that asv keeps for this class's benchmarks and removes
        # afterwards: compile once into a cache there.
        cache_dir = os.path.abspath("numba-cache")
        os.makedirs(cache_dir, exist_ok=True)
        run_script(cache_dir)
        return cache_dir

    def time_cold_start(self, cache_dir):
        run_script(cache_dir)
