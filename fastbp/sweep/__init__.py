"""Hyperparameter sweeps: many networks per compiled call, resumable results, local or on Dask.

Trials that share their shape (layers, activations, output, cost, init, batch
size, epochs, dtype) and differ in optimizer settings, schedule or seed are
trained together: their flat parameter vectors are stacked and one compiled
call runs an epoch of all of them with ``prange`` over the networks. Each
network is trained by the same single-network epoch code as ``Network.fit``,
on one core, with its own shuffling RNG, so retraining a trial alone with the
same seed gives the same network.

Successive halving (``prune``) runs the trials rung by rung: every group is
trained to the rung, all trials are ranked together, and only the survivors
are trained on, in smaller populations. Cross-validation (``cv``) makes each
trial one population member per fold, each validating on its own rows. The
result keeps the trained networks (``SweepResult.network``), or retrains one
from its settings, bitwise the same.
"""

from .population import _digest
from .prune import Halving
from .results import SweepResult
from .search import _Search, sweep
from .spaces import choice, loguniform, uniform

__all__ = ["sweep", "SweepResult", "Halving", "loguniform", "uniform", "choice"]
