"""What a network carries between fits: its History of epochs and its training State; the snapshot of both
that an error or an interrupt puts back; the History columns of an epoch."""

import copy
import math

import numpy as np

from ..specs.schedules import ReduceLROnPlateau

__all__ = ["History", "State", "snapshot", "restore", "epoch_columns"]


class History:
    """Per-epoch records: ``history["loss"][i]`` is epoch ``epoch[i]``'s mean cost.

    Keys: ``loss``, ``accuracy`` (classifiers), ``val_loss`` and ``val_accuracy`` (with
    validation data), ``lr``, ``seconds``, ``samples_per_second``.
    """

    def __init__(self):
        self.epoch = []
        self.history = {}

    def append(self, epoch, logs):
        """Add epoch ``epoch``'s ``logs`` (a dict of floats). Every key keeps one value per epoch: NaN
        where an epoch did not log it (val_loss before a later fit was given validation data)."""
        for k, v in self.history.items():
            if k not in logs:
                v.append(math.nan)
        for k, v in logs.items():
            self.history.setdefault(k, [math.nan] * len(self.epoch)).append(v)
        self.epoch.append(epoch)

    def extend(self, epochs, columns):
        """Add several epochs at once: ``columns`` maps each logged key to its values, one per epoch of
        ``epochs`` (as ``append`` per epoch would)."""
        k = len(epochs)
        for key, v in self.history.items():
            if key not in columns:
                v.extend([math.nan] * k)
        for key, values in columns.items():
            self.history.setdefault(key, [math.nan] * len(self.epoch)).extend(values)
        self.epoch.extend(epochs)

    def _truncate(self, n):
        """Keep the first ``n`` epochs (what an interrupted epoch's restore puts back)."""
        del self.epoch[n:]
        for v in self.history.values():
            del v[n:]

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def __len__(self):
        return len(self.epoch)

    def __repr__(self):
        last = {k: v[-1] for k, v in self.history.items()} if self.epoch else {}
        return f"History(epochs={len(self)}, last={last})"


class State:
    """What a network's next update continues from: the ``optimizer`` spec (None before any fit),
    its ``slots`` ((n_slots, n_params): momentum, moments), the update count ``step``, the
    shuffling ``rng`` (a numpy Generator), the key of the dropout masks ``dropout_key`` (an int
    below 2**64: with the epoch and batch indices, all the masks' generator needs) and an adaptive
    schedule's ``schedule`` state (``{"config": ReduceLROnPlateau config, "state": its state}`` or None)."""

    __slots__ = ("optimizer", "slots", "step", "rng", "dropout_key", "schedule")

    def __init__(self, rng, optimizer=None, slots=None, step=0, dropout_key=0, schedule=None):
        self.rng = rng
        self.dropout_key = dropout_key
        self.schedule = schedule
        self.optimizer = optimizer
        self.slots = slots
        self.step = step

    def start(self, optimizer, n_params, dtype, schedule=None):
        """Continue the state if ``optimizer`` is the same rule, else start it afresh; the same for a
        plateau ``schedule`` (continued with the optimizer and its own settings). Returns the learning
        rate of the next epoch where the plateau sets it, else None."""
        fresh = self.optimizer is None or not self.optimizer.same_rule(optimizer)
        if fresh:
            slots = np.zeros((optimizer.n_slots, n_params), dtype=dtype)
            # One statement: an interrupt never leaves a new optimizer beside the old one's slots.
            self.slots, self.step, self.optimizer = slots, 0, optimizer
        if not isinstance(schedule, ReduceLROnPlateau):
            self.schedule = None
            return None
        if fresh or self.schedule is None or self.schedule["config"] != schedule.get_config():
            self.schedule = {"config": schedule.get_config(), "state": schedule.start(optimizer.lr)}
        return self.schedule["state"]["lr"]


def snapshot(net):
    """Everything an epoch changes, copied: what an error or interrupt puts back."""
    s = net.state
    return {"params": net.params.copy(), "slots": None if s.slots is None else s.slots.copy(), "step": s.step,
            "epochs_trained": net.epochs_trained, "rng": s.rng.bit_generator.state, "history": len(net.history),
            "schedule": copy.deepcopy(s.schedule)}


def restore(net, snap):
    s = net.state
    net.params[...] = snap["params"]
    if snap["slots"] is not None and s.slots is not None and snap["slots"].shape == s.slots.shape:
        s.slots[...] = snap["slots"]
    s.step = snap["step"]
    net.epochs_trained = snap["epochs_trained"]
    s.rng.bit_generator.state = snap["rng"]
    s.schedule = copy.deepcopy(snap["schedule"])
    net.history._truncate(snap["history"])




def epoch_columns(classifier, n, loss, correct, lr, val=None, val_weight=None):
    """The History entries of an epoch of one or several networks, as arrays (one entry per network): the
    summed cost and weight right over ``n`` rows (or the rows' total weight), the last learning rates, and
    ``val`` (validation Σ w C, weight right) over ``val_weight``."""
    cols = {"loss": loss / n}
    if classifier:
        cols["accuracy"] = correct / n
    if val is not None:
        cols["val_loss"] = val[0] / val_weight
        if classifier:
            cols["val_accuracy"] = val[1] / val_weight
    cols["lr"] = np.asarray(lr, dtype=np.float64).copy()
    return cols
