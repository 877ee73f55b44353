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

import csv
import inspect
import itertools
import json
import math
import os
import time
import warnings

import numpy as np

from . import checks
from .specs import parse_spec
from .network import Network
from .optimizers import OPTIMIZERS, get_optimizer
from .schedules import get_schedule
from .training import DEFAULTS as TRAINING_DEFAULTS
from .training import split_validation, train_population

__all__ = ["sweep", "SweepResult", "Halving", "loguniform", "uniform", "choice"]

NETWORK_KEYS = ("layers", "activation", "output", "loss", "dtype", "init", "dropout", "input_dropout")
FIT_KEYS = ("epochs", "batch_size", "schedule", "clip_norm")
OPTIMIZER_KEYS = ("optimizer", "lr", "momentum", "nesterov", "betas", "eps", "weight_decay", "alpha")
KNOWN_KEYS = NETWORK_KEYS + FIT_KEYS + OPTIMIZER_KEYS + ("seed",)
# What must be equal for trials to share one compiled call.
GROUP_KEYS = ("layers", "activation", "output", "loss", "dtype", "init", "epochs", "batch_size")
# A trial's settings that are neither swept nor fixed: Network's own defaults and training's.
DEFAULTS = {**{k: p.default for k, p in inspect.signature(Network).parameters.items()
               if k in NETWORK_KEYS + ("seed",)},
            **{k: TRAINING_DEFAULTS[k] for k in ("layers",) + FIT_KEYS}, "optimizer": TRAINING_DEFAULTS["optimizer"]}
MAX_TRIALS = 10_000


# ----------------------------------------------------------------------------- distributions

class _Distribution:
    def get_config(self):
        return {"name": self.name, **self.__dict__}


class loguniform(_Distribution):  # noqa: N801 - reads like a function in a space
    """Log-uniform on [a, b], 0 < a < b (for learning rates and decays)."""

    name = "loguniform"

    def __init__(self, a, b):
        a = checks.check_positive_float(a, "loguniform(a)")
        b = checks.check_positive_float(b, "loguniform(b)")
        if not a < b:
            raise ValueError(f"loguniform: expected a < b, got a={a}, b={b}")
        self.a, self.b = a, b

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.a), math.log(self.b))))


class uniform(_Distribution):  # noqa: N801
    """Uniform on [a, b], a < b."""

    name = "uniform"

    def __init__(self, a, b):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (a, b)):
            raise ValueError(f"uniform: expected finite numbers, got a={a!r}, b={b!r}")
        if not a < b:
            raise ValueError(f"uniform: expected a < b, got a={a}, b={b}")
        self.a, self.b = float(a), float(b)

    def sample(self, rng):
        return float(rng.uniform(self.a, self.b))


class choice(_Distribution):  # noqa: N801
    """One of ``values``, uniformly."""

    name = "choice"

    def __init__(self, values):
        values = list(values)
        if not values:
            raise ValueError("choice: expected at least one value, got an empty list")
        self.values = values

    def sample(self, rng):
        return self.values[int(rng.integers(len(self.values)))]


DISTRIBUTIONS = {cls.name: cls for cls in (loguniform, uniform, choice)}


def _parse_space(space):
    if not isinstance(space, dict) or not space:
        raise ValueError(f"space: expected a non-empty dict of hyperparameter name -> values, got {space!r}")
    out = {}
    for key, values in space.items():
        if key not in KNOWN_KEYS:
            raise ValueError(f"space: unknown hyperparameter {key!r}; sweepable: {sorted(KNOWN_KEYS)}")
        if isinstance(values, dict):  # a get_config dict, or a TOML spec's {dist = ..., ...}
            if "dist" in values:
                values = {"name": values["dist"], **{k: v for k, v in values.items() if k != "dist"}}
            values = parse_spec(values, _Distribution, DISTRIBUTIONS, f"space[{key!r}]", "fastbp.loguniform(1e-4, 1)")
        if isinstance(values, _Distribution):
            out[key] = values
        elif isinstance(values, (list, tuple)):
            if not values:
                raise ValueError(f"space[{key!r}]: expected at least one value, got an empty list")
            out[key] = list(values)
        else:
            raise TypeError(f"space[{key!r}]: expected a list of values or a distribution, got {values!r}")
    return out


def _grid(space, max_trials):
    keys = list(space)
    for k in keys:
        if isinstance(space[k], _Distribution) and not isinstance(space[k], choice):
            raise ValueError(f"space[{k!r}]: a continuous distribution needs method='random' or 'optuna'")
    lists = [space[k].values if isinstance(space[k], choice) else space[k] for k in keys]
    size = math.prod(len(v) for v in lists)
    if size > max_trials:
        raise ValueError(f"space: the grid has {size} trials, more than max_trials={max_trials}")
    return [dict(zip(keys, combo)) for combo in itertools.product(*lists)]


def _random(space, trials, rng):
    out = []
    for _ in range(trials):
        out.append({k: (v.sample(rng) if isinstance(v, _Distribution) else v[int(rng.integers(len(v)))])
                    for k, v in space.items()})
    return out


# ----------------------------------------------------------------------------- one trial's settings

def _canonical(config):
    """A stable JSON text of a trial's settings: what resuming matches trials by."""
    def norm(v):
        if hasattr(v, "get_config"):
            return v.get_config()
        if isinstance(v, tuple):
            return list(v)
        if isinstance(v, np.generic):
            return v.item()
        return v
    return json.dumps({k: norm(v) for k, v in sorted(config.items())}, sort_keys=True)


def _network_for(config, n_in, n_out):
    layers = config["layers"]
    if isinstance(layers, int):
        layers = [layers]
    return Network([n_in, *layers, n_out], activation=config["activation"], output=config["output"],
                   loss=config["loss"], dtype=config["dtype"], seed=config["seed"], init=config["init"],
                   dropout=config["dropout"], input_dropout=config["input_dropout"])


def _optimizer_for(config):
    name = config["optimizer"]
    if not isinstance(name, str):  # an Optimizer, or its get_config dict from a results file
        return get_optimizer(name)
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer: unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    kwargs = {k: config[k] for k in OPTIMIZER_KEYS[1:] if config.get(k) is not None}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    try:
        return get_optimizer({"name": name, **kwargs})
    except TypeError as e:
        raise ValueError(f"optimizer: {name} does not take these settings {sorted(kwargs)}: {e}") from None


def _output_width(y, loss):
    y = np.asarray(y)
    if y.ndim == 2:
        return y.shape[1]
    if loss in (None, "cross_entropy"):
        return int(y.max()) + 1
    return 1


def _values(spec):
    """The values a space entry can give: a list's, a choice's, a continuous distribution's two ends."""
    if isinstance(spec, choice):
        return spec.values
    if isinstance(spec, _Distribution):
        return [spec.a, spec.b]
    return spec


def _check_settings(space, base, metric, validating, X, y):
    """Every value of ``space`` and every fixed setting, checked by the checks Network and fit make, and the
    metric one that the trials log; before any trial runs. Errors name the key and the value."""
    X_shape = np.shape(X)
    if len(X_shape) != 2:
        raise ValueError(f"X: expected a 2-D array (n_samples, n_features), got shape {X_shape}")
    y_arr = np.asarray(y)
    if y_arr.dtype.kind not in "biuf" or y_arr.size == 0:
        raise TypeError(f"y: expected a non-empty array of numbers, got dtype {y_arr.dtype}, shape {y_arr.shape}")
    n_out = _output_width(y_arr, base["loss"])
    logged = {"loss", "lr"}

    def check(config, network=True):
        try:
            if network and _network_for(config, X_shape[1], n_out).is_classifier:
                logged.add("accuracy")
            checks.fit_settings(config["epochs"], config["batch_size"], config["clip_norm"])
            get_schedule(config["schedule"])
            _optimizer_for(config)
        except (ValueError, TypeError) as e:
            return e
        return None

    # The fixed settings alone (swept keys at their defaults); a failure that the first swept values cure
    # came from a default that no trial uses.
    first = {**base, **{key: _values(spec)[0] for key, spec in space.items()}}
    error = check(base)
    if error is not None and check(first) is not None:
        raise error
    for key, spec in space.items():
        if key == "seed":  # Network's own check of a seed; the rest of the network is checked above
            for value in _values(spec):
                if value is not None:
                    try:
                        checks.check_int(value, "seed", minimum=0)
                    except (ValueError, TypeError) as error:
                        raise type(error)(f"space['seed'] value {value!r}: {error}") from None
            continue
        for value in _values(spec):
            error = check({**first, key: value}, network=key in NETWORK_KEYS)
            if error is not None:
                raise type(error)(f"space[{key!r}] value {value!r}: {error}") from None
    if validating:
        logged |= {f"val_{k}" for k in logged if k != "lr"}
    if metric not in logged:
        raise ValueError(f"metric: {metric!r} is never logged by these trials; they log {sorted(logged)}"
                         + ("" if validating or not metric.startswith("val_") else
                            " (a val_* metric needs validation_data, validation_split or cv)"))


# ----------------------------------------------------------------------------- pruning

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


# ----------------------------------------------------------------------------- population training

def _fold_bounds(n, cv):
    """Fold k's rows as (start, stop): ``numpy.array_split(numpy.arange(n), cv)``, contiguous."""
    return [(int(f[0]), int(f[-1]) + 1) for f in np.array_split(np.arange(n), cv)]


def _advance(configs, nets, X, y, Xv, yv, n_out, until, folds):
    """Train trials of one shape side by side up to epoch ``until`` (None: their ``epochs``), from
    scratch (``nets`` or its item None) or on from their networks. With ``folds`` ((start, stop) rows of X) a
    trial is one network per fold, trained on the other rows and validated on its own.

    Returns (the networks of each trial, the epoch each diverged at or None, seconds per trial).
    """
    t0 = time.perf_counter()
    n_folds = 1 if folds is None else len(folds)
    nets = [[_network_for(c, X.shape[1], n_out) for _ in range(n_folds)] if ns is None else ns
            for c, ns in zip(configs, nets or [None] * len(configs))]
    flat = list(itertools.chain(*nets))
    first, total = flat[0], configs[0]["epochs"]
    # What fit learns from the data besides weights (1-D targets, labels), once per network; the data
    # converted and its scales judged once.
    first.prepare_fit(X, y)
    Xc, Y = first.check_data(X, y)
    for net in flat[1:]:
        net.prepare_fit(Xc, y, hint=False)
    rows = val_rows = None
    if folds is not None:
        rows = [np.r_[0:a, b: Xc.shape[0]] for a, b in folds] * len(configs)
        val_rows = list(folds) * len(configs)
        Xvc, Yv = Xc, Y
    else:
        Xvc, Yv = first.check_data(Xv, yv, "validation_data") if Xv is not None else (None, None)

    def each(setting):
        return [setting(c) for c in configs for _ in range(n_folds)]

    recs = train_population(flat, Xc, Y, (total if until is None else until) - first.epochs_trained,
                            configs[0]["batch_size"], each(_optimizer_for), each(lambda c: get_schedule(c["schedule"])),
                            each(lambda c: c["clip_norm"]), Xvc, Yv, length=total, rows=rows, val_rows=val_rows)
    diverged = [min((r["diverged_at_epoch"] for r in recs[i * n_folds: (i + 1) * n_folds]
                     if "diverged_at_epoch" in r), default=None) for i in range(len(configs))]
    return nets, diverged, (time.perf_counter() - t0) / len(configs)


def _history(nets):
    """A trial's per-epoch logs: its network's, or the mean over its folds' networks."""
    hs = [net.history.history for net in nets]
    if len(hs) == 1:
        return {k: list(v) for k, v in hs[0].items()}
    m = min(len(h.get("loss", ())) for h in hs)
    return {k: [sum(h[k][e] for h in hs) / len(hs) for e in range(m)] for k in hs[0]}


def _finals(history):
    return {k: v[-1] for k, v in history.items() if isinstance(v, list) and v}


def _fit_settings(config):
    """The ``Network.fit`` keyword arguments of a trial's ``config`` (a record's ``"fit"``)."""
    schedule = config.get("schedule")
    return {"epochs": config["epochs"], "batch_size": config["batch_size"],
            "optimizer": _optimizer_for(config).get_config(),
            "schedule": None if schedule is None else get_schedule(schedule).get_config(),
            "clip_norm": config.get("clip_norm")}


def _record(config, nets, diverged, seconds, pruned_at=None):
    h = _history(nets)
    if diverged is not None:
        h["diverged_at_epoch"] = diverged
        final = {key: math.nan for key in h if isinstance(h[key], list)} or {"loss": math.nan}
    else:
        final = _finals(h)
    rec = {"config": json.loads(_canonical(config)), "network": nets[0].get_config(), "fit": _fit_settings(config),
           "final": final, "history": h, "seconds": seconds}
    if len(nets) > 1:
        rec["folds"] = [_finals(net.history.history) for net in nets]
        rec["params_digest"] = [_digest(net.params) for net in nets]
    else:
        rec["params_digest"] = _digest(nets[0].params)
    if pruned_at is not None:
        rec["pruned_at_epoch"] = pruned_at
    return rec


def _digest(params):
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(params).tobytes()).hexdigest()[:16]


def _groups(configs):
    groups = {}
    for i, c in enumerate(configs):
        key = json.dumps({k: c.get(k) for k in GROUP_KEYS}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


# ----------------------------------------------------------------------------- results

class SweepResult:
    """The trials of a sweep: ``trials`` (one record each), ``best``, ``best_network()``,
    ``network(record)``, ``leaderboard``, ``to_csv``.

    A record holds the trial's ``config`` (every setting, swept or not), its settings split
    for reuse (``network``: ``Network.from_config``'s; ``fit``: ``Network.fit``'s keyword
    arguments), its ``final`` metrics and per-epoch ``history``, its ``seconds`` and a
    ``params_digest``; ``folds`` with ``cv``, ``pruned_at_epoch`` for a pruned trial.
    """

    def __init__(self, trials, metric, mode, networks=None, retrain=None):
        self.trials = trials
        self.metric = metric
        self.mode = mode
        self._networks = {} if networks is None else networks
        self._retrain = retrain
        self._refits = {}

    def _score(self, t):
        v = t["final"].get(self.metric, math.nan)
        if v is None or not math.isfinite(v):
            return -math.inf
        return v if self.mode == "max" else -v

    @property
    def best(self):
        """The record of the best trial by ``metric``."""
        return max(self.trials, key=self._score)

    def network(self, record):
        """The trained Network of a trial (one of ``trials``).

        The network trained in the run when this result holds it, otherwise one retrained
        from the trial's settings and seed, bitwise the same. A pruned trial's network is
        the one at the epoch it stopped; a diverged one's at its last finite epoch. A
        cross-validated trial is refit on all the training rows with its settings
        (as scikit-learn's ``GridSearchCV(refit=True)``), for as many epochs as it ran.
        """
        if not isinstance(record, dict) or "config" not in record:
            raise TypeError(f"record: expected a trial record (an item of result.trials), got {record!r}")
        key = _canonical(record["config"])
        if record.get("folds") is None and key in self._networks:
            return self._networks[key][0]
        if key not in self._refits:
            if self._retrain is None:
                raise ValueError("record: this SweepResult was made without its data, so it cannot retrain the "
                                 "trial; use Network.from_config(record['network']).fit(X, y, **record['fit'])")
            self._refits[key] = self._retrain(record)
        return self._refits[key]

    def best_network(self):
        """The trained Network of the best trial (see ``network``)."""
        return self.network(self.best)

    def leaderboard(self, top=10):
        return sorted(self.trials, key=self._score, reverse=True)[:top]

    def to_csv(self, path):
        """One row per trial: its swept settings and final metrics."""
        keys = sorted({k for t in self.trials for k in t["config"]})
        metrics = sorted({k for t in self.trials for k in t["final"]})
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(keys + [f"final_{m}" for m in metrics] + ["seconds"])
            for t in self.trials:
                w.writerow([json.dumps(t["config"].get(k)) if isinstance(t["config"].get(k), (list, dict))
                            else t["config"].get(k) for k in keys] + [t["final"].get(m) for m in metrics]
                           + [t["seconds"]])

    def __len__(self):
        return len(self.trials)

    def __repr__(self):
        b = self.best
        return f"SweepResult({len(self)} trials, best {self.metric}={b['final'].get(self.metric)} with {b['config']})"


def _append(path, records):
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a line cut short by a crash: end it, and it is skipped on reading
                f.write(b"\n")
    with open(path, "a") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _read_results(path):
    """The finished trials of a results file by their settings. A line that is not a whole record (cut short
    by a crash, edited, not text) is named in a warning, and its trial runs again."""
    done = {}
    if path is None or not os.path.exists(path):
        return done
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode())
                if not (isinstance(rec, dict) and isinstance(rec.get("config"), dict)
                        and isinstance(rec.get("final"), dict)):
                    raise ValueError("expected a trial record with 'config' and 'final'")
                done[_canonical(rec["config"])] = rec
            except (ValueError, TypeError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                warnings.warn(f"results: {os.fspath(path)!r} line {number} is not a trial record ({e}); "
                              "that trial runs again", stacklevel=3)
    return done


# ----------------------------------------------------------------------------- backends

class _Local:
    """Jobs run one after another in this process (each job's population uses every core)."""

    split = False

    def __init__(self, data):
        self.data = data

    def map(self, jobs, fixed, on_result):
        for j, job in enumerate(jobs):
            on_result(j, _advance(*job, *self.data, *fixed))

    def close(self):
        pass


class _Dask:
    """Jobs on a Dask cluster: the data scattered once, each job submitted with retries (a worker that
    dies has its jobs run elsewhere); a job cancelled because its scattered data died with a worker is
    submitted again with the data scattered anew."""

    split = True

    def __init__(self, data, scheduler):
        try:
            from dask.distributed import Client, LocalCluster, as_completed
            from distributed.client import FutureCancelledError
        except ImportError:
            raise ValueError('backend: "dask" needs dask.distributed: pip install "fastbp[dask]"') from None
        self._as_completed, self._cancelled = as_completed, FutureCancelledError
        self.cluster = None
        if scheduler is None:
            self.cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True)
            self.client = Client(self.cluster)
        else:
            self.client = Client(scheduler)
        self.data, self.scattered = data, None

    def map(self, jobs, fixed, on_result):
        pending = list(range(len(jobs)))
        for _ in range(4):
            if self.scattered is None:
                self.scattered = self.client.scatter(list(self.data), broadcast=True)
            futures = {self.client.submit(_advance, *jobs[j], *self.scattered, *fixed, pure=False, retries=3): j
                       for j in pending}
            pending = []
            for fut in self._as_completed(futures):
                try:
                    result = fut.result()
                except self._cancelled:
                    pending.append(futures[fut])
                    continue
                on_result(futures[fut], result)
            if not pending:
                return
            self.scattered = None
        raise RuntimeError(f"backend dask: {len(pending)} group(s) of trials cancelled 4 times over "
                           "(workers lost with their data); the finished trials are in `results`")

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _split_for_workers(groups, parts):
    """Cut each group into about ``parts`` pieces so that several workers share a large group."""
    out = []
    for g in groups:
        size = max(1, math.ceil(len(g) / parts))
        out.extend(g[i:i + size] for i in range(0, len(g), size))
    return out


class _Search:
    """Trials trained rung by rung: every group of running trials is trained to the rung (one round of
    jobs on the backend, networks sent with the jobs and back with the results), then all trials of
    the call are ranked together and the pruned ones stop. Without pruning there is one round, to the
    end. Records go to ``emit`` as trials finish; ``networks`` keeps each trial's network (not the
    folds' of a cross-validated one)."""

    def __init__(self, backend, n_out, folds, prune, metric, mode, done, emit):
        self.backend, self.n_out, self.folds, self.prune = backend, n_out, folds, prune
        self.metric, self.mode, self.done, self.emit = metric, mode, done, emit
        self.networks = {}

    def _value(self, history, rung):
        """A trial's standing at ``rung``: the best finite value of the metric in its first ``rung`` epochs
        (NaN if it did not reach the rung or has none). The best so far, not the value at the rung: one
        epoch's validation figure jitters by a few rows, and the best so far is what early stopping keeps."""
        v = history.get(self.metric, ())
        seen = [x for x in v[:rung] if x is not None and math.isfinite(x)] if len(v) >= rung else []
        if not seen:
            return math.nan
        return max(seen) if self.mode == "max" else min(seen)

    def _reached(self, rec, rung):
        """Whether a trial of the results file was running at ``rung`` (so was ranked there)."""
        h = rec["history"]
        return (rec.get("pruned_at_epoch") or math.inf) >= rung and (h.get("diverged_at_epoch") or math.inf) > rung \
            and len(h.get("loss", ())) >= rung

    def halving(self, rung, entrants, values):
        """The best ``prune.keep(n)`` of the n entrants by their values, ties to the earlier trial."""
        sign = 1.0 if self.mode == "max" else -1.0

        def rank(i):
            v = values[i]
            return (-(sign * v) if v is not None and math.isfinite(v) else math.inf, i)

        return set(sorted(entrants, key=rank)[: self.prune.keep(len(entrants))])

    def run(self, configs, decide=None):
        """Train the trials of ``configs`` not in ``done``; at each rung ``decide(rung, entrants, values)``
        (default: ``halving``) returns the entrants (indices into configs) that go on."""
        decide = decide or self.halving
        keys = [_canonical(c) for c in configs]
        alive = {i for i, k in enumerate(keys) if k not in self.done}
        if not alive:
            return
        nets, seconds = {}, dict.fromkeys(alive, 0.0)
        rungs = self.prune.rungs(configs[0]["epochs"]) if self.prune is not None else []
        for rung in rungs + [None]:
            order = sorted(alive)
            groups = [[order[i] for i in g] for g in _groups([configs[i] for i in order])]
            if self.backend.split:
                groups = _split_for_workers(groups, 4)

            def on_result(j, result):
                finished = []
                for i, ns, diverged in zip(groups[j], result[0], result[1]):
                    nets[i] = ns
                    seconds[i] += result[2]
                    if diverged is not None or rung is None:
                        alive.discard(i)
                        finished.append((keys[i], _record(configs[i], ns, diverged, seconds[i]), ns))
                self._finish(finished)

            self.backend.map([([configs[i] for i in g], [nets.get(i) for i in g]) for g in groups],
                             (self.n_out, rung, self.folds), on_result)
            if rung is None:
                return
            entrants = [i for i in range(len(configs))
                        if i in alive or (keys[i] in self.done and self._reached(self.done[keys[i]], rung))]
            values = {i: self._value(_history(nets[i]) if i in alive else self.done[keys[i]]["history"], rung)
                      for i in entrants}
            kept = decide(rung, entrants, values)
            pruned = sorted(alive - kept)
            alive -= set(pruned)
            self._finish([(keys[i], _record(configs[i], nets[i], None, seconds[i], pruned_at=rung), nets[i])
                          for i in pruned])
            if not alive:
                return

    def _finish(self, finished):
        for key, rec, ns in finished:
            if len(ns) == 1:  # a cross-validated trial's network is its refit, not one of its folds'
                self.networks[key] = ns
        if finished:
            self.emit([rec for _, rec, _ in finished])


# ----------------------------------------------------------------------------- the sweep

def sweep(space, X, y, *, validation_data=None, validation_split=None, epochs=TRAINING_DEFAULTS["epochs"],
          batch_size=TRAINING_DEFAULTS["batch_size"], method="grid",
          trials=None, seed=0, metric="val_accuracy", mode="max", prune=None, cv=None, shuffle=False,
          backend="local", scheduler=None, results=None, resume=False, max_trials=MAX_TRIALS, progress=None,
          **fixed):
    """Train one network per setting in ``space`` and score each.

    Parameters
    ----------
    space : dict
        Hyperparameter name -> list of values (grid), or a distribution
        (``fastbp.loguniform(a, b)``, ``fastbp.uniform(a, b)``, ``fastbp.choice([...])``)
        for ``method="random"``. Names: layers, activation, output, loss, dtype,
        init, epochs, batch_size, schedule, clip_norm, optimizer, lr, momentum,
        nesterov, betas, eps, weight_decay, alpha, seed.
    X, y : array-like
        Training data; the input and output widths come from it.
    validation_data, validation_split
        As in ``Network.fit``; needed for a ``val_*`` metric (unless ``cv``).
    epochs, batch_size
        Defaults for every trial (sweepable too, except ``epochs`` with ``prune``).
    method : {"grid", "random", "optuna"}
        "random" draws ``trials`` settings with ``seed``; "optuna" asks Optuna's TPE
        sampler for ``trials`` settings, a batch of trials at a time.
    metric, mode
        The History key to rank by (its value at the last epoch, or at a rung), and
        "max" or "min".
    prune : "halving", Halving or its get_config dict, optional
        Successive halving (``fastbp.Halving``): at each rung only the best trials go
        on; the others stay in ``trials`` with their metrics at that epoch and
        ``"pruned_at_epoch"``. With ``method="optuna"`` Optuna's
        SuccessiveHalvingPruner decides, with the same rungs.
    cv : int, optional
        K-fold cross-validation (K >= 2): each trial is trained K times, on all rows but
        fold k and validated on fold k (folds contiguous, as
        ``numpy.array_split(numpy.arange(n), K)``); a record's ``final`` and ``history``
        are means over the folds, ``folds`` the per-fold finals. Not with
        ``validation_data`` or ``validation_split``.
    shuffle : bool
        With ``cv``: the rows are permuted once (``numpy.random.default_rng(seed)``)
        before they are cut into folds.
    backend : {"local", "dask"}
        "dask" sends groups of trials to the cluster at ``scheduler``
        ("tcp://host:8786"), or to a new LocalCluster when it is None.
    results : path, optional
        A JSON-lines file each finished trial is appended to (flushed, fsynced).
    resume : bool
        Skip trials already in ``results`` (matched by their settings).
    **fixed
        Settings that are not swept, by the names Network and fit use
        (``layers=[32]``, ``activation="relu"``, ``optimizer="sgd"``, ``lr=0.1``, ...).

    Returns
    -------
    SweepResult
    """
    space = _parse_space(space)
    for key in fixed:
        if key not in KNOWN_KEYS:
            raise ValueError(f"{key}: unknown setting; expected one of {sorted(KNOWN_KEYS)}")
    if method not in ("grid", "random", "optuna"):
        raise ValueError(f"method: expected 'grid', 'random' or 'optuna', got {method!r}")
    if mode not in ("max", "min"):
        raise ValueError(f"mode: expected 'max' or 'min', got {mode!r}")
    if backend not in ("local", "dask"):
        raise ValueError(f"backend: expected 'local' or 'dask', got {backend!r}")
    max_trials = checks.check_int(max_trials, "max_trials", minimum=1)
    if prune is not None:
        prune = parse_spec(prune, Halving, PRUNERS, "prune", "fastbp.Halving(factor=2, min_epochs=4)")
        if "epochs" in space:
            raise ValueError("space['epochs']: the trials of a pruned sweep share their epochs (the rungs are "
                             "laid over them); give epochs=N, not a swept value")
    if cv is not None:
        cv = checks.check_int(cv, "cv", minimum=2)
        if validation_data is not None or validation_split is not None:
            raise ValueError("cv: cross-validation validates each fold on its own rows; give cv or "
                             "validation_data/validation_split, not both")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle: expected a bool, got {shuffle!r}")
    if shuffle and cv is None:
        raise ValueError("shuffle: shuffles the rows before they are cut into folds; it needs cv=K")
    base = {**DEFAULTS, "epochs": epochs, "batch_size": batch_size, **fixed}
    _check_settings(space, base, metric,
                    validation_data is not None or validation_split is not None or cv is not None, X, y)

    # The data, checked once; the validation rows as fit takes them.
    probe = _network_for({**base, **{k: (v[0] if isinstance(v, list) else v.sample(np.random.default_rng(0)))
                                      for k, v in space.items()}}, np.shape(X)[1], _output_width(y, base["loss"]))
    Xc, Yc = probe.check_data(X, y)
    y_arr = np.asarray(y)
    if validation_data is not None or validation_split is not None:
        Xc, _, Xv, _ = split_validation(probe, Xc, Yc, validation_data, validation_split)
        if validation_data is not None:
            yv = np.asarray(validation_data[1])
            ytr = y_arr
        else:
            ytr, yv = y_arr[: Xc.shape[0]], y_arr[Xc.shape[0]:]
    else:
        Xv = yv = None
        ytr = y_arr
    n_out = _output_width(y, base["loss"])
    folds, data = None, (Xc, ytr, Xv, yv)
    if cv is not None:
        if cv > Xc.shape[0]:
            raise ValueError(f"cv: {cv} folds of {Xc.shape[0]} rows; expected at most one fold per row")
        folds = _fold_bounds(Xc.shape[0], cv)
        if shuffle:
            perm = np.random.default_rng(seed).permutation(Xc.shape[0])
            data = (Xc[perm], ytr[perm], None, None)

    rng = np.random.default_rng(seed)
    if method == "grid":
        settings = _grid(space, max_trials)
    else:
        if trials is None:
            raise ValueError(f"trials: method={method!r} needs trials=N")
        trials = checks.check_int(trials, "trials", minimum=1)
        if trials > max_trials:
            raise ValueError(f"trials: {trials} is more than max_trials={max_trials}")
        settings = _random(space, trials, rng) if method == "random" else None

    done = _read_results(results) if resume else {}
    for rec in done.values():  # a results file written before records carried their settings split
        if "network" not in rec or "fit" not in rec:
            config = {**base, **rec["config"]}
            rec["network"] = _network_for(config, Xc.shape[1], n_out).get_config()
            rec["fit"] = _fit_settings(config)
    if results is not None and not resume and os.path.exists(results):
        os.remove(results)
    collected = list(done.values())
    by_key = dict(done)

    def emit(records):
        for r in records:
            by_key[_canonical(r["config"])] = r
        if results is not None:
            _append(results, records)
        collected.extend(records)
        if progress is not None:
            progress(len(collected), total, SweepResult(collected, metric, mode).best)

    engine = _Local(data) if backend == "local" else _Dask(data, scheduler)
    search = _Search(engine, n_out, folds, prune, metric, mode, done, emit)
    try:
        if method != "optuna":
            configs = [{**base, **s} for s in settings]
            total = len(configs)
            search.run(configs)
            order = {_canonical(c): i for i, c in enumerate(configs)}
            latest = {_canonical(r["config"]): r for r in collected}
            collected = [r for _, r in sorted(latest.items(), key=lambda kr: order.get(kr[0], len(order)))]
        else:
            total = trials
            collected = _optuna(space, base, trials, seed, metric, mode, prune, search, by_key)
    finally:
        engine.close()

    def retrain(record):
        # A population of one, as in the run (bitwise the kept network); a cross-validated trial is
        # refit on all its training rows, in their given order, without validation.
        config = {**base, **record["config"]}
        if record.get("folds") is not None:
            return _advance([config], None, Xc, ytr, None, None, n_out, record.get("pruned_at_epoch"), None)[0][0][0]
        return _advance([config], None, *data, n_out, record.get("pruned_at_epoch"), None)[0][0][0]

    return SweepResult(collected, metric, mode, networks=search.networks, retrain=retrain)


def _optuna(space, base, trials, seed, metric, mode, prune, search, by_key):
    try:
        import optuna
    except ImportError:
        raise ValueError('method: "optuna" needs Optuna: pip install optuna') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = None
    if prune is not None:
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=prune.first_rung(base["epochs"]),
                                                        reduction_factor=prune.factor, min_early_stopping_rate=0)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    out, batch = [], 8
    while len(out) < trials:
        asked = []
        for _ in range(min(batch, trials - len(out))):
            t = study.ask()
            s = {}
            for k, v in space.items():
                if isinstance(v, loguniform):
                    s[k] = t.suggest_float(k, v.a, v.b, log=True)
                elif isinstance(v, uniform):
                    s[k] = t.suggest_float(k, v.a, v.b)
                else:
                    vals = v.values if isinstance(v, choice) else v
                    s[k] = vals[t.suggest_categorical(k, list(range(len(vals))))]
            asked.append((t, {**base, **s}))

        def decide(rung, entrants, values):
            # Optuna's pruner ranks each trial against every trial of the study that reached the rung.
            kept = set()
            for i in entrants:
                t, v = asked[i][0], values[i]
                if v is not None and math.isfinite(v):
                    t.report(v, rung)
                    if not t.should_prune():
                        kept.add(i)
            return kept

        search.run([c for _, c in asked], decide)
        for t, c in asked:
            rec = by_key[_canonical(c)]
            value = rec["final"].get(metric, math.nan)
            finite = value is not None and math.isfinite(value)
            if "pruned_at_epoch" in rec:
                study.tell(t, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(t, value if finite else None, state=None if finite else optuna.trial.TrialState.FAIL)
            out.append(rec)
    return out
