"""Hyperparameter sweeps: many networks per compiled call, resumable results, local or on Dask.

Trials that share their shape (layers, activations, output, cost, init, batch
size, epochs, dtype) and differ in optimizer settings, schedule or seed are
trained together: their flat parameter vectors are stacked and one compiled
call runs an epoch of all of them with ``prange`` over the networks. Each
network is trained by the same single-network epoch code as ``Network.fit``,
on one core, with its own shuffling RNG, so retraining a trial alone with the
same seed gives the same network.
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

__all__ = ["sweep", "SweepResult", "loguniform", "uniform", "choice"]

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
    if not isinstance(name, str):
        return name
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
        for value in _values(spec):
            error = check({**first, key: value}, network=key in NETWORK_KEYS + ("seed",))
            if error is not None:
                raise type(error)(f"space[{key!r}] value {value!r}: {error}") from None
    if validating:
        logged |= {f"val_{k}" for k in logged if k != "lr"}
    if metric not in logged:
        raise ValueError(f"metric: {metric!r} is never logged by these trials; they log {sorted(logged)}"
                         + ("" if validating or not metric.startswith("val_") else
                            " (a val_* metric needs validation_data or validation_split)"))


# ----------------------------------------------------------------------------- population training

def _train_group(configs, X, y, Xv, yv, n_out):
    """Train trials of one shape side by side; one record per trial, in order."""
    t0 = time.perf_counter()
    nets = [_network_for(c, X.shape[1], n_out) for c in configs]
    first = nets[0]
    Xc, Y = first.check_data(X, y)
    Xvc, Yv = first.check_data(Xv, yv, "validation_data") if Xv is not None else (None, None)
    records = train_population(nets, Xc, Y, configs[0]["epochs"], configs[0]["batch_size"],
                               [_optimizer_for(c) for c in configs], [get_schedule(c["schedule"]) for c in configs],
                               [c["clip_norm"] for c in configs], Xvc, Yv)
    seconds = (time.perf_counter() - t0) / len(nets)
    out = []
    for c, net, rec in zip(configs, nets, records):
        h = rec["history"]
        if "diverged_at_epoch" in rec:
            h["diverged_at_epoch"] = rec["diverged_at_epoch"]
            final = {key: math.nan for key in h if isinstance(h[key], list)} or {"loss": math.nan}
        else:
            final = {key: v[-1] for key, v in h.items() if v}
        out.append({"config": json.loads(_canonical(c)), "final": final, "history": h, "seconds": seconds,
                    "params_digest": _digest(net.params)})
    return out


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
    """The trials of a sweep: ``trials`` (one record each), ``best``, ``to_csv``."""

    def __init__(self, trials, metric, mode):
        self.trials = trials
        self.metric = metric
        self.mode = mode

    def _score(self, t):
        v = t["final"].get(self.metric, math.nan)
        if v is None or not math.isfinite(v):
            return -math.inf
        return v if self.mode == "max" else -v

    @property
    def best(self):
        """The record of the best trial by ``metric``."""
        return max(self.trials, key=self._score)

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

def _run_local(groups, X, y, Xv, yv, n_out, on_done):
    for configs in groups:
        on_done(_train_group(configs, X, y, Xv, yv, n_out))


def _run_dask(groups, X, y, Xv, yv, n_out, on_done, scheduler):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
        from distributed.client import FutureCancelledError as CancelledError
    except ImportError:
        raise ValueError('backend: "dask" needs dask.distributed: pip install "fastbp[dask]"') from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        pending = list(groups)
        for _ in range(4):
            # A task whose worker died runs again elsewhere (retries); one whose scattered data died with a
            # worker is cancelled instead, so its group is submitted again with the data scattered anew.
            data = client.scatter([X, y, Xv, yv], broadcast=True)
            futures = {client.submit(_train_group, configs, *data, n_out, pure=False, retries=3): configs
                       for configs in pending}
            pending = []
            for fut in as_completed(futures):
                try:
                    result = fut.result()
                except CancelledError:
                    pending.append(futures[fut])
                    continue
                on_done(result)
            if not pending:
                break
        else:
            raise RuntimeError(f"backend dask: {len(pending)} group(s) of trials cancelled 4 times over "
                               "(workers lost with their data); the finished trials are in `results`")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _split_for_workers(groups, parts):
    """Cut each group into about ``parts`` pieces so that several workers share a large group."""
    out = []
    for g in groups:
        size = max(1, math.ceil(len(g) / parts))
        out.extend(g[i:i + size] for i in range(0, len(g), size))
    return out


# ----------------------------------------------------------------------------- the sweep

def sweep(space, X, y, *, validation_data=None, validation_split=None, epochs=TRAINING_DEFAULTS["epochs"],
          batch_size=TRAINING_DEFAULTS["batch_size"], method="grid",
          trials=None, seed=0, metric="val_accuracy", mode="max", backend="local", scheduler=None, results=None,
          resume=False, max_trials=MAX_TRIALS, progress=None, **fixed):
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
        As in ``Network.fit``; needed for a ``val_*`` metric.
    epochs, batch_size
        Defaults for every trial (sweepable too).
    method : {"grid", "random", "optuna"}
        "random" draws ``trials`` settings with ``seed``; "optuna" asks Optuna's TPE
        sampler for ``trials`` settings, a batch of trials at a time.
    metric, mode
        The final-epoch History key to rank by, and "max" or "min".
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
    base = {**DEFAULTS, "epochs": epochs, "batch_size": batch_size, **fixed}
    _check_settings(space, base, metric, validation_data is not None or validation_split is not None, X, y)

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
    if metric.startswith("val_") and Xv is None:
        raise ValueError(f"metric: {metric!r} needs validation_data or validation_split")
    n_out = _output_width(y, base["loss"])

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
    if results is not None and not resume and os.path.exists(results):
        os.remove(results)
    collected = list(done.values())
    by_key = {}

    def on_done(records):
        for r in records:
            by_key[_canonical(r["config"])] = r
        if results is not None:
            _append(results, records)
        collected.extend(records)
        if progress is not None:
            progress(len(collected), total, SweepResult(collected, metric, mode).best)

    def run(configs):
        todo = [c for c in configs if _canonical(c) not in done]
        groups = [[todo[i] for i in g] for g in _groups(todo)]
        if backend == "local":
            _run_local(groups, Xc, ytr, Xv, yv, n_out, on_done)
        else:
            _run_dask(_split_for_workers(groups, 4), Xc, ytr, Xv, yv, n_out, on_done, scheduler)

    if method != "optuna":
        configs = [{**base, **s} for s in settings]
        total = len(configs)
        run(configs)
        order = {_canonical(c): i for i, c in enumerate(configs)}
        collected = sorted({_canonical(r["config"]): r for r in collected}.values(),
                           key=lambda r: order.get(_canonical(r["config"]), len(order)))
    else:
        total = trials
        collected = _optuna(space, base, trials, seed, metric, mode, run, by_key)
    return SweepResult(collected, metric, mode)


def _optuna(space, base, trials, seed, metric, mode, run, by_key):
    try:
        import optuna
    except ImportError:
        raise ValueError('method: "optuna" needs Optuna: pip install optuna') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
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
        run([c for _, c in asked])
        for t, c in asked:
            rec = by_key[_canonical(c)]
            value = rec["final"].get(metric, math.nan)
            study.tell(t, value if value is not None and math.isfinite(value) else None,
                       state=None if value is not None and math.isfinite(value) else optuna.trial.TrialState.FAIL)
            out.append(rec)
    return out
