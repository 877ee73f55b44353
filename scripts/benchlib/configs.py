"""The benchmark configurations and their data: one definition, shared with the asv suite.

``asv_benchmarks/benchmarks/common.py`` defines the four configurations (tiny,
mnist, mnist-b32, wide), the learning rate and the random data; it is loaded
here by its path (asv imports it as ``benchmarks.common``, a name too generic to
put on ``sys.path``). ``CONFIGS`` gives each as (layer sizes, batch size,
samples per epoch), the full epoch's sample count.
"""

import argparse
import importlib.util
import os
import sys

ASV_COMMON = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "asv_benchmarks",
                          "benchmarks", "common.py")


def _load_common():
    name = "_fastbp_asv_common"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.normpath(ASV_COMMON))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


common = _load_common()
LR = common.LR
# name: (layer sizes, batch size, samples per epoch)
CONFIGS = {name: (list(c.layers), c.batch_size, c.full_samples) for name, c in common.CONFIGS.items()}


def make_data(layers, n, seed, dtype="float32"):
    """X ~ N(0, 1) of shape (n, layers[0]) and integer labels uniform in [0, layers[-1]), from ``seed``."""
    return common.make_data(layers, n, dtype, seed)


make_network = common.make_network  # the one network of every benchmark


def parse_config(text):
    """``"784,512,10:64:20000"`` (layer sizes : batch : samples) -> (name, (sizes, batch, samples))."""
    parts = str(text).split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        sizes = [int(w) for w in parts[0].split(",") if w.strip()]
        batch, samples = int(parts[1]), int(parts[2])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected sizes:batch:samples such as 784,512,10:64:20000, got {text!r}") from None
    if len(sizes) < 2 or any(w < 1 for w in sizes) or sizes[-1] < 2 or batch < 1 or samples < 1:
        raise argparse.ArgumentTypeError(
            f"expected at least two widths >= 1 (the output >= 2 for softmax), batch >= 1 and samples >= 1, "
            f"got {text!r}")
    return "-".join(map(str, sizes)) + f"/b{batch}", (sizes, batch, samples)
