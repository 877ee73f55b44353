"""Successive halving: the rungs, how many go on."""

import math

from ..common import checks



class Halving:
    """Successive halving: the worse trials stop early, at rungs of growing length.

    Rungs fall at ``min_epochs * factor**k`` epochs, for every k that puts them below the
    sweep's ``epochs``. At each rung the n trials still running are ranked by the best value
    of the sweep's ``metric`` they have reached so far (a cross-validated trial by its mean
    over folds; ties: the earlier trial first; no finite value: last) and the best
    ``max(1, n // factor)`` go on; the others stop there.

    Parameters
    ----------
    factor : int, default 2
        At least 2: about one trial in ``factor`` goes on at each rung.
    min_epochs : int, optional
        The first rung, in epochs. Default: an eighth of the sweep's ``epochs``, rounded up
        (AUTO_FRACTION): rankings after fewer epochs mostly rank the first epochs' luck
        (docs/sweeps.md, "A pruned search").
    """

    name = "halving"
    # The default first rung, as a fraction of the sweep's epochs.
    AUTO_FRACTION = 1 / 8

    def __init__(self, factor=2, min_epochs=None):
        self.factor = checks.check_int(factor, "prune: factor", minimum=2)
        self.min_epochs = None if min_epochs is None else checks.check_int(min_epochs, "prune: min_epochs", minimum=1)

    def get_config(self):
        return {"name": self.name, "factor": self.factor, "min_epochs": self.min_epochs}

    def first_rung(self, epochs):
        """The epoch of the first rung of a sweep of ``epochs`` epochs."""
        if self.min_epochs is not None:
            return self.min_epochs
        return max(1, math.ceil(epochs * self.AUTO_FRACTION))

    def rungs(self, epochs):
        """The epochs, below ``epochs``, at which trials are ranked."""
        out, r = [], self.first_rung(epochs)
        while r < epochs:
            out.append(r)
            r *= self.factor
        return out

    def keep(self, n):
        """How many of ``n`` ranked trials go on."""
        return max(1, n // self.factor)

    def __repr__(self):
        return f"Halving(factor={self.factor}, min_epochs={self.min_epochs})"


PRUNERS = {"halving": Halving}
