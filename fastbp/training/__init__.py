"""The one training path: the epoch loop around the compiled epochs, for ``Network.fit``, the scikit-learn
estimators, sweeps, cross-validation folds and the command line.

- ``arguments``: fit's arguments checked and converted; the defaults of training;
- ``state``: History, the training State a network carries, the snapshot an error puts back;
- ``single``: one network (``fit``), alone, in a team or in a crew;
- ``population``: many networks side by side (``train_population``);
- ``callbacks``: callbacks, early stopping, progress.

A network's training state (``State``: optimizer, its slots, update count, shuffling RNG) travels with it, so
a later ``fit`` or a loaded model continues exactly where the last one stopped.
"""

from .arguments import DEFAULTS, check_fit_args, resolve_optimizer, row_class_weights, split_validation
from .population import train_population
from .single import fit
from .state import History, State

__all__ = ["DEFAULTS", "State", "History", "fit", "train_population", "resolve_optimizer", "check_fit_args",
           "row_class_weights", "split_validation"]
