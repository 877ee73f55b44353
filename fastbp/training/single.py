"""One network's training: ``fit``, its epoch loop around the compiled epochs, and ``Single``, the kernel
arguments of one network trained alone, in a team or in a crew (as engine/policy.py chooses).

``fit`` trains with everything a user expects between epochs: validation, History, progress, early stopping,
callbacks, checkpoints, and the guarantees under faults (a non-finite cost or an interrupt puts the network
back to the end of the last completed epoch). Where nothing needs Python between epochs, several epochs run
in one compiled call with the stopping rule judged inside (``_fit_compiled``).
"""

import math
import time

import numpy as np

from ..common import checks, files
from ..engine import crew, kernels, plan, policy, team
from ..engine.kernels import _full_pass, _train_epochs
from .._numba.shuffle import _permutations, put_states, take_states
from ..specs.schedules import ReduceLROnPlateau
from .arguments import DEFAULTS, check_fit_args, check_monitor, kernel_rule, schedule_length
from .callbacks import Progress, auto_verbose, call_callback, check_callbacks, get_early_stopping
from .state import History, epoch_columns, restore, snapshot

__all__ = ["fit", "Single"]

# Seconds of training between two in-epoch progress reports, when a progress bar is shown.
CHUNK_SECONDS = 0.1

# The most row indices of the epochs of one compiled call of several epochs (``_fit_compiled``): 32 MB.
_ORDER_ELEMENTS = 1 << 22

# The most epochs of one such call where an early stopping rule may end it sooner: the orders drawn for
# the epochs not run are the waste (and, where the generator is not PCG64, those of the epochs run, drawn
# again to leave it where they left it), against the Python of a call per chunk of epochs.
_STOP_CALL_EPOCHS = 256


class Single:
    """One network trained on the Data ``data`` in batches of ``batch_size`` with the kernels' Rule ``rule``,
    validated on ``val`` (a Data, or None): its kernel arguments, the epoch call and the validation pass. The
    engine, and whether it trains alone, in a team or in a crew, is ``policy.choose``'s, decided once here."""

    def __init__(self, net, data, batch_size, rule, val=None):
        sizes, n_params, dtype = net.layout.sizes, net.n_params, net.dtype
        self.network, self.data, self.val, self.rule = net, data, val, rule
        self.n = int(data.X.shape[0])
        # A batch larger than the data is the whole data (and a size near 2^63 would overflow the kernel's sums).
        self.batch_size = int(min(batch_size, self.n))
        self.n_batches = (self.n + self.batch_size - 1) // self.batch_size
        self._batch_seconds = None  # measured by an epoch run in chunks
        dropout = bool(net.dropout_rates.any())
        weighted = data.sw.shape[0] > 0
        kernel_net = net.kernel_net(None)
        self.choice = policy.choose(sizes, self.batch_size, n_params, kernel_net.acts, dropout, rule)
        self.work = plan.work(sizes, n_params, dtype, self.batch_size, batch=True, grad=True, weights=weighted,
                              dropout=dropout)
        self.team = self.crew = None
        if self.choice.parallel == policy.TEAM:
            self.team = team.team_buffers(sizes, n_params, dtype, self.batch_size, weighted)
        elif self.choice.parallel == policy.CREW:
            self.crew = crew.crew_buffers(self.work, self.choice.threads)
        # A crew's products are MKL's on each thread (crew.py): its Net names no engine.
        self.net = kernel_net if self.crew is not None else kernel_net._replace(mm=self.choice.mm)
        if val is not None:
            self.val_weight = float(val.X.shape[0]) if val.sw.shape[0] == 0 else float(val.sw.sum())
            self.val_work = plan.work(sizes, n_params, dtype,
                                      policy.validation_rows(sizes, val.X.shape[0], self.batch_size, n_params))
        # _train_epochs' arguments of one epoch: no stopping rule, no best parameters, the undo buffer.
        self.no_stop = np.zeros(kernels.STOP_SIZE)
        self.no_best = np.empty(0, dtype=dtype)
        self.saved = np.empty(n_params + net.state.slots.size, dtype=dtype)

    def epoch(self, epoch_idx, perm, on_batches=None):
        """One epoch over the rows ``perm``: (summed cost, summed accuracy as ``kernels._train_epoch`` sums them,
        first non-finite batch or -1, last learning rate).

        ``on_batches(done, n_batches)``: the epoch runs in chunks of batches of about CHUNK_SECONDS each,
        reporting after each, where it is long enough for that to show.
        """
        if on_batches is not None and (self._batch_seconds is None
                                       or self._batch_seconds * self.n_batches > 2 * CHUNK_SECONDS):
            return self._epoch_in_chunks(epoch_idx, perm, on_batches)
        return self._batches(perm, epoch_idx, self.network.state.step)

    def _epoch_in_chunks(self, epoch_idx, perm, on_batches):
        # Batches are cut from ``perm`` as one call cuts them, and each chunk's updates count on from the
        # batches before it, so the parameters are bitwise those of one call; the epoch's summed cost is
        # added up chunk by chunk (its last bits may differ).
        bs, n_batches, step = self.batch_size, self.n_batches, self.network.state.step
        loss, correct, done, chunk, lr = 0.0, 0.0, 0, 1, 0.0
        while done < n_batches:
            t0 = time.perf_counter()
            c_loss, c_correct, bad, lr = self._batches(perm[done * bs : (done + chunk) * bs], epoch_idx, step + done)
            seconds = time.perf_counter() - t0
            loss += c_loss
            correct += c_correct
            if bad >= 0:
                return loss, correct, done + bad, lr
            done += chunk
            self._batch_seconds = seconds / chunk
            on_batches(done, n_batches)
            chunk = max(1, min(n_batches - done, int(CHUNK_SECONDS / max(self._batch_seconds, 1e-9))))
        return loss, correct, -1, lr

    def _batches(self, perm, epoch_idx, step0):
        """The batches cut from ``perm`` of epoch ``epoch_idx``, its updates counted from ``step0``:
        ``_train_epochs`` with one order and no stopping rule (the one compiled epoch of every path); (summed
        cost, summed accuracy, first non-finite batch or -1, last learning rate)."""
        rec = plan.record(self.no_stop, self.saved, self.no_best, 1)
        _, bad, _ = self.train_epochs(perm[None, :], epoch_idx, step0, rec)
        return float(rec.loss[0]), float(rec.correct[0]), bad, float(rec.lr[0])

    def epochs_kernel(self):
        """(the compiled function ``train_epochs`` calls, the engine's argument of it): what compiles first."""
        if self.team is not None:
            return team.kernel(self.net)
        if self.crew is not None:
            return crew.kernel(self.net)
        return _train_epochs, self.net

    def train_epochs(self, perms, epoch0, step0, rec):
        """``kernels._train_epochs`` over the orders ``perms`` (one per epoch) with the Record ``rec`` (stopping
        rule, best parameters' buffer, per-epoch outputs); in a team or crew where policy chose one (the same
        results, within rounding). Returns (epochs completed, non-finite batch or -1, whether the rule stopped)."""
        net = self.network
        epochs = plan.Epochs(perms, self.batch_size, int(epoch0), int(step0))
        args = (net.params, net.state.slots, self.data, epochs, self.net, self.work, self.rule, rec)
        if self.team is not None:
            return team.train_epochs(*args, self.team)
        if self.crew is not None:
            return crew.train_epochs(*args, self.crew)
        return _train_epochs(*args)

    def validate(self):
        """(validation Σ w C, weight of the rows right)."""
        return _full_pass(self.network.params, *self.val, self.net, self.val_work, False, self.val_work.grad, False,
                          self.val.X[:0])

    def log_columns(self, loss, correct, lr, val=None):
        """The History entries of epochs (arrays of their sums and rates)."""
        return epoch_columns(self.network.is_classifier, self.n, np.asarray(loss), np.asarray(correct), lr, val,
                             None if val is None else self.val_weight)

    def logs(self, loss, correct, lr, val=None):
        """The History entry of an epoch."""
        return {k: float(v) for k, v in self.log_columns(loss, correct, lr, val).items()}

    def set_lr(self, lr):
        """The base learning rate from the next epoch on."""
        self.rule = self.rule._replace(lr=float(lr))

    def step_schedule(self, schedule, logs):
        """After an epoch: a plateau schedule judges the epoch's ``logs`` and sets the next rate."""
        if isinstance(schedule, ReduceLROnPlateau):
            self.set_lr(schedule.step(self.network.state.schedule["state"], logs[schedule.monitor]))


def fit(net, X, y, epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"], lr=None, optimizer=None,
        schedule=None, clip_norm=None, shuffle=True, validation_data=None, validation_split=None,
        early_stopping=None, callbacks=None, checkpoint=None, checkpoint_every=1, verbose="auto", sample_weight=None,
        class_weight=None, l2=0.0):
    """Train the network ``net`` by mini-batch gradient descent; each epoch runs in one compiled call.

    ``Network.fit`` is this function, the network being ``self``.

    Parameters
    ----------
    net : Network
        The network trained, in place (``self`` of ``Network.fit``).
    X, y : array-like
        Inputs (n, n_0) and targets (see ``Network``'s docstring for y's forms).
    epochs : int, default 20
    batch_size : int, default 32
        The gradient of each update is averaged over the batch (the paper's 1/n Σ_k).
    lr : float, optional
        The learning rate. With no ``optimizer`` this is plain gradient
        descent, θ ← θ - lr ∇C (lr 0.1 if not given: ``fastbp.training.DEFAULTS``);
        with an optimizer name, that optimizer's lr.
    optimizer : str or Optimizer, optional
        "sgd", "adam", "adamw", "rmsprop" or a spec such as ``fastbp.Adam(lr=1e-3)``.
        A later ``fit`` with the same optimizer settings continues its state
        (moments, step count); other settings start it afresh.
    schedule : Schedule, optional
        How the learning rate changes with epochs or steps (constant if None);
        ``fastbp.ReduceLROnPlateau(...)`` lowers it when a logged value stops
        improving (its monitor must be logged: "val_loss" needs validation data).
    clip_norm : float, optional
        Rescale each batch's gradient to at most this global L2 norm.
    shuffle : bool, default True
        A new permutation of the rows every epoch, from the network's RNG.
    validation_data : (X_val, y_val) or (X_val, y_val, sample_weight_val), optional
    validation_split : float, optional
        Hold out the last fraction of X, y for validation (before shuffling), as Keras does.
    early_stopping : EarlyStopping, int or dict, optional
        An int is the patience on val_loss. The best epoch's parameters are restored.
    callbacks : list, optional
        Objects with ``on_epoch_end(net, epoch, logs)`` (or callables of the same
        arguments); returning True, or setting ``net.stop_training = True``, stops.
    checkpoint : path, optional
        Save the network here (atomically) every ``checkpoint_every`` epochs,
        at the end, and on interrupt.
    verbose : {"auto", 0, 1, 2}, default "auto"
        0 silent, 1 a progress bar, 2 a line per epoch; "auto" is 1 on a terminal, else 0.
    sample_weight : array-like (n,), optional
        One weight ≥ 0 per row: each batch's cost is then the weighted mean
        Σ_k w_k C_k / Σ_k w_k over its own rows (as scikit-learn's MLP), and
        accuracy is weighted the same way. With ``validation_split``, the
        weights are split with the rows.
    class_weight : "balanced" or dict, optional
        Classifiers: a weight per class, multiplied into ``sample_weight``:
        "balanced" is n / (n_classes · count(class)) (scikit-learn's
        ``compute_class_weight``), a dict maps labels (or class indices) to
        weights, classes not named weighing 1.
    l2 : float, default 0
        L2 penalty on the weights (not the biases), scikit-learn's ``alpha``:
        each batch's cost adds (l2/2)·Σ_l ‖W^l‖² / Σ_k w_k (the row count
        without weights), and the reported ``loss`` includes it, as
        scikit-learn's ``loss_curve_`` does.

    Returns
    -------
    History
        Per epoch: loss, accuracy (classifiers), val_loss and val_accuracy
        (with validation), lr, seconds, samples_per_second. ``loss`` and
        ``accuracy`` average the batches' values weighted by their row counts,
        as scikit-learn's ``loss_curve_`` (without sample weights or l2, simply
        the mean over the epoch's rows); ``val_loss`` and ``val_accuracy`` are
        weighted means over the validation rows.

    Notes
    -----
    If the cost becomes NaN or Inf, the network goes back to the end of the last
    completed epoch (parameters, optimizer state, RNG) and FloatingPointError
    names the epoch and batch. On KeyboardInterrupt it goes back the same way,
    writes the checkpoint if one is set, and re-raises.
    """
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
        files.check_target(checkpoint, "checkpoint")
    if verbose == "auto":
        verbose = auto_verbose()
    verbose = checks.check_int(verbose, "verbose", minimum=0)
    if verbose > 2:
        raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose}")

    check_monitor(sched, net, Xv)
    n = X.shape[0]
    plateau_lr = net.state.start(opt, net.n_params, net.dtype, sched)
    n_batches = (n + batch_size - 1) // batch_size
    run = Single(net, plan.data(X, Y, sw), batch_size,
                 kernel_rule(net, opt, sched, clip, schedule_length(sched, epochs, n_batches), l2),
                 None if Xv is None else plan.data(Xv, Yv, swv))
    if plateau_lr is not None:
        run.set_lr(plateau_lr)
    order = np.arange(n, dtype=np.int64)

    keep = {"good": snapshot(net), "best": None}  # what an error or interrupt puts back; the best epoch's
    history = History()
    progress = Progress(verbose, epochs, net.epochs_trained + 1)
    progress.compiling(*run.epochs_kernel(), net.params, X)
    net.stop_training = False
    stopped = False
    # Nothing to do in Python between epochs: several epochs per compiled call, the stopping rule inside.
    compiled = (not (progress.verbose or progress.shows_batches) and Xv is None and not cbs and checkpoint is None
                and not isinstance(sched, ReduceLROnPlateau) and _stop_vector(stopper, net) is not None)
    try:
        with policy.running(run, run.choice):
            if compiled:
                stopped = _fit_compiled(net, run, epochs, shuffle, stopper, history, keep)
            for _ in range(0 if compiled else epochs):
                epoch = net.epochs_trained + 1
                perm = net.state.rng.permutation(n).astype(np.int64, copy=False) if shuffle else order
                t0 = time.perf_counter()
                loss, correct, bad, lr_used = run.epoch(
                    epoch - 1, perm, on_batches=(lambda done, total, e=epoch: progress.batches(e, done, total))
                    if progress.shows_batches else None)
                seconds = time.perf_counter() - t0
                if bad >= 0:
                    restore(net, keep["good"])
                    raise _diverged(epoch, bad, loss)
                logs = run.logs(loss, correct, lr_used, run.validate() if Xv is not None else None)
                logs.update(seconds=seconds, samples_per_second=n / seconds if seconds > 0 else math.inf)
                run.step_schedule(sched, logs)
                _record(net, history, epoch, logs, n_batches)
                keep["good"] = snapshot(net)
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
        restore(net, keep["good"])
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
    n, n_batches = run.n, run.n_batches
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
        rec = plan.record(stop, run.saved, best, k)
        t0 = time.perf_counter()
        ran, bad, halt = run.train_epochs(perms, net.epochs_trained, net.state.step, rec)
        seconds = (time.perf_counter() - t0) / max(ran + (bad >= 0), 1)
        if states is not None:
            states[0] = after[ran - 1] if ran > 0 else start
            put_states([rng], states)
        elif shuffle and ran < k:
            rng.bit_generator.state = before
            rng.permuted(np.tile(order, (ran, 1)), axis=1)
        # The epochs' records, computed as run.logs computes one epoch's.
        first = net.epochs_trained + 1
        logged = run.log_columns(rec.loss[:ran], rec.correct[:ran], rec.lr[:ran])
        columns = {key: v.tolist() for key, v in logged.items()}
        columns.update(seconds=[seconds] * ran, samples_per_second=[n / seconds if seconds > 0 else math.inf] * ran)
        epochs_run = list(range(first, first + ran))
        net.state.step += ran * n_batches
        net.epochs_trained += ran
        history.extend(epochs_run, columns)
        net.history.extend(epochs_run, columns)
        chosen = np.flatnonzero(rec.chosen[:ran])
        best_epoch = first + int(chosen[-1]) if chosen.shape[0] else None
        if stopper is not None:
            stopper.best = None if math.isnan(stop[kernels.STOP_BEST]) else float(stop[kernels.STOP_BEST])
            stopper.wait = int(stop[kernels.STOP_WAIT])
            if best_epoch is not None:
                stopper.best_epoch = best_epoch
        keep["good"] = snapshot(net)
        if best_epoch is not None and best.shape[0]:
            keep["best"] = {"params": best.copy(), "epochs_trained": best_epoch}
        if bad >= 0:
            raise _diverged(net.epochs_trained + 1, bad, rec.loss[ran])
        if halt:
            return True
        done += ran
        chunk = max(1, int(CHUNK_SECONDS / max(seconds, 1e-9)))
    return False
