"""What runs between epochs: early stopping, user callbacks, progress display.

Nothing here runs per batch: an epoch is one compiled call (or a few chunks of
batches), and these see its summary (the ``logs`` dict of the History) when it returns.
"""

import math
import sys
import time

from ..common.checks import check_int

__all__ = ["EarlyStopping", "Callback"]


class Callback:
    """Base for user callbacks: override ``on_epoch_end``; return True (or set
    ``net.stop_training = True``) to stop after this epoch."""

    def on_epoch_end(self, net, epoch, logs):
        return False


class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A History key; "val_*" needs validation data.
    patience : int, default 5
    min_delta : float, default 0.0
    mode : {"auto", "min", "max"}, default "auto"
        "auto" maximises keys containing "accuracy" and minimises the rest.
    restore_best : bool, default True
        At the end, put back the parameters of the best epoch.
    track_any : bool, default False
        Whether the best value follows every improvement, even one by less than ``min_delta``
        (scikit-learn's MLP rule: the patience count still restarts only on an improvement by more
        than ``min_delta``, measured from that best value).

    An EarlyStopping keeps its state (``best``, ``wait``) from one ``fit`` to the next; ``reset()``
    starts it afresh.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto", restore_best=True,
                 track_any=False):
        if not isinstance(monitor, str):
            raise TypeError(f"EarlyStopping(monitor): expected a History key such as 'val_loss', got {monitor!r}")
        self.monitor = monitor
        self.patience = check_int(patience, "EarlyStopping(patience)", minimum=0)
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not (
            math.isfinite(min_delta) and min_delta >= 0
        ):
            raise ValueError(f"EarlyStopping(min_delta): expected a finite number >= 0, got {min_delta!r}")
        self.min_delta = float(min_delta)
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping(mode): expected 'auto', 'min' or 'max', got {mode!r}")
        self.mode = ("max" if "accuracy" in monitor else "min") if mode == "auto" else mode
        self.restore_best = bool(restore_best)
        self.track_any = bool(track_any)
        self.reset()

    def reset(self):
        self.best = None
        self.best_epoch = None
        self.wait = 0

    def improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch, logs):
        """Record this epoch; returns (is_best, should_stop)."""
        if self.monitor not in logs:
            raise ValueError(
                f"early_stopping: monitor {self.monitor!r} is not among the logged values {sorted(logs)}"
                + (" (pass validation_data or validation_split)" if self.monitor.startswith("val_") else "")
            )
        value = logs[self.monitor]
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True, False
        if self.track_any and (value < self.best if self.mode == "min" else value > self.best):
            self.best = value
        self.wait += 1
        return False, self.wait > self.patience

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, min_delta={self.min_delta}, "
                f"mode={self.mode!r}, restore_best={self.restore_best}, track_any={self.track_any})")


def get_early_stopping(spec):
    """None, an EarlyStopping, an int (patience on val_loss) or a dict of EarlyStopping's arguments."""
    if spec is None or isinstance(spec, EarlyStopping):
        return spec
    if isinstance(spec, bool):
        raise TypeError(f"early_stopping: expected an EarlyStopping, an int patience or a dict, got {spec!r}")
    if isinstance(spec, int):
        return EarlyStopping(patience=spec)
    if isinstance(spec, dict):
        return EarlyStopping(**spec)
    raise TypeError(f"early_stopping: expected an EarlyStopping, an int patience or a dict, got {spec!r}")


def call_callback(cb, net, epoch, logs):
    """Run one user callback; True if it asks to stop."""
    if hasattr(cb, "on_epoch_end"):
        return bool(cb.on_epoch_end(net, epoch, logs))
    return bool(cb(net, epoch, logs))


def check_callbacks(callbacks):
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        callbacks = [callbacks]
    for i, cb in enumerate(callbacks):
        if not (hasattr(cb, "on_epoch_end") or callable(cb)):
            raise TypeError(
                f"callbacks[{i}]: expected an object with on_epoch_end(net, epoch, logs) or a callable, got {cb!r}"
            )
    return list(callbacks)


def _fmt(logs):
    parts = []
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if k in logs:
            parts.append(f"{k} {logs[k]:.4f}")
    parts.append(f"lr {logs['lr']:.3g}")
    parts.append(f"{logs['samples_per_second']:,.0f} samples/s")
    return "  ".join(parts)


def auto_verbose():
    """verbose="auto": 1 (a progress bar) on a terminal or in a Jupyter kernel, else 0 (a log stays clean)."""
    if sys.stderr.isatty():
        return 1
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return 1 if shell is not None and "IPKernelApp" in getattr(shell, "config", {}) else 0


def needs_compile(dispatcher, *args):
    """Whether calling the njit ``dispatcher`` with ``args`` among its arguments will compile: no signature
    holding all their types is loaded in this process nor stored in the function's on-disk cache index.

    Pass the arguments whose types vary between calls (the parameters' dtype, the data's layout, the
    matmul engine tuple); with every argument the answer is exact. Reading the index is one small unpickle
    per fit. This looks into Numba's cache internals, so any surprise there means "don't know", answered
    False (no notice) rather than an error.
    """
    try:
        import numba

        want = [numba.typeof(a) for a in args]

        def has_all(sig):
            sig = list(sig)
            return all(t in sig for t in want)

        if any(has_all(sig) for sig in dispatcher.signatures):
            return False
        cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)  # none without cache=True
        index = cache_file._load_index() if cache_file is not None else {}
        return not any(has_all(key[0]) for key in index)
    except Exception:  # noqa: BLE001 - private API of another package; a notice is never worth a failure
        return False


class Progress:
    """What ``fit`` shows while it trains.

    verbose 1: a ``tqdm.auto`` bar over the epochs (a widget in Jupyter, a bar on a
    terminal) with the last epoch's metrics, advanced within an epoch by
    :meth:`batches`; verbose 2: a line per epoch; 0: nothing. Either non-zero level
    prints "compiling (first run only)" before a first compile (:meth:`compiling`).
    """

    # Seconds between two in-epoch redraws: several a second, never a cost.
    REDRAW = 0.1

    def __init__(self, verbose, epochs, first_epoch, stream=None):
        self.verbose = verbose
        self.epochs = epochs
        self.first = first_epoch
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self._last_draw = 0.0
        self._bar = None
        if verbose == 1:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=epochs, file=self.stream, leave=True, dynamic_ncols=True,
                             bar_format="{desc}{percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")
            self._bar.set_description_str(f"epoch {first_epoch}/{first_epoch + epochs - 1} ", refresh=False)

    def compiling(self, dispatcher, *args):
        """Say "compiling (first run only)" when the call of ``dispatcher`` with ``args`` will compile."""
        if self.verbose and needs_compile(dispatcher, *args):
            if self._bar is not None:
                self._bar.write("compiling (first run only)...", file=self.stream)  # above the bar, not over it
            else:
                self.stream.write("compiling (first run only)...\n")
                self.stream.flush()

    @property
    def shows_batches(self):
        """Whether :meth:`batches` draws anything (a bar is shown)."""
        return self._bar is not None

    def batches(self, epoch, done, n_batches):
        """In-epoch progress, for a loop that runs an epoch in chunks of batches: ``done`` of ``n_batches``
        of ``epoch`` are finished. Redraws at most every REDRAW seconds."""
        if self._bar is None:
            return
        now = time.perf_counter()
        if now - self._last_draw < self.REDRAW and done < n_batches:
            return
        self._last_draw = now
        self._bar.n = (epoch - self.first) + done / max(n_batches, 1)
        self._bar.set_description_str(f"epoch {epoch}/{self.first + self.epochs - 1} ", refresh=False)
        self._bar.refresh()

    def update(self, epoch, logs):
        if not self.verbose:
            return
        if self._bar is not None:
            self._bar.n = epoch - self.first + 1
            self._bar.set_description_str(f"epoch {epoch}/{self.first + self.epochs - 1} ", refresh=False)
            self._bar.set_postfix_str(_fmt(logs), refresh=False)
            self._bar.refresh()
            self._last_draw = time.perf_counter()
            return
        self.stream.write(f"epoch {epoch}  {_fmt(logs)}  ({logs['seconds']:.2f}s)\n")
        self.stream.flush()

    def close(self, stopped_early):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
