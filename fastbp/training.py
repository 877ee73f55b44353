"""The one training path: the epoch loop around the compiled epoch, for ``Network.fit`` and for populations.

``fit`` trains one network with the engine chosen for its size (all cores), with
everything a user expects between epochs: validation, History, progress, early
stopping, callbacks, checkpoints, and the guarantees under faults (a non-finite
cost or an interrupt puts the network back to the end of the last completed
epoch). ``train_population`` trains many networks of one shape side by side,
each on one core (``kernels._train_population``), for ``fastbp.sweep``. Both
build their kernels' arguments (plan.py) and their per-epoch logs here, so
training changes in one place; ``_Run`` is what they share.

A network's training state (``State``: optimizer, its slots, update count,
shuffling RNG) travels with it, so a later ``fit`` or a loaded model continues
exactly where the last one stopped.
"""

import contextlib
import copy
import math
import threading
import time

import numpy as np

from . import checks, io, kernels, plan, team, units
from ._shuffle import _permutations, _population_perms, put_states, take_states
from .callbacks import Progress, auto_verbose, call_callback, check_callbacks, get_early_stopping
from .kernels import _evaluate_population, _full_pass, _train_epochs, _train_population
from .matmul import Blas, engine_for, holds_one_thread, one_thread_rows, population_engine
from .optimizers import SGD, Optimizer, get_optimizer
from .schedules import ReduceLROnPlateau, get_schedule

__all__ = ["DEFAULTS", "State", "History", "fit", "train_population", "resolve_optimizer"]

# Seconds of training between two in-epoch progress reports, when a progress bar is shown.
CHUNK_SECONDS = 0.1

# The defaults of training, for Network.fit, fastbp.sweep, the estimators and the command line alike
# ("layers": the hidden widths where the data gives the input and output widths: sweep, command line).
DEFAULTS = {"layers": [64], "epochs": 20, "batch_size": 32, "lr": 0.1, "optimizer": "sgd", "schedule": None,
            "clip_norm": None}

# The most row indices of the epochs of one compiled call of several epochs (``_fit_compiled``): 32 MB.
_ORDER_ELEMENTS = 1 << 22

# The most epochs of one such call where an early stopping rule may end it sooner: the orders drawn for
# the epochs not run are the waste (and, where the generator is not PCG64, those of the epochs run, drawn
# again to leave it where they left it), against the Python of a call per chunk of epochs.
_STOP_CALL_EPOCHS = 256

# The kernels' "no sample weights" (an empty vector).
NO_WEIGHTS = np.zeros(0, dtype=np.float64)


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


def resolve_optimizer(optimizer, lr):
    """The Optimizer spec of fit's ``optimizer`` and ``lr`` arguments (plain SGD when neither is given)."""
    if lr is not None:
        lr = checks.check_positive_float(lr, "lr")
    if optimizer is None:
        return SGD(lr=DEFAULTS["lr"] if lr is None else lr)
    if isinstance(optimizer, Optimizer) and lr is not None:
        raise ValueError(f"lr: give the learning rate inside the optimizer ({optimizer!r}), not both")
    return get_optimizer(optimizer, lr)


def validation_rows(net, n, batch_rows):
    """Rows per chunk of a validation pass, which runs with the training's engine: as for any pass, but
    where a population keeps BLAS on the calling thread, few enough rows that validating does too, so
    that a population member validates exactly as ``fit`` does."""
    sizes = net.layout.sizes
    rows = plan.chunk_rows(sizes, n)
    if population_engine(sizes, batch_rows, net.n_params) is not None:
        rows = min(rows, one_thread_rows(sizes))
    return rows


def _snapshot(net):
    """Everything an epoch changes, copied: what an error or interrupt puts back."""
    s = net.state
    return {"params": net.params.copy(), "slots": None if s.slots is None else s.slots.copy(), "step": s.step,
            "epochs_trained": net.epochs_trained, "rng": s.rng.bit_generator.state, "history": len(net.history),
            "schedule": copy.deepcopy(s.schedule)}


def _restore(net, snap):
    s = net.state
    net.params[...] = snap["params"]
    if snap["slots"] is not None and s.slots is not None and snap["slots"].shape == s.slots.shape:
        s.slots[...] = snap["slots"]
    s.step = snap["step"]
    net.epochs_trained = snap["epochs_trained"]
    s.rng.bit_generator.state = snap["rng"]
    s.schedule = copy.deepcopy(snap["schedule"])
    net.history._truncate(snap["history"])


class _Run:
    """Networks of one shape trained side by side on X, Y: their kernel arguments, the epoch call
    and the validation pass. One network (``fit``) runs ``_train_epochs`` on its own parameters with
    the engine of its size; several run ``_train_population`` on stacked copies, one core each."""

    def __init__(self, nets, X, Y, batch_size, rules, Xv=None, Yv=None, population=False, n=None, sw=None, swv=None,
                 val_rows=None):
        first = nets[0]
        sizes, n_params, dtype = first.layout.sizes, first.n_params, first.dtype
        self.nets, self.X, self.Y, self.Xv, self.Yv = nets, X, Y, Xv, Yv
        # Sample weights as the kernels take them (empty: none), and the validation rows' total weight.
        self.sw = NO_WEIGHTS if sw is None else sw
        self.swv = NO_WEIGHTS if swv is None else swv
        # Rows each network trains on per epoch (a population's members may train on different rows).
        self.n = np.broadcast_to(np.asarray(X.shape[0] if n is None else n, dtype=np.int64), (len(nets),)).copy()
        # A batch larger than the data is the whole data (and a size near 2^63 would overflow the kernel's sums).
        batch_size = self.batch_size = int(min(batch_size, self.n.max()))
        self.n_batches = (self.n + batch_size - 1) // batch_size
        cap = int(min(batch_size, self.n.max()))
        self.population = population
        self._batch_seconds = None  # measured by an epoch run in chunks
        k = len(nets)
        lead = (k,) if population else ()
        self.mm = population_engine(sizes, cap, n_params) if population else engine_for(sizes, cap, n_params)
        # A population's kernels take the engine apart from the Net (see kernels._train_population).
        self.net = first.kernel_net(None if population else self.mm)
        dropout = any(net.dropout_rates.any() for net in nets)
        self.work = plan.work(sizes, n_params, dtype, cap, batch=True, grad=True, lead=lead, weights=sw is not None,
                              dropout=dropout)
        # One network whose products stay on the calling thread trains in a team of two threads (team.py).
        self.team = None
        if not population and team.pays(self.mm, sizes, cap, dropout):
            self.team = team.team_buffers(sizes, n_params, dtype, cap, sw is not None)
        # One large network on BLAS trains in a crew: each thread owns a part of every layer's units (units.py).
        self.crew = None
        if not population and self.team is None and units.pays(self.mm, sizes, cap, self.net.acts, dropout, rules[0]):
            self.crew = units.crew_buffers(self.work, units.threads(sizes))
            self.crew_net = first.kernel_net(None)  # its products are MKL's on each thread (units.py)
        if Xv is not None:
            # Each network's validation rows Xv[vstart[i]:vstop[i]] (default all).
            bounds = np.array([(0, Xv.shape[0])] * k if val_rows is None else val_rows, dtype=np.int64).reshape(k, 2)
            self.vstart, self.vstop = bounds[:, 0].copy(), bounds[:, 1].copy()
            self.n_val = self.vstop - self.vstart
            # What a network's validation sums are divided by: its rows' count, or their total weight.
            self.val_weight = self.n_val.astype(np.float64) if swv is None else \
                np.array([swv[a:b].sum() for a, b in bounds], dtype=np.float64)
            self.val_work = plan.work(sizes, n_params, dtype, validation_rows(first, int(self.n_val.max()), cap),
                                      lead=lead)
        if population:
            self.P = np.stack([net.params for net in nets])
            slots = max(net.state.slots.shape[0] for net in nets)
            self.S = np.zeros((k, slots, n_params), dtype=dtype)
            for i, net in enumerate(nets):
                self.S[i, : net.state.slots.shape[0]] = net.state.slots
            self.rules = plan.Rule(*(np.array([r[f] for r in rules]) for f in range(len(plan.Rule._fields))))
            self.out = (np.zeros(k), np.zeros(k), np.zeros(k, dtype=np.int64), np.zeros(k))
            self.steps = np.array([net.state.step for net in nets], dtype=np.int64)
            self.perms = np.zeros((k, int(self.n.max())), dtype=np.int64)
            self.good_P, self.good_S = np.empty_like(self.P), np.empty_like(self.S)
        else:
            self.rule = rules[0]
            # _train_epochs' arguments of one epoch: no stopping rule, no best parameters, the undo buffer.
            self.no_stop = np.zeros(kernels.STOP_SIZE)
            self.no_best = np.empty(0, dtype=dtype)
            self.saved = np.empty(n_params + first.state.slots.size, dtype=dtype)

    def epoch(self, epoch_idx, perms, active=None, on_batches=None):
        """One epoch of every (active) network over its rows ``perms[i]``; (costs and accuracies summed as
        ``kernels._train_epoch`` does, first non-finite batch or -1, last learning rates), one entry per network.

        ``on_batches(done, n_batches)`` (one network only): the epoch runs in chunks of batches of about
        CHUNK_SECONDS each, reporting after each, where it is long enough for that to show.
        """
        if not self.population:
            net = self.nets[0]
            if on_batches is not None and (self._batch_seconds is None
                                           or self._batch_seconds * self.n_batches[0] > 2 * CHUNK_SECONDS):
                return self._epoch_in_chunks(epoch_idx, perms[0], on_batches)
            return self._batches(perms[0], epoch_idx, net.state.step)
        active = np.ones(len(self.nets), dtype=np.bool_) if active is None else active
        for i, p in enumerate(perms or ()):  # None: the caller wrote them into self.perms
            self.perms[i, : p.shape[0]] = p
        _train_population(self.P, self.S, self.X, self.Y, self.sw, self.perms, self.n, active, self.batch_size, epoch_idx,
                          self.steps, self.net, self.work, self.rules, self.mm, *self.out)
        self.steps[active] += self.n_batches[active]
        return self.out

    def _epoch_in_chunks(self, epoch_idx, perm, on_batches):
        # Batches are cut from ``perm`` as one call cuts them, and each chunk's updates count on from the
        # batches before it, so the parameters are bitwise those of one call; the epoch's summed cost is
        # added up chunk by chunk (its last bits may differ).
        net, bs, n_batches = self.nets[0], self.batch_size, int(self.n_batches[0])
        loss, correct, done, chunk = 0.0, 0, 0, 1
        while done < n_batches:
            t0 = time.perf_counter()
            c_loss, c_correct, bad, lr = (v[0] for v in self._batches(perm[done * bs : (done + chunk) * bs], epoch_idx,
                                                                       net.state.step + done))
            seconds = time.perf_counter() - t0
            loss += c_loss
            correct += c_correct
            if bad >= 0:
                return np.array([loss]), np.array([correct]), np.array([done + bad]), np.array([lr])
            done += chunk
            self._batch_seconds = seconds / chunk
            on_batches(done, n_batches)
            chunk = max(1, min(n_batches - done, int(CHUNK_SECONDS / max(self._batch_seconds, 1e-9))))
        return np.array([loss]), np.array([correct]), np.array([-1]), np.array([lr])

    def _batches(self, perm, epoch_idx, step0):
        """The batches cut from ``perm`` of one network's epoch ``epoch_idx``, its updates counted from ``step0``:
        ``_train_epochs`` with one order and no stopping rule (the one compiled epoch of every path); (summed
        cost, summed accuracy, first non-finite batch or -1, last learning rate), each as a 1-entry array."""
        out = np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1, dtype=np.bool_)
        _, bad, _ = self.train_epochs(perm[None, :], epoch_idx, step0, self.no_stop, self.no_best, out)
        return out[0], out[1], np.array([bad]), out[2]

    def epochs_kernel(self):
        """(the compiled function ``train_epochs`` calls, the engine's argument of it): what compiles first."""
        if self.team is not None:
            return team.kernel(self.net)
        if self.crew is not None:
            return units.kernel(self.crew_net)
        return _train_epochs, self.net

    def train_epochs(self, perms, epoch0, step0, stop, best, out):
        """``kernels._train_epochs`` of the one network over the orders ``perms`` (one per epoch), with the
        stopping rule ``stop``, the best parameters' buffer ``best`` and the four per-epoch outputs ``out``;
        in a team or crew where the run has one (the same results, within rounding)."""
        net = self.nets[0]
        args = (net.params, net.state.slots, self.X, self.Y, self.sw, perms, self.batch_size, epoch0, step0,
                self.net if self.crew is None else self.crew_net, self.work, self.rule, stop, self.saved, best, *out)
        if self.team is not None:
            return team.train_epochs(*args, self.team)
        if self.crew is not None:
            return units.train_epochs(*args, self.crew)
        return _train_epochs(*args)

    def validate(self, active=None):
        """(validation Σ w C, weights of the rows right), one entry per network."""
        if not self.population:
            loss, correct = _full_pass(self.nets[0].params, self.Xv, self.Yv, self.swv, self.net, self.val_work, False,
                                       self.val_work.grad, False, self.Xv[:0])
            return np.array([loss]), np.array([correct])
        active = np.ones(len(self.nets), dtype=np.bool_) if active is None else active
        v_loss, v_correct = np.zeros(len(self.nets)), np.zeros(len(self.nets))
        _evaluate_population(self.P, self.Xv, self.Yv, self.swv, self.vstart, self.vstop, active, self.net,
                             self.val_work, self.mm, v_loss, v_correct)
        return v_loss, v_correct

    def logs(self, i, loss, correct, lr, val=None):
        """Network i's History entry for an epoch."""
        return {k: float(v[i]) for k, v in self.log_columns(loss, correct, lr, val).items()}

    def log_columns(self, loss, correct, lr, val=None):
        """Every network's History entries for an epoch: a dict of arrays, one entry per network."""
        cols = {"loss": loss / self.n}
        classifier = self.nets[0].is_classifier  # the networks of a run share their shape and cost
        if classifier:
            cols["accuracy"] = correct / self.n
        if val is not None:
            cols["val_loss"] = val[0] / self.val_weight
            if classifier:
                cols["val_accuracy"] = val[1] / self.val_weight
        cols["lr"] = np.asarray(lr, dtype=np.float64).copy()
        return cols

    def set_lr(self, i, lr):
        """Network i's base learning rate from the next epoch on."""
        if self.population:
            self.rules.lr[i] = lr
        else:
            self.rule = self.rule._replace(lr=float(lr))

    def step_schedule(self, i, schedule, logs):
        """After an epoch: a plateau schedule judges network i's ``logs`` and sets its next rate."""
        if isinstance(schedule, ReduceLROnPlateau):
            self.set_lr(i, schedule.step(self.nets[i].state.schedule["state"], logs[schedule.monitor]))

    def finish(self, i):
        """Copy network i's stacked parameters and optimizer state back into it (populations)."""
        if self.population:
            net = self.nets[i]
            net.params = self.P[i]
            net.state.slots[...] = self.S[i, : net.state.slots.shape[0]]
            net.state.step = int(self.steps[i])


def check_fit_args(net, X, y, epochs, batch_size, lr, optimizer, schedule, clip_norm, shuffle, validation_data,
                   validation_split, sample_weight=None, class_weight=None, l2=0.0):
    """fit's data and training settings, checked and converted: (X, Y, Xv, Yv, optimizer, schedule, clip,
    sw, swv, l2), the sample weights (float64, class weights folded in) None where not given."""
    X, Y = net.check_data(X, y)
    l2 = checks.check_nonnegative_float(l2, "l2")
    sw = None if sample_weight is None else checks.check_sample_weight(sample_weight, X.shape[0])
    if class_weight is not None:
        cw = row_class_weights(net, Y, class_weight)
        sw = cw if sw is None else sw * cw
        if not (sw > 0).any():
            raise ValueError("class_weight: with sample_weight, every row's weight is zero")
    _, _, clip = checks.fit_settings(epochs, batch_size, clip_norm)
    opt = resolve_optimizer(optimizer, lr)
    sched = get_schedule(schedule)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle: expected a bool, got {shuffle!r}")
    n = X.shape[0]
    X, Y, Xv, Yv = split_validation(net, X, Y, validation_data, validation_split)
    swv = None
    if validation_data is not None and len(validation_data) == 3 and validation_data[2] is not None:
        swv = checks.check_sample_weight(validation_data[2], Xv.shape[0], "validation_data[2]")
    elif validation_split is not None and sw is not None:
        sw, swv = sw[: X.shape[0]], sw[X.shape[0]:]
        for part, name in ((sw, "training"), (swv, "validation")):
            if not (part > 0).any():
                raise ValueError(f"sample_weight: the {name} rows of validation_split={validation_split} all "
                                 f"have weight zero (of {n} rows)")
    return X, Y, Xv, Yv, opt, sched, clip, sw, swv, l2


def row_class_weights(net, Y, class_weight):
    """Each row's weight (float64) from ``class_weight``: "balanced" (n / (n_classes · count(class)) over the
    classes present, as scikit-learn's ``compute_class_weight``) or a dict {label: weight} (labels of
    ``classes_``, or class indices without them; classes not named weigh 1). Y holds the encoded targets."""
    if not net.is_classifier:
        raise ValueError(f"class_weight: only a single-label classifier has classes; this network's loss is "
                         f"{net.loss!r} with {net.layout.sizes[-1]} outputs")
    idx = Y.argmax(axis=1) if Y.shape[1] > 1 else (Y[:, 0] >= 0.5).astype(np.int64)
    n_classes = max(Y.shape[1], 2)
    labels = list(range(n_classes)) if net.classes_ is None else net.classes_.tolist()
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight: expected 'balanced' or a dict {{label: weight}}, got {class_weight!r}")
        counts = np.bincount(idx, minlength=n_classes).astype(np.float64)
        present = counts > 0
        per_class = np.zeros(n_classes)
        per_class[present] = Y.shape[0] / (present.sum() * counts[present])
        return per_class[idx]
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight: expected 'balanced' or a dict {{label: weight}}, got "
                        f"{type(class_weight).__name__}")
    per_class = np.ones(n_classes)
    for label, weight in class_weight.items():
        matches = [i for i, c in enumerate(labels) if c == label]
        if not matches:
            raise ValueError(f"class_weight: unknown class {label!r}; the classes are {labels}")
        per_class[matches[0]] = checks.check_nonnegative_float(weight, f"class_weight[{label!r}]")
    w = per_class[idx]
    if not (w > 0).any():
        raise ValueError(f"class_weight: every row's class has weight zero ({class_weight!r})")
    return w


def split_validation(net, X, Y, validation_data, validation_split):
    """(X, Y, X_val, Y_val) from fit's ``validation_data`` or ``validation_split`` (None, None without)."""
    if validation_data is not None and validation_split is not None:
        raise ValueError("validation_data, validation_split: give one or the other, not both")
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)):
            raise TypeError(f"validation_data: expected (X_val, y_val) or (X_val, y_val, sample_weight_val), got "
                            f"{type(validation_data).__name__}"
                            f"{' of length ' + str(len(validation_data)) if isinstance(validation_data, (tuple, list)) else ''}")
        Xv, Yv = net.check_data(validation_data[0], validation_data[1], "validation_data")
        return X, Y, Xv, Yv
    if validation_split is not None:
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) or not (
            0.0 < validation_split < 1.0
        ):
            raise ValueError(f"validation_split: expected a fraction in (0, 1), got {validation_split!r}")
        n_val = int(round(X.shape[0] * validation_split))
        if not 1 <= n_val < X.shape[0]:
            raise ValueError(
                f"validation_split: {validation_split} of {X.shape[0]} rows leaves an empty part; "
                "expected at least one row in each"
            )
        cut = X.shape[0] - n_val
        return X[:cut], Y[:cut], X[cut:], Y[cut:]
    return X, Y, None, None


def check_monitor(schedule, net, Xv):
    """A plateau schedule's monitor must be logged: a ValueError before training if it is not."""
    if not isinstance(schedule, ReduceLROnPlateau):
        return
    logged = ["loss"] + (["accuracy"] if net.is_classifier else [])
    if Xv is not None:
        logged += ["val_" + k for k in logged]
    if schedule.monitor not in logged:
        raise ValueError(f"schedule: monitor {schedule.monitor!r} is not among the logged values {logged}"
                         + (" (pass validation_data or validation_split)" if schedule.monitor.startswith("val_")
                            else ""))


def _rule(net, optimizer, schedule, clip, length, l2):
    """The kernels' ``plan.Rule`` of a network's training: the settings and the network's dropout."""
    return plan.rule(optimizer, schedule, clip, length, l2, net.dropout_rates, net.state.dropout_key)


def _schedule_length(sched, epochs, n_batches):
    return epochs * n_batches if sched.per == "step" else epochs


def fit(net, X, y, epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"], lr=None, optimizer=None,
        schedule=None, clip_norm=None, shuffle=True, validation_data=None, validation_split=None,
        early_stopping=None, callbacks=None, checkpoint=None, checkpoint_every=1, verbose="auto", sample_weight=None,
        class_weight=None, l2=0.0):
    """Train ``net`` (see ``Network.fit``, which is this); returns this call's History."""
    X = net.prepare_fit(X, y)
    X, Y, Xv, Yv, opt, sched, clip, sw, swv, l2 = check_fit_args(
        net, X, y, epochs, batch_size, lr, optimizer, schedule, clip_norm, shuffle, validation_data, validation_split,
        sample_weight, class_weight, l2)
    stopper = get_early_stopping(early_stopping)
    if stopper is not None and stopper.monitor.startswith("val_") and Xv is None:
        raise ValueError(f"early_stopping: monitor {stopper.monitor!r} needs validation_data or validation_split")
    cbs = check_callbacks(callbacks)
    checkpoint_every = checks.check_int(checkpoint_every, "checkpoint_every", minimum=1)
    if checkpoint is not None:
        io.check_target(checkpoint, "checkpoint")
    if verbose == "auto":
        verbose = auto_verbose()
    verbose = checks.check_int(verbose, "verbose", minimum=0)
    if verbose > 2:
        raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose}")

    check_monitor(sched, net, Xv)
    n = X.shape[0]
    plateau_lr = net.state.start(opt, net.n_params, net.dtype, sched)
    n_batches = (n + batch_size - 1) // batch_size
    run = _Run([net], X, Y, batch_size, [_rule(net, opt, sched, clip, _schedule_length(sched, epochs, n_batches), l2)],
               Xv, Yv, sw=sw, swv=swv)
    if plateau_lr is not None:
        run.set_lr(0, plateau_lr)
    order = np.arange(n, dtype=np.int64)

    keep = {"good": _snapshot(net), "best": None}  # what an error or interrupt puts back; the best epoch's
    history = History()
    progress = Progress(verbose, epochs, net.epochs_trained + 1)
    progress.compiling(*run.epochs_kernel(), net.params, X)
    net.stop_training = False
    stopped = False
    # Nothing to do in Python between epochs: several epochs per compiled call, the stopping rule inside.
    compiled = (not (progress.verbose or progress.shows_batches) and Xv is None and not cbs and checkpoint is None
                and not isinstance(sched, ReduceLROnPlateau) and _stop_vector(stopper, net) is not None)
    try:
        with _one_blas_thread(run.mm, run.team is not None or holds_one_thread(run.mm, net.layout.sizes,
                                                                              run.batch_size)):
            if compiled:
                stopped = _fit_compiled(net, run, epochs, shuffle, stopper, history, keep)
            for _ in range(0 if compiled else epochs):
                epoch = net.epochs_trained + 1
                perm = net.state.rng.permutation(n).astype(np.int64, copy=False) if shuffle else order
                t0 = time.perf_counter()
                loss, correct, bad, lr_used = run.epoch(
                    epoch - 1, [perm], on_batches=(lambda done, total, e=epoch: progress.batches(e, done, total))
                    if progress.shows_batches else None)
                seconds = time.perf_counter() - t0
                if bad[0] >= 0:
                    _restore(net, keep["good"])
                    raise _diverged(epoch, bad[0], loss[0])
                logs = run.logs(0, loss, correct, lr_used, run.validate() if Xv is not None else None)
                logs.update(seconds=seconds, samples_per_second=n / seconds if seconds > 0 else math.inf)
                run.step_schedule(0, sched, logs)
                _record(net, history, epoch, logs, n_batches)
                keep["good"] = _snapshot(net)
                progress.update(epoch, logs)
                stop = False
                if stopper is not None:
                    is_best, stop = stopper.update(epoch, logs)
                    if is_best and stopper.restore_best:
                        keep["best"] = keep["good"]
                if checkpoint is not None and epoch % checkpoint_every == 0:
                    net.save(checkpoint)
                for cb in cbs:
                    stop = call_callback(cb, net, epoch, logs) or stop
                if stop or net.stop_training:
                    stopped = True
                    break
    except KeyboardInterrupt:
        _restore(net, keep["good"])
        if checkpoint is not None:
            net.save(checkpoint)
        progress.close(True)
        raise
    progress.close(stopped)
    best = keep["best"]
    if best is not None and best["epochs_trained"] != net.epochs_trained:
        net.params[...] = best["params"]
    if checkpoint is not None:
        net.save(checkpoint)
    return history


def _diverged(epoch, batch, loss):
    """fit's error for a cost that stopped being finite in batch ``batch`` of ``epoch`` (``loss``: the epoch's
    cost before it); the network is already back at the end of the epoch before."""
    return FloatingPointError(
        f"fit: the cost became {'NaN' if math.isnan(loss) else 'non-finite'} at epoch {epoch}, "
        f"batch {batch}; the network was put back to the end of epoch {epoch - 1} "
        f"(try a smaller lr or clip_norm)")


def _record(net, history, epoch, logs, n_batches):
    """An epoch's results land together: parameters (already), update count, epoch count, History."""
    net.state.step += n_batches
    net.epochs_trained = epoch
    history.append(epoch, logs)
    net.history.append(epoch, logs)


def _stop_vector(stopper, net):
    """An EarlyStopping as ``kernels._train_epochs`` takes it (a zero vector without one), or None where
    the kernels cannot judge its monitor (it is not the epoch's cost or a classifier's accuracy)."""
    stop = np.zeros(kernels.STOP_SIZE)
    if stopper is None:
        return stop
    if stopper.monitor not in ("loss", "accuracy") or (stopper.monitor == "accuracy" and not net.is_classifier):
        return None
    stop[kernels.STOP_MONITOR] = 1.0 if stopper.monitor == "loss" else 2.0
    stop[kernels.STOP_MAXIMISE] = stopper.mode == "max"
    stop[kernels.STOP_PATIENCE] = stopper.patience
    stop[kernels.STOP_MIN_DELTA] = stopper.min_delta
    stop[kernels.STOP_BEST] = math.nan if stopper.best is None else stopper.best
    stop[kernels.STOP_WAIT] = stopper.wait
    stop[kernels.STOP_ANY] = stopper.track_any
    return stop


def _fit_compiled(net, run, epochs, shuffle, stopper, history, keep):
    """``fit``'s epochs where nothing runs in Python between them: ``kernels._train_epochs`` runs them in
    calls of about CHUNK_SECONDS each (the first call one epoch, to measure it), the early stopping rule
    ``stopper`` judged inside, and each call's epochs are recorded after it, as fit records one epoch
    (History, its ``seconds`` being the call's mean per epoch). The orders come from the network's RNG
    as fit draws them (``Generator.permuted`` over k rows draws as k ``permutation`` calls), and the RNG
    is left as if only the epochs run had drawn theirs. Updates ``keep`` ("good", "best") as fit does;
    returns whether the rule stopped training."""
    n, n_batches = int(run.n[0]), int(run.n_batches[0])
    rng = net.state.rng
    order = np.arange(n, dtype=np.int64)
    # A PCG64 generator's orders are drawn in compiled code (``_shuffle._permutations``: the same orders, and
    # each epoch's generator state, so that the generator goes on after the last epoch run with no redrawing).
    states = take_states([rng]) if shuffle else None
    stop = _stop_vector(stopper, net)
    best = np.empty(net.n_params if stopper is not None and stopper.restore_best else 0, dtype=net.dtype)
    done, chunk = 0, 1
    while done < epochs:
        k = min(chunk, epochs - done, max(1, _ORDER_ELEMENTS // n), _STOP_CALL_EPOCHS if stopper else epochs)
        if states is not None:
            start = states[0].copy()
            perms, after = np.empty((k, n), dtype=np.int64), np.empty((k, states.shape[1]), dtype=np.uint64)
            _permutations(states[0], perms, after)
        else:
            before = rng.bit_generator.state
            perms = np.tile(order, (k, 1))
            if shuffle:
                perms = rng.permuted(perms, axis=1)
        out = np.empty(k), np.empty(k), np.empty(k), np.zeros(k, dtype=np.bool_)
        t0 = time.perf_counter()
        ran, bad, halt = run.train_epochs(perms, net.epochs_trained, net.state.step, stop, best, out)
        seconds = (time.perf_counter() - t0) / max(ran + (bad >= 0), 1)
        if states is not None:
            states[0] = after[ran - 1] if ran > 0 else start
            put_states([rng], states)
        elif shuffle and ran < k:
            rng.bit_generator.state = before
            rng.permuted(np.tile(order, (ran, 1)), axis=1)
        # The epochs' records, computed as run.logs computes one epoch's.
        first = net.epochs_trained + 1
        columns = {key: v.tolist() for key, v in run.log_columns(out[0][:ran], out[1][:ran], out[2][:ran]).items()}
        columns.update(seconds=[seconds] * ran, samples_per_second=[n / seconds if seconds > 0 else math.inf] * ran)
        epochs_run = list(range(first, first + ran))
        net.state.step += ran * n_batches
        net.epochs_trained += ran
        history.extend(epochs_run, columns)
        net.history.extend(epochs_run, columns)
        chosen = np.flatnonzero(out[3][:ran])
        best_epoch = first + int(chosen[-1]) if chosen.shape[0] else None
        if stopper is not None:
            stopper.best = None if math.isnan(stop[kernels.STOP_BEST]) else float(stop[kernels.STOP_BEST])
            stopper.wait = int(stop[kernels.STOP_WAIT])
            if best_epoch is not None:
                stopper.best_epoch = best_epoch
        keep["good"] = _snapshot(net)
        if best_epoch is not None and best.shape[0]:
            keep["best"] = {"params": best.copy(), "epochs_trained": best_epoch}
        if bad >= 0:
            raise _diverged(net.epochs_trained + 1, bad, out[0][ran])
        if halt:
            return True
        done += ran
        chunk = max(1, int(CHUNK_SECONDS / max(seconds, 1e-9)))
    return False


def _population_epoch(run, rows, schedules, active, records, columns, want_logs, shuffle):
    """One epoch of a population's active networks (``train_population``): shuffles, trains, validates,
    logs; a network whose cost stops being finite goes back to its last epoch and stops. The epoch's
    logs of all networks go to ``columns`` as arrays (History entries are written at the end, all at
    once: per network and epoch they cost more than the epoch of a small network). Returns the
    epoch's number and, with ``want_logs``, every network's logs (None where not active). ``shuffle``:
    (the networks' generator states, their rows as one array) to draw the permutations in compiled
    code (``_shuffle``), or None to call each network's generator."""
    nets = run.nets
    e = nets[0].epochs_trained + len(columns)
    if shuffle is not None:
        _population_perms(shuffle[0], run.perms, run.n, shuffle[1], active)
    else:
        for i, net in enumerate(nets):
            if active[i]:
                p = net.state.rng.permutation(run.n[i])
                if rows is None:
                    run.perms[i, : run.n[i]] = p
                else:
                    np.take(rows[i], p, out=run.perms[i, : run.n[i]])
    # What a network that diverges in this epoch goes back to.
    np.copyto(run.good_P, run.P)
    np.copyto(run.good_S, run.S)
    loss, correct, bad, lr = run.epoch(e, None, active)
    val = run.validate(active) if run.Xv is not None else None
    for i in np.flatnonzero(active & (bad >= 0)):
        active[i] = False
        run.P[i], run.S[i] = run.good_P[i], run.good_S[i]
        run.steps[i] -= run.n_batches[i]
        records[i]["diverged_at_epoch"] = e + 1
    cols = run.log_columns(loss, correct, lr, val)
    columns.append((active.copy(), cols))
    epoch_logs = None
    plateau = [i for i in np.flatnonzero(active) if isinstance(schedules[i], ReduceLROnPlateau)]
    if want_logs or plateau:
        epoch_logs = [{k: float(v[i]) for k, v in cols.items()} if active[i] else None for i in range(len(nets))]
        for i in plateau:
            run.step_schedule(i, schedules[i], epoch_logs[i])
    return e + 1, epoch_logs


def _write_histories(nets, columns, records):
    """The History entries of a population's epochs (``columns``: per epoch, the networks active in it and
    its logs as arrays) into each network's History and record; each network's ``epochs_trained``."""
    if not columns:
        return
    e0 = nets[0].epochs_trained
    mask = np.array([a for a, _ in columns])  # (epochs, networks)
    keys = list(columns[0][1])
    table = {k: np.array([c[k] for _, c in columns]) for k in keys}
    for i, net in enumerate(nets):
        ran = np.flatnonzero(mask[:, i])
        if ran.size == 0:
            continue
        logs = {k: table[k][ran, i].tolist() for k in keys}
        net.history.extend((e0 + 1 + ran).tolist(), logs)
        net.epochs_trained = e0 + 1 + int(ran[-1])
        for k, v in logs.items():
            records[i]["history"].setdefault(k, []).extend(v)


@contextlib.contextmanager
def _one_blas_thread(mm, on=True):
    """OpenBLAS on one thread while a population runs on it: each member's products stay on its own
    calling thread anyway, but a threaded OpenBLAS serialises calls that come from several threads at once
    (a population on two cores then runs no faster than on one). Also while one network small enough to
    train in OpenBLAS on the calling thread (``matmul.engine_for``) trains: its products are too small for
    a second thread to pay, and a sleeping pool stays asleep beside another library's; and while a team
    trains (team.py), whose two threads call it at once. Nothing without ``on``."""
    global _BLAS_CONTROLLER
    if not (on and isinstance(mm, Blas)):
        yield
        return
    if _BLAS_CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a core dependency
            yield
            return
        # Finding the loaded libraries takes a millisecond or more (more with scikit-learn loaded): once per
        # process. The BLAS the engines call (SciPy's) is loaded with fastbp; each limit reads and restores
        # the thread counts as they are when it starts.
        _BLAS_CONTROLLER = ThreadpoolController()
    # Fits in several Python threads at once hold it together: the first sets the limit, the last gives the
    # thread counts back (limits set and restored per fit would restore one another's limit, and the last
    # to end could leave OpenBLAS on one thread).
    global _blas_holders, _blas_limit
    with _BLAS_HOLD:
        if _blas_holders == 0:
            _blas_limit = _BLAS_CONTROLLER.limit(limits=1, user_api="blas")
        _blas_holders += 1
    try:
        yield
    finally:
        with _BLAS_HOLD:
            _blas_holders -= 1
            if _blas_holders == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None


_BLAS_CONTROLLER = None
_BLAS_HOLD = threading.Lock()
_blas_holders = 0
_blas_limit = None


def train_population(nets, X, Y, epochs, batch_size, optimizers, schedules, clips, Xv=None, Yv=None,
                     on_epoch=None, length=None, rows=None, val_rows=None, l2s=None, sample_weight=None,
                     sample_weight_val=None):
    """Train networks of one shape side by side, each on one core, each as ``fit`` would (its own
    optimizer, schedule, clip bound and shuffling RNG; bitwise fit's result where fit takes the same
    engine). X, Y (and Xv, Yv) are already checked for the networks' shape and dtype.

    ``epochs`` more epochs are run, from each network's ``epochs_trained`` (all equal), and a later
    call continues where this one stopped (the networks carry their state); ``length`` is the whole
    run's length in epochs, which schedules are laid out over (default ``epochs``). ``rows`` gives
    each network its own training rows (int arrays into X; default all rows): network i then
    trains as ``fit`` on ``X[rows[i]]``; ``val_rows`` gives each its validation rows as a pair
    (start, stop) into Xv (default all rows: as cross-validation folds, each held out in turn, do).
    ``on_epoch(epoch, logs, active)`` runs after each epoch
    with every network's logs (None for those not active) and the boolean ``active`` array, which
    it may change to stop networks (the networks' History, ``epochs_trained`` and shuffling generators
    are brought up to date when the call returns, not epoch by epoch). ``l2s`` gives each network's L2
    penalty (default 0); ``sample_weight`` and ``sample_weight_val`` weigh the rows of X and Xv
    (float64 vectors, checked; default none). A network whose cost stops being finite stops there, its
    parameters and optimizer state those of its last completed epoch.

    Returns, per network, ``{"history": {key: [values]}, "diverged_at_epoch": E}`` (the latter only
    where it diverged); each network's parameters, training state and History hold their training.
    """
    k = len(nets)
    counts = np.array([X.shape[0] if rows is None else len(r) for r in (rows or [None] * k)], dtype=np.int64)
    length = epochs if length is None else length
    plateau_lrs = []
    for net, opt, sched in zip(nets, optimizers, schedules):
        check_monitor(sched, net, Xv)
        plateau_lrs.append(net.state.start(opt, net.n_params, net.dtype, sched))
    l2s = [0.0] * k if l2s is None else l2s
    rules = [_rule(net, o, s, c, _schedule_length(s, length, (m + batch_size - 1) // batch_size), a)
             for net, o, s, c, m, a in zip(nets, optimizers, schedules, clips, counts, l2s)]
    run = _Run(nets, X, Y, batch_size, rules, Xv, Yv, population=True, n=counts, sw=sample_weight,
               swv=sample_weight_val, val_rows=val_rows)
    for i, lr in enumerate(plateau_lrs):
        if lr is not None:
            run.set_lr(i, lr)
    active = np.ones(k, dtype=np.bool_)
    records = [{"history": {}} for _ in range(k)]
    rows = None if rows is None else [np.asarray(r, dtype=np.int64) for r in rows]
    columns = []
    rngs = [net.state.rng for net in nets]
    states = take_states(rngs)
    shuffle = None
    if states is not None:
        rows2d = np.zeros((0, 0), dtype=np.int64)
        if rows is not None:
            rows2d = np.zeros((k, int(counts.max())), dtype=np.int64)
            for i, r in enumerate(rows):
                rows2d[i, : r.shape[0]] = r
        shuffle = (states, rows2d)
    try:
        with _one_blas_thread(run.mm):
            for _ in range(epochs):
                epoch, epoch_logs = _population_epoch(run, rows, schedules, active, records, columns,
                                                      on_epoch is not None, shuffle)
                if on_epoch is not None:
                    on_epoch(epoch, epoch_logs, active)
                if not active.any():
                    break
    finally:
        if states is not None:
            put_states(rngs, states)
    _write_histories(nets, columns, records)
    for i in range(k):
        run.finish(i)
    return records
