"""Many networks of one shape trained side by side, each on one core (``kernels._train_population``): the
population behind ``fastbp.sweep``'s trials and cross-validation folds. Each member trains as ``fit`` would
train it alone (its own optimizer, schedule, clip bound and shuffling RNG; bitwise ``fit``'s result where
``fit`` takes the same engine)."""

import numpy as np

from ..engine import plan, policy
from ..engine.kernels import _evaluate_population, _train_population
from .._numba.shuffle import _population_perms, put_states, take_states
from ..specs.schedules import ReduceLROnPlateau
from .arguments import check_monitor, kernel_rule, schedule_length
from .state import epoch_columns

__all__ = ["train_population", "Population"]


class Population:
    """Networks ``nets`` of one shape trained side by side on the Data ``data``, network i on ``counts[i]`` rows
    per epoch, with the kernels' Rules ``rules``; validated on ``val`` (a Data, or None), network i on its rows
    ``val_rows[i]`` = (start, stop) (default all): stacked parameters and optimizer states, the epoch call, the
    validation pass. Every member takes ``policy.population_engine``'s engine, on its own core."""

    def __init__(self, nets, data, batch_size, rules, counts, val=None, val_rows=None):
        first = nets[0]
        sizes, n_params, dtype = first.layout.sizes, first.n_params, first.dtype
        k = len(nets)
        self.nets, self.data, self.val = nets, data, val
        self.n = np.asarray(counts, dtype=np.int64).copy()
        # A batch larger than the data is the whole data (and a size near 2^63 would overflow the kernel's sums).
        self.batch_size = int(min(batch_size, self.n.max()))
        self.n_batches = (self.n + self.batch_size - 1) // self.batch_size
        self.mm = policy.population_engine(sizes, self.batch_size, n_params)
        # Its kernels take the engine apart from the Net (see kernels._train_population).
        self.net = first.kernel_net(None)
        dropout = any(net.dropout_rates.any() for net in nets)
        self.work = plan.work(sizes, n_params, dtype, self.batch_size, batch=True, grad=True, lead=(k,),
                              weights=data.sw.shape[0] > 0, dropout=dropout)
        if val is not None:
            self.bounds = np.array([(0, val.X.shape[0])] * k if val_rows is None else val_rows,
                                   dtype=np.int64).reshape(k, 2)
            n_val = self.bounds[:, 1] - self.bounds[:, 0]
            # What a network's validation sums are divided by: its rows' count, or their total weight.
            self.val_weight = n_val.astype(np.float64) if val.sw.shape[0] == 0 else \
                np.array([val.sw[a:b].sum() for a, b in self.bounds], dtype=np.float64)
            self.val_work = plan.work(sizes, n_params, dtype,
                                      policy.validation_rows(sizes, int(n_val.max()), self.batch_size, n_params),
                                      lead=(k,))
        self.P = np.stack([net.params for net in nets])
        slots = max(net.state.slots.shape[0] for net in nets)
        self.S = np.zeros((k, slots, n_params), dtype=dtype)
        for i, net in enumerate(nets):
            self.S[i, : net.state.slots.shape[0]] = net.state.slots
        self.rules = plan.Rule(*(np.array([r[f] for r in rules]) for f in range(len(plan.Rule._fields))))
        self.turn = plan.Turn(np.zeros((k, int(self.n.max())), dtype=np.int64), self.n, np.ones(k, dtype=np.bool_),
                              self.batch_size, 0, np.array([net.state.step for net in nets], dtype=np.int64),
                              np.zeros(k), np.zeros(k), np.zeros(k, dtype=np.int64), np.zeros(k))
        self.good_P, self.good_S = np.empty_like(self.P), np.empty_like(self.S)

    def epoch(self, epoch_idx, active):
        """Epoch ``epoch_idx`` of every ``active`` network over its rows (written into ``turn.perms``): (summed
        costs, summed accuracies as ``kernels._train_epoch`` sums them, first non-finite batch or -1, last
        learning rates), one entry per network."""
        t = self.turn._replace(active=active, epoch=int(epoch_idx))
        _train_population(self.P, self.S, *self.data, t.perms, t.counts, t.active, t.batch_size, t.epoch, t.steps,
                          self.net, self.work, self.rules, self.mm, t.loss, t.correct, t.bad, t.lr)
        t.steps[active] += self.n_batches[active]
        return t.loss, t.correct, t.bad, t.lr

    def validate(self, active):
        """(validation Σ w C, weights of the rows right), one entry per network."""
        v_loss, v_correct = np.zeros(len(self.nets)), np.zeros(len(self.nets))
        _evaluate_population(self.P, *self.val, self.bounds, active, self.net, self.val_work, self.mm, v_loss,
                             v_correct)
        return v_loss, v_correct

    def log_columns(self, loss, correct, lr, val=None):
        """Every network's History entries for an epoch: a dict of arrays, one entry per network."""
        return epoch_columns(self.nets[0].is_classifier, self.n, loss, correct, lr, val,
                             None if val is None else self.val_weight)

    def step_schedule(self, i, schedule, logs):
        """After an epoch: a plateau schedule judges network i's ``logs`` and sets its next rate."""
        if isinstance(schedule, ReduceLROnPlateau):
            self.rules.lr[i] = schedule.step(self.nets[i].state.schedule["state"], logs[schedule.monitor])

    def finish(self, i):
        """Copy network i's stacked parameters and optimizer state back into it."""
        net = self.nets[i]
        net.params = self.P[i]
        net.state.slots[...] = self.S[i, : net.state.slots.shape[0]]
        net.state.step = int(self.turn.steps[i])


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
        _population_perms(shuffle[0], run.turn.perms, run.n, shuffle[1], active)
    else:
        for i, net in enumerate(nets):
            if active[i]:
                p = net.state.rng.permutation(run.n[i])
                if rows is None:
                    run.turn.perms[i, : run.n[i]] = p
                else:
                    np.take(rows[i], p, out=run.turn.perms[i, : run.n[i]])
    # What a network that diverges in this epoch goes back to.
    np.copyto(run.good_P, run.P)
    np.copyto(run.good_S, run.S)
    loss, correct, bad, lr = run.epoch(e, active)
    val = run.validate(active) if run.val is not None else None
    for i in np.flatnonzero(active & (bad >= 0)):
        active[i] = False
        run.P[i], run.S[i] = run.good_P[i], run.good_S[i]
        run.turn.steps[i] -= run.n_batches[i]
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
    rules = [kernel_rule(net, o, s, c, schedule_length(s, length, (m + batch_size - 1) // batch_size), a)
             for net, o, s, c, m, a in zip(nets, optimizers, schedules, clips, counts, l2s)]
    run = Population(nets, plan.data(X, Y, sample_weight), batch_size, rules, counts,
                     None if Xv is None else plan.data(Xv, Yv, sample_weight_val), val_rows)
    for i, lr in enumerate(plateau_lrs):
        if lr is not None:
            run.rules.lr[i] = lr
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
        with policy.one_blas_thread(run.mm):
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
