"""What a kernel takes, grouped in namedtuples that travel into njit code.

- ``Net``: the network's layout and codes, and the engine its products run on
  (``mm``, see products.py);
- ``Work``: the work buffers of a call, made once and reused by every batch;
- ``Rule``: the training rule, the optimizer and the learning-rate schedule;
- ``Data``: the rows trained or scored on (inputs, targets, sample weights);
- ``Epochs``: one network's call of epochs (the row orders, the batch size, where the counts start);
- ``Record``: what a call of epochs judges and writes per epoch (stopping rule, undo and best buffers, outputs);
- ``Turn``: one epoch of a population (each member's orders, row counts, activity, update counts).

A kernel takes ``(params, ..., data, net, work, rule)`` rather than thirty positional
arguments, so a new feature or engine changes one definition here and the
builders below, not every signature. Numba types a namedtuple by its fields'
types, so each dtype and engine compiles its own version once and caches it.
"""

import threading
from typing import NamedTuple

import numpy as np

__all__ = ["Net", "Work", "Rule", "Data", "Epochs", "Record", "Turn", "net_plan", "work", "forward_work", "rule",
           "chunk_rows", "NO_WEIGHTS"]

# Rows per chunk of a pass outside training: about 512k elements per work buffer, whatever the widths:
# buffers that stay in cache between a product and its bias and activation pass, and large enough products
# for BLAS (docs/performance.md: predict on 10,000 rows).
_CHUNK_ELEMENTS = 1 << 19


class Net(NamedTuple):
    """The layout and codes of a network: ``sizes``, ``w_off``, ``b_off`` (int64, see Layout); each
    layer's activation code ``acts`` (int64, L) and parameters ``act_p`` (float64, (L, 2)); the cost's
    ``loss_code`` and how accuracy is counted ``acc_mode`` (losses.py); the engine ``mm``."""

    sizes: np.ndarray
    w_off: np.ndarray
    b_off: np.ndarray
    acts: np.ndarray
    act_p: np.ndarray
    loss_code: int
    acc_mode: int
    mm: object


class Work(NamedTuple):
    """Work buffers for up to ``cap`` rows at a time: the gathered batch ``Xb`` (cap, n_0) and its
    targets ``Yb`` (cap, n_L) and sample weights ``wb`` (cap, float64; empty without weights); ``Zb``, ``Ab``, ``Db`` (``cap * sum(sizes[1:])`` each) hold z, a and
    δ = ∂C/∂z of every layer, layer after layer; ``grad`` is a gradient in the parameter layout.
    With dropout, ``Mb`` and ``Tb`` (``cap * sum(sizes[:-1])`` each) hold, for the input of every
    layer, its mask (0 or 1/(1-p)) and the masked activations the layer takes.
    Buffers a call does not use are empty."""

    cap: int
    Xb: np.ndarray
    Yb: np.ndarray
    wb: np.ndarray
    Zb: np.ndarray
    Ab: np.ndarray
    Db: np.ndarray
    grad: np.ndarray
    Mb: np.ndarray
    Tb: np.ndarray


class Rule(NamedTuple):
    """The training rule: optimizer ``opt_code`` with its float64 ``hyper`` vector (optimizers.py) and
    base learning rate ``lr``; ``clip`` the gradient-norm bound (0: none); schedule ``sched_code``
    with its float64 ``sched_p`` (schedules.py), evaluated per update if ``per_step`` else per epoch;
    ``l2`` the L2 penalty on the weights (scikit-learn's ``alpha``: (l2/2)·Σ‖W‖² over each batch's Σw);
    ``drop`` the dropout rate of each layer's input (float64, L; empty or all 0: none) and ``drop_key`` the
    network's key of its dropout masks (see ``kernels._dropout``)."""

    opt_code: int
    hyper: np.ndarray
    lr: float
    clip: float
    sched_code: int
    sched_p: np.ndarray
    per_step: bool
    l2: float
    drop: np.ndarray
    drop_key: np.uint64


class Data(NamedTuple):
    """Rows to train or score on: inputs ``X`` (n, n_0) and targets ``Y`` (n, n_L) in the network's dtype, sample
    weights ``sw`` (float64, n; empty: none)."""

    X: np.ndarray
    Y: np.ndarray
    sw: np.ndarray


class Epochs(NamedTuple):
    """One network's call of epochs: the row orders ``perms`` (int64, one row per epoch), ``batch_size``, the
    index ``epoch0`` of the call's first epoch and the updates ``step0`` made before it."""

    perms: np.ndarray
    batch_size: int
    epoch0: int
    step0: int


class Record(NamedTuple):
    """What a call of epochs judges and writes besides the network: the stopping rule ``stop`` (float64, see
    kernels.STOP_*), ``saved`` (parameters and optimizer state at the running epoch's start: what an undone epoch
    goes back to), ``best`` (the parameters of the epoch the rule calls best; empty: not kept) and, per epoch
    run, its summed cost ``loss``, weight right ``correct``, last learning rate ``lr`` and whether the rule
    called it best ``chosen`` (bool)."""

    stop: np.ndarray
    saved: np.ndarray
    best: np.ndarray
    loss: np.ndarray
    correct: np.ndarray
    lr: np.ndarray
    chosen: np.ndarray


class Turn(NamedTuple):
    """One epoch of a population: member t trains on the rows ``perms[t, :counts[t]]`` if ``active[t]``, in
    batches of ``batch_size``, as epoch ``epoch`` after ``steps[t]`` updates; its (summed cost, weight right,
    first non-finite batch or -1, last learning rate) go to ``loss``, ``correct``, ``bad``, ``lr``."""

    perms: np.ndarray
    counts: np.ndarray
    active: np.ndarray
    batch_size: int
    epoch: int
    steps: np.ndarray
    loss: np.ndarray
    correct: np.ndarray
    bad: np.ndarray
    lr: np.ndarray


# The kernels' "no sample weights" (an empty vector).
NO_WEIGHTS = np.zeros(0, dtype=np.float64)


def data(X, Y, sw=None):
    """The Data of X, Y and sample weights ``sw`` (None: none)."""
    return Data(X, Y, NO_WEIGHTS if sw is None else sw)


def record(stop, saved, best, k):
    """A Record for a call of up to ``k`` epochs, its outputs new."""
    return Record(stop, saved, best, np.zeros(k), np.zeros(k), np.zeros(k), np.zeros(k, dtype=np.bool_))


def net_plan(layout, acts, act_p, loss_code, acc_mode, mm):
    """The ``Net`` of a Layout, its activation codes and parameters, cost and accuracy codes, engine."""
    return Net(layout.sizes_arr, layout.w_off, layout.b_off, acts, act_p, int(loss_code), int(acc_mode), mm)


def work(sizes, n_params, dtype, cap, batch=False, delta=True, grad=False, lead=(), weights=False, dropout=False):
    """Work buffers for ``cap`` rows of a network of widths ``sizes``: ``batch`` adds the gathered
    inputs and targets (and their sample weights with ``weights``), ``delta`` the δ buffer, ``grad``
    a gradient, ``dropout`` the masks. ``lead`` prepends axes (one set of buffers per member of a
    population: index them with ``member``)."""
    width = cap * sum(sizes[1:])
    inputs = cap * sum(sizes[:-1]) if dropout else 0
    n0, nL = sizes[0], sizes[-1]
    return Work(int(cap),
                np.empty((*lead, cap if batch else 0, n0), dtype),
                np.empty((*lead, cap if batch else 0, nL), dtype),
                np.empty((*lead, cap if batch and weights else 0), np.float64),
                np.empty((*lead, width), dtype),
                np.empty((*lead, width), dtype),
                np.empty((*lead, width if delta else 0), dtype),
                np.zeros((*lead, n_params if grad else 0), dtype),
                np.empty((*lead, inputs), dtype),
                np.empty((*lead, inputs), dtype))


_scratch = threading.local()


def forward_work(sizes, dtype, cap):
    """``work(sizes, 0, dtype, cap, delta=False)`` for a forward pass outside training, its z and a buffers
    views of this thread's scratch space, kept between calls and grown when too small: a large predict then
    does not pay for fresh memory (page faults) at every call. Its buffers are reused by the thread's next
    call: a caller keeps no view of them (a kernel holds the GIL, so one pass per thread at a time)."""
    width = cap * sum(sizes[1:])
    dtype = np.dtype(dtype)
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    buf = buffers.get(dtype)
    if buf is None or buf.shape[0] < 2 * width:
        buf = buffers[dtype] = np.empty(2 * width, dtype)
    empty = np.empty(0, dtype)
    return Work(int(cap), empty.reshape(0, sizes[0]), empty.reshape(0, sizes[-1]), np.empty(0, np.float64),
                buf[:width], buf[width : 2 * width], empty, empty, empty, empty)


def rule(optimizer, schedule, clip, length, l2=0.0, drop=(), drop_key=0):
    """The ``Rule`` of an Optimizer spec, a Schedule spec, a clip bound (0 or None: none), an L2
    penalty and the dropout rates of the layers' inputs with their masks' key; ``length`` is the
    run's length in the schedule's unit (epochs, or updates with ``per="step"``)."""
    return Rule(int(optimizer.code), optimizer.hyper_vector(), float(optimizer.lr),
                0.0 if clip is None else float(clip), int(schedule.code), schedule.kernel_params(length),
                schedule.per == "step", float(l2), np.asarray(drop, dtype=np.float64), np.uint64(drop_key))


def chunk_rows(sizes, n):
    """Rows per chunk of a pass over ``n`` rows outside training (forward, evaluate, gradients)."""
    return max(1, min(n, _CHUNK_ELEMENTS // sum(sizes[1:])))
