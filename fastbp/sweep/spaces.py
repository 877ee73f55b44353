"""Search spaces (lists and distributions), a trial's settings and their checks before any trial runs."""

import inspect
import itertools
import json
import math

import numpy as np

from ..common import checks
from ..network import Network
from ..specs.optimizers import OPTIMIZERS, get_optimizer
from ..specs.schedules import get_schedule
from ..specs.parse import parse_spec
from ..training import DEFAULTS as TRAINING_DEFAULTS

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
