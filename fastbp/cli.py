"""The ``fastbp`` command: train, evaluate, predict, export, gradcheck, sweep, info, calibrate.

argparse (the standard library) rather than click or typer: the command needs
sub-commands, typed options and a config file, all of which argparse covers,
and it keeps ``pip install .`` free of one more dependency.

Every expected failure (a bad option or file, an OS error, a diverged run)
prints one line, ``fastbp: error: ...`` naming the option or file, and exits
with status 2; anything else is a bug and says so (exit 1). ``--debug`` shows
the traceback instead. Ctrl-C during training saves the last completed epoch
(model.npz and metrics.json) and exits with status 130; a run that diverges
saves the last good epoch the same way. A run directory is locked while a run
writes into it.
"""

import argparse
import contextlib
import json
import math
import os
import sys
import time

from .training import DEFAULTS

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise SystemExit(_fail(f"{message} (see fastbp {self.prog.split()[-1]} --help)"
                               if " " in self.prog else message))


def _fail(message):
    print(f"fastbp: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _rates(text):
    """--dropout: one rate, or comma-separated rates such as 0.2,0.1 (one per hidden layer)."""
    try:
        rates = [float(r) for r in str(text).split(",") if r.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate such as 0.2 or rates such as 0.2,0.1, got {text!r}") from None
    if not rates:
        raise argparse.ArgumentTypeError(f"expected a rate such as 0.2, got {text!r}")
    return rates[0] if len(rates) == 1 else rates


def _layers(text):
    try:
        widths = [int(w) for w in str(text).split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths such as 256,128, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"expected widths >= 1, got {text!r}")
    return widths


# Every option of `train`, with its default: the same names in --config files (dashes or underscores).
TRAIN_DEFAULTS = {
    "data": "digits", "target": None, "id": None, "layers": DEFAULTS["layers"], "activation": "relu",
    "output": None, "loss": None, "optimizer": DEFAULTS["optimizer"], "lr": DEFAULTS["lr"], "momentum": 0.0,
    "weight_decay": 0.0, "schedule": "constant", "step_size": 10, "gamma": 0.1, "warmup": 0, "t_max": None,
    "eta_min": 0.0, "schedule_per": "epoch", "clip_norm": DEFAULTS["clip_norm"], "epochs": DEFAULTS["epochs"],
    "batch_size": DEFAULTS["batch_size"], "dtype": "float32", "seed": 0, "val_split": 0.1, "test_split": 0.2,
    "early_stopping": None, "checkpoint_every": None, "out": None, "standardize": False,
    "sample_weight": None, "class_weight": None, "dropout": 0.0, "input_dropout": 0.0, "l2": 0.0, "patience": 10,
    "factor": 0.1,
}


def _parser():
    p = _Parser(prog="fastbp", description="Train multilayer perceptrons fast on the CPU.")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a network (default: on the bundled digits)")
    t.add_argument("--config", help="a TOML file with any of these options (command-line options win)")
    t.add_argument("--data", help="'digits', a directory of MNIST-style IDX files, a .npz or a .csv")
    t.add_argument("--target", help="the target column(s) of a CSV with a header, e.g. label or a,b "
                   "(default: the last column)")
    t.add_argument("--id", metavar="COLUMN", help="a CSV column of row names, left out of the features")
    t.add_argument("--standardize", action="store_true", default=None,
                   help="scale features (and regression targets) to mean 0, std 1; the scaling is kept in the model")
    t.add_argument("--sample-weight", metavar="COLUMN", help="a CSV column of row weights, left out of the features")
    t.add_argument("--class-weight", choices=["balanced"], help="weigh each class by n / (n_classes · its count)")
    t.add_argument("--layers", type=_layers, help="hidden widths, e.g. 256,128 (default 64)")
    t.add_argument("--dropout", type=_rates, help="dropout rate of the hidden layers: one, or one per layer "
                   "such as 0.2,0.1 (default 0)")
    t.add_argument("--input-dropout", type=float, help="dropout rate of the input features (default 0)")
    t.add_argument("--l2", type=float, help="L2 penalty on the weights, scikit-learn's alpha (default 0)")
    t.add_argument("--activation", help="hidden activation: relu, sigmoid, tanh, gaussian, ... (default relu)")
    t.add_argument("--output", help="output activation (default: the one that goes with --loss)")
    t.add_argument("--loss", help="cross_entropy, binary_cross_entropy, mse or squared (default cross_entropy)")
    t.add_argument("--optimizer", help="sgd, adam, adamw or rmsprop (default sgd)")
    t.add_argument("--lr", type=float, help=f"learning rate (default {DEFAULTS['lr']})")
    t.add_argument("--momentum", type=float, help="SGD / RMSprop momentum (default 0)")
    t.add_argument("--weight-decay", type=float, help="weight decay (default 0)")
    t.add_argument("--schedule", choices=["constant", "step", "exponential", "cosine", "plateau"], help="lr schedule "
                   "(plateau: times --factor when val_loss, or loss without validation, stalls --patience epochs)")
    t.add_argument("--patience", type=int, help="plateau schedule: epochs without improvement (default 10)")
    t.add_argument("--factor", type=float, help="plateau schedule: lr factor per reduction (default 0.1)")
    t.add_argument("--step-size", type=int, help="step schedule: epochs (or steps) per decay (default 10)")
    t.add_argument("--gamma", type=float, help="step / exponential schedule factor (default 0.1)")
    t.add_argument("--warmup", type=int, help="cosine schedule: linear warm-up length (default 0)")
    t.add_argument("--t-max", type=int, help="cosine schedule: length (default: the whole run)")
    t.add_argument("--eta-min", type=float, help="cosine schedule: final lr (default 0)")
    t.add_argument("--schedule-per", choices=["epoch", "step"], help="schedule unit (default epoch)")
    t.add_argument("--clip-norm", type=float, help="clip each batch's gradient to this global norm")
    t.add_argument("--epochs", type=int, help=f"default {DEFAULTS['epochs']}")
    t.add_argument("--batch-size", type=int, help="default 32")
    t.add_argument("--dtype", choices=["float32", "float64"], help="default float32")
    t.add_argument("--seed", type=int, help="default 0")
    t.add_argument("--val-split", type=float, help="fraction of the training rows held out for validation "
                   "(default 0.1; 0 for none)")
    t.add_argument("--test-split", type=float, help="fraction held out for the final test when the data has no "
                   "test split (default 0.2)")
    t.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop when val_loss stalls this long")
    t.add_argument("--checkpoint-every", type=int, metavar="N", help="save model.npz every N epochs")
    t.add_argument("--out", help="output directory (default: a new runs/<timestamp>; a --config from a saved "
                   "run never writes back into that run unless --out names it)")
    t.add_argument("--quiet", action="store_true", help="no per-epoch output")

    e = sub.add_parser("evaluate", help="loss and accuracy (or rmse, mae, r2) of a saved model on data")
    e.add_argument("model")
    e.add_argument("--data", help="the rows to score (default with --split test: the run's data)")
    e.add_argument("--target", help="the target column(s) (default: the model's)")
    e.add_argument("--id", metavar="COLUMN", help="a CSV column of row names, not a feature")
    e.add_argument("--split", choices=["test"], help="score the run's own test split, reproduced from the "
                   "config.toml beside the model")

    pr = sub.add_parser("predict", help="write a saved model's predictions as CSV")
    pr.add_argument("model")
    pr.add_argument("--data", required=True, help="a .csv (with or without the target), a .npz (X alone will do), ...")
    pr.add_argument("--target", help="the target column(s), if the file has them (default: the model's)")
    pr.add_argument("--out", default="preds.csv")
    pr.add_argument("--proba", action="store_true", help="add a p_<class> column per class")
    pr.add_argument("--id", metavar="COLUMN", help="a CSV column copied to the output (not a feature)")

    x = sub.add_parser("export", help="write a saved model as ONNX (needs: pip install \"fastbp[onnx]\")")
    x.add_argument("model")
    x.add_argument("--out", default="model.onnx")
    x.add_argument("--opset", type=int, default=17)

    g = sub.add_parser("gradcheck", help="compare backpropagation with finite differences")
    g.add_argument("model", nargs="?", help="a saved model (default: a small random network)")
    g.add_argument("--data", help="data for the cost (default: random rows)")
    g.add_argument("--layers", type=_layers, default=[8, 6], help="hidden widths of the random network")
    g.add_argument("--activation", default="tanh")
    g.add_argument("--samples", type=int, default=16)
    g.add_argument("--max-params", type=int, default=500)

    sw = sub.add_parser("sweep", help="train many networks over a hyperparameter space (see docs/sweeps.md)")
    sw.add_argument("spec", help="a TOML file with [data], [train], [search] and [space] tables")
    sw.add_argument("--scheduler", help="a Dask scheduler address such as tcp://host:8786 (runs on the cluster)")
    sw.add_argument("--resume", action="store_true", help="skip the trials already in OUT/trials.jsonl")
    sw.add_argument("--out", help="output directory (default sweeps/<timestamp>)")
    sw.add_argument("--max-trials", type=int, default=10_000, help="refuse larger grids (default 10000)")

    sub.add_parser("info", help="versions, threads, BLAS, the engine rule and cache directory")
    sub.add_parser("calibrate", help="measure which engine computes the matrix products fastest here (seconds)")
    return p


# ----------------------------------------------------------------------------- config

def _read_config(path):
    import tomllib

    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"--config: no such file: {path!r}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"--config: {path!r} is not valid TOML: {e}") from None
    cfg = {}
    for key, value in raw.items():
        k = key.replace("-", "_")
        if k not in TRAIN_DEFAULTS:
            raise ValueError(f"--config: unknown option {key!r} in {path!r}; known: {sorted(TRAIN_DEFAULTS)}")
        if k == "dropout" and isinstance(value, str):
            value = _rates(value)
        try:
            cfg[k] = _layers(value) if k == "layers" and not isinstance(value, list) else value
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"--config: {key} in {path!r}: {e}") from None
    return cfg


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def _write_toml(path, cfg):
    with open(path, "w") as f:
        f.write("# fastbp train --config config.toml re-runs this into a new run directory\n")
        for k, v in cfg.items():
            if v is not None:
                f.write(f"{k} = {_toml_value(v)}\n")


def _settings(args):
    cfg = dict(TRAIN_DEFAULTS)
    origin = {}
    if args.config:
        from_file = _read_config(args.config)
        here = os.path.dirname(os.path.abspath(args.config))
        # A saved run's config names its own directory: re-running it must not overwrite that run.
        if from_file.get("out") and os.path.abspath(os.path.join(here, from_file["out"])) == here:
            del from_file["out"]
        data = from_file.get("data")
        if isinstance(data, str) and data != "digits" and not os.path.exists(data) and \
                os.path.exists(os.path.join(here, data)):
            from_file["data"] = os.path.join(here, data)  # relative to the config file, not the shell
        cfg.update(from_file)
        origin = {k: f"{k} in {args.config!r}" for k in from_file}
    for k in TRAIN_DEFAULTS:
        v = getattr(args, k, None)
        if v is not None:
            cfg[k] = v
            origin.pop(k, None)
    _check_settings(cfg, origin)
    return cfg


# The type and range of each setting that is a number, a text or a list, as the command line parses it.
_INT_SETTINGS = {"epochs": 1, "batch_size": 1, "seed": 0, "step_size": 1, "warmup": 0, "t_max": 1,
                 "early_stopping": 0, "checkpoint_every": 1}
_POSITIVE_SETTINGS = ("lr", "clip_norm")
_FLOAT_SETTINGS = ("momentum", "weight_decay", "gamma", "eta_min", "val_split", "test_split")
_TEXT_SETTINGS = ("data", "id", "activation", "output", "loss", "optimizer", "schedule", "schedule_per", "dtype",
                  "out")


def _check_settings(cfg, origin):
    """Each setting of the right type and range, whether from the command line or a --config file."""
    from .common import checks

    for k, v in cfg.items():
        name = origin.get(k) or f"--{k.replace('_', '-')}"
        if v is None:
            continue
        if k in _INT_SETTINGS:
            checks.check_int(v, name, minimum=_INT_SETTINGS[k])
        elif k in _POSITIVE_SETTINGS:
            checks.check_positive_float(v, name)
        elif k in _FLOAT_SETTINGS:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name}: expected a finite number, got {v!r}")
        elif k in _TEXT_SETTINGS or k == "target":  # target: also a list of column names
            if not (isinstance(v, str) or k == "target" and isinstance(v, list) and all(isinstance(t, str) for t in v)):
                raise TypeError(f"{name}: expected a text value, got {v!r} ({type(v).__name__})")
        elif k == "layers":  # hidden widths: the input and output widths come from the data
            if not isinstance(v, list):
                raise TypeError(f"{name}: expected a list of hidden widths such as [256, 128], got {v!r}")
            for i, w in enumerate(v):
                checks.check_int(w, f"{name}[{i}]", minimum=1)


def _new_run_dir(out):
    """``out``, or a fresh runs/<timestamp>[-k] that no other run has taken."""
    if out:
        return out  # created and locked by _run_dir
    base = os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    for k in range(1, 1000):
        path = base if k == 1 else f"{base}-{k}"
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            continue
    raise ValueError(f"--out: could not create a new run directory beside {base!r}")


# ----------------------------------------------------------------------------- train

def _schedule(cfg):
    import fastbp

    name, per = cfg["schedule"], cfg["schedule_per"]
    if name == "constant":
        return None
    if name == "step":
        return fastbp.StepLR(step_size=cfg["step_size"], gamma=cfg["gamma"], per=per)
    if name == "exponential":
        return fastbp.ExponentialLR(gamma=cfg["gamma"], per=per)
    if name == "cosine":
        return fastbp.CosineLR(T_max=cfg["t_max"], eta_min=cfg["eta_min"], warmup=cfg["warmup"], per=per)
    if name == "plateau":
        return fastbp.ReduceLROnPlateau("val_loss" if cfg["val_split"] else "loss", patience=cfg["patience"],
                                        factor=cfg["factor"])
    raise ValueError(f"--schedule: expected constant, step, exponential, cosine or plateau, got {name!r}")


def _optimizer(cfg):
    from .specs.optimizers import OPTIMIZERS

    name = cfg["optimizer"]
    if name not in OPTIMIZERS:
        raise ValueError(f"--optimizer: expected one of {sorted(OPTIMIZERS)}, got {name!r}")
    kw = {"lr": cfg["lr"]}
    if cfg["weight_decay"]:
        kw["weight_decay"] = cfg["weight_decay"]
    if cfg["momentum"]:
        if name not in ("sgd", "rmsprop"):
            raise ValueError(f"--momentum: {name} has no momentum setting (sgd and rmsprop do)")
        kw["momentum"] = cfg["momentum"]
    return OPTIMIZERS[name](**kw)


def _check_fraction(name, v, allow_zero):
    if not (isinstance(v, (int, float)) and ((0 <= v < 1) if allow_zero else (0 < v < 1))):
        raise ValueError(f"{name}: expected a fraction in {'[0' if allow_zero else '(0'}, 1), got {v!r}")


def _spans_decades(values, ratio=100.0):
    """True when positive ``values`` span more than ``ratio``× (a log axis reads them better)."""
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return bool(vals) and min(vals) > 0 and max(vals) > ratio * min(vals)


def _plot_curves(path, history):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("loss", ("loss", "val_loss"))]
    if "accuracy" in history:  # regression and multi-label runs have no accuracy: no empty panel
        panels.append(("accuracy", ("accuracy", "val_accuracy")))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), dpi=100, squeeze=False)
    epochs = history.epoch
    for ax, (title, keys) in zip(axes[0], panels):
        shown = []
        for key, style in zip(keys, ("-", "--")):
            if key in history:
                ax.plot(epochs, history[key], style, label=key.replace("_", " "))
                shown += history[key]
        if title == "loss" and _spans_decades(shown):
            ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel=title, title=title + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _abs_data(data):
    """A data path made absolute, so that a saved config runs from any directory ('digits' stays)."""
    return data if data == "digits" or not isinstance(data, str) else os.path.abspath(data)


def _split(cfg, ds):
    """The training rows and the test rows of a run: the source's own test split, else ``test_split`` of
    the rows drawn with ``seed``. Returns (X, y, X_test, y_test, words saying which rows are the test, the
    training and the test rows' sample weights or None)."""
    import numpy as np

    from .data import train_test_split

    if ds.X_test is not None:
        return ds.X, ds.y, ds.X_test, ds.y_test, f"the source's own test split ({len(ds.X_test)} rows)", None, None
    X, X_test, rows, test_rows = train_test_split(ds.X, np.arange(len(ds.X)), test_size=float(cfg["test_split"]),
                                                  seed=cfg["seed"])
    y, y_test = np.asarray(ds.y)[rows], np.asarray(ds.y)[test_rows]
    w = w_test = None
    if ds.sample_weight is not None:
        w, w_test = ds.sample_weight[rows], ds.sample_weight[test_rows]
    return X, y, X_test, y_test, (f"a held-out {cfg['test_split']} of the rows drawn with seed {cfg['seed']} "
                                  f"({len(X_test)} of {len(ds.X)})"), w, w_test


def _target_words(cfg, ds):
    names = ds.target_names or ([cfg["target"]] if cfg.get("target") else None)
    return f"column {','.join(names)!r} of {cfg['data']!r}" if names else f"the targets of {cfg['data']!r}"


def _task(cfg, ds):
    """The network's output width and classes for the data: (n_out, classes or None)."""
    import numpy as np

    from .data import encode_labels
    from .network import resolve_output_and_loss

    y = np.asarray(ds.y)
    _, loss = resolve_output_and_loss(cfg["output"], cfg["loss"])
    where = _target_words(cfg, ds)
    labels = [y] if ds.y_test is None else [y, np.asarray(ds.y_test)]
    if loss in ("mse", "squared"):
        if y.dtype.kind not in "biuf":
            raise ValueError(f"--target: {where} holds text labels such as {y[0]!r}; a regression (--loss {loss}) "
                             "needs numbers (drop --loss for classification)")
        return (1 if y.ndim == 1 else y.shape[1]), None
    if y.ndim == 2:
        if loss == "binary_cross_entropy":  # multi-label: one sigmoid output per column
            return y.shape[1], None
        raise ValueError(f"--target: {where} is {y.shape[1]} columns; for several targets use --loss mse "
                         "(regression) or --loss binary_cross_entropy (multi-label 0/1 columns)")
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        i = int(np.flatnonzero(y != np.round(y))[0])
        raise ValueError(f"--target: {where} holds non-integral values such as {y[i].item()!r}, not class labels; "
                         "for a numeric target use --loss mse (regression)")
    _, classes = encode_labels(np.concatenate(labels) if len(labels) > 1 and labels[0].dtype.kind ==
                               labels[1].dtype.kind else labels[0], argname="--target")
    if len(classes) < 2:
        raise ValueError(f"--target: {where} holds a single class {classes.tolist()}; expected at least 2")
    n_rows = sum(len(part) for part in labels)
    if cfg["loss"] is None and len(classes) > 20 and 2 * len(classes) > n_rows:
        # Whole numbers such as prices: as classes, each would be seen about once.
        raise ValueError(f"--target: {where} holds {len(classes)} distinct values in {n_rows} rows, a number "
                         "rather than classes; for regression use --loss mse (--loss cross_entropy to classify anyway)")
    if loss == "binary_cross_entropy":
        if len(classes) != 2:
            raise ValueError(f"--loss: binary_cross_entropy needs 2 classes, {where} has {len(classes)}")
        return 1, classes
    return len(classes), classes


class _MetricsCSV:
    """A fit callback appending each epoch's logs to metrics.csv as it ends (for watching a long run)."""

    def __init__(self, path):
        self.path = path
        self.keys = None

    def on_epoch_end(self, net, epoch, logs):
        import csv

        new = self.keys is None
        if new:
            self.keys = ["epoch", *logs]
        with open(self.path, "w" if new else "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(self.keys)
            w.writerow([epoch, *(logs.get(k, "") for k in self.keys[1:])])
        return False


def _show_scores(scores, loss, prefix):
    shown = "  ".join(f"{prefix}{k} {v:.4f}" for k, v in scores.items())
    if loss == "mse":
        shown += "  (loss = ½·mean over rows of Σ_j (a_j − y_j)²)"
    elif loss == "squared":
        shown += "  (loss = mean over rows of Σ_j (a_j − y_j)²)"
    return shown


def _train(args):
    import warnings

    import fastbp
    from .data import load, scale_hint

    cfg = _settings(args)
    _check_fraction("--val-split", cfg["val_split"], allow_zero=True)
    _check_fraction("--test-split", cfg["test_split"], allow_zero=False)
    if not isinstance(cfg["standardize"], bool):
        raise ValueError(f"--standardize: expected true or false, got {cfg['standardize']!r}")
    ds = load(cfg["data"], target=cfg["target"], id_column=cfg["id"], weight_column=cfg["sample_weight"])
    n_out, classes = _task(cfg, ds)
    X, y, X_test, y_test, _, w, w_test = _split(cfg, ds)
    sizes = [int(X.shape[1]), *cfg["layers"], n_out]
    net = fastbp.Network(sizes, activation=cfg["activation"], output=cfg["output"], loss=cfg["loss"],
                         dtype=cfg["dtype"], seed=cfg["seed"], classes=classes, standardize=cfg["standardize"],
                         dropout=cfg["dropout"], input_dropout=cfg["input_dropout"])
    net.feature_names, net.target_names = ds.feature_names, ds.target_names
    optimizer, schedule = _optimizer(cfg), _schedule(cfg)
    out = _new_run_dir(cfg["out"])
    args.resources.enter_context(_run_dir(out))
    model_path = os.path.join(out, "model.npz")
    run_cfg = {**cfg, "data": _abs_data(cfg["data"]), "out": None}
    if isinstance(run_cfg["target"], list):
        run_cfg["target"] = ",".join(run_cfg["target"])
    _write_toml(os.path.join(out, "config.toml"), run_cfg)
    print(f"training {net} on {cfg['data']}: {len(X)} train / {len(X_test)} test rows -> {out}", flush=True)
    hint = None if cfg["standardize"] else scale_hint(X)
    if hint:
        print(f"fastbp: hint: {hint}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="fit: the features' scales")  # said once, above
            hist = net.fit(X, y, epochs=cfg["epochs"], batch_size=cfg["batch_size"], optimizer=optimizer,
                           schedule=schedule, clip_norm=cfg["clip_norm"],
                           validation_split=cfg["val_split"] or None, early_stopping=cfg["early_stopping"],
                           callbacks=[_MetricsCSV(os.path.join(out, "metrics.csv"))], sample_weight=w,
                           class_weight=cfg["class_weight"], l2=cfg["l2"],
                           checkpoint=model_path, checkpoint_every=cfg["checkpoint_every"] or cfg["epochs"] + 1,
                           verbose=0 if args.quiet else (1 if sys.stderr.isatty() else 2))
    except KeyboardInterrupt:
        _write_metrics(out, net, X_test, y_test, t0, net.history, stopped="interrupted", w_test=w_test)
        print(f"fastbp: interrupted; the last completed epoch ({net.epochs_trained}) is saved in {model_path} "
              "and metrics.json", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FloatingPointError as e:  # fit put the network back to its last good epoch: keep that
        net.save(model_path)
        _write_metrics(out, net, X_test, y_test, t0, net.history, stopped=str(e), w_test=w_test)
        raise ValueError(f"{e}; saved that epoch ({net.epochs_trained}) in {model_path} and metrics.json") from None
    scores, seconds = _write_metrics(out, net, X_test, y_test, t0, hist, w_test=w_test)
    _plot_curves(os.path.join(out, "curves.png"), hist)
    print(f"{_show_scores(scores, net.loss, 'test ')}  ({seconds:.1f}s)")
    print(f"wrote {out}/model.npz, metrics.json, metrics.csv, config.toml, curves.png")
    return 0 if math.isfinite(scores["loss"]) else 1


def _run_dir(out, argname="--out"):
    """Create ``out`` if needed and lock it for this run (refused if another run holds it); clean stale temporaries."""
    from .common import files

    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"{argname}: {out!r} exists and is not a directory")
    os.makedirs(out, exist_ok=True)
    lock = files.DirLock(out, argname)
    files.remove_temporaries(out)  # left by a killed run: no writer of ours is using them while we hold the lock
    return lock


def _json_safe(value):
    """NaN and infinities as null, so that what fastbp writes is JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _write_metrics(out, net, X_test, y_test, t0, hist, stopped=None, w_test=None):
    """metrics.json (atomically): the test scores of the network as it is (weighted by the test rows' sample
    weights ``w_test``, if any), the History, and why it stopped early."""
    from .common import files

    scores = net.evaluate(X_test, y_test, sample_weight=w_test)
    seconds = time.perf_counter() - t0
    metrics = {"test": scores, "loss_definition": _LOSS_WORDS.get(net.loss), "epochs": net.epochs_trained,
               "seconds": seconds, "history": {"epoch": hist.epoch, **hist.history}}
    if stopped is not None:
        metrics["stopped"] = stopped
    text = json.dumps(_json_safe(metrics), indent=1).encode()
    files.atomic_write(os.path.join(out, "metrics.json"), lambda f: f.write(text))
    return scores, seconds


_LOSS_WORDS = {
    "mse": "per row ½ Σ_j (a_j − y_j)², averaged over rows (the paper's MSE cost with its ½)",
    "squared": "per row Σ_j (a_j − y_j)², averaged over rows",
    "cross_entropy": "per row −Σ_j y_j log softmax(z)_j, averaged over rows",
    "binary_cross_entropy": "per row −Σ_j [y_j log a_j + (1 − y_j) log(1 − a_j)], averaged over rows",
}


# ----------------------------------------------------------------------------- evaluate, predict, export

def _run_config(model):
    """The settings of the run that wrote ``model`` (its directory's config.toml)."""
    path = os.path.join(os.path.dirname(os.path.abspath(model)), "config.toml")
    if not os.path.exists(path):
        raise ValueError(f"--split: no config.toml beside {model!r} to reproduce its run's split from")
    return {**TRAIN_DEFAULTS, **_read_config(path)}


def _check_labels(net, y, where):
    """Labels the model never saw: an error naming the file and column."""
    from .data import encode_labels

    if y is not None and net.classes_ is not None and getattr(y, "ndim", 0) == 1:
        encode_labels(y, net.classes_, argname=where)


def _model_and_data(args):
    import fastbp
    from .data import load, load_inputs

    net = fastbp.load(args.model)
    target = args.target.split(",") if getattr(args, "target", None) else net.target_names
    if getattr(args, "split", None) == "test":
        cfg = _run_config(args.model)
        data = args.data or cfg["data"]
        ds = load(data, target=cfg["target"], id_column=cfg["id"], weight_column=cfg["sample_weight"])
        _, _, X, y, rows, _, _ = _split(cfg, ds)
        rows = f"{rows} of {data!r}, as in the run's config"
        ids = None
    else:
        if not args.data:
            raise ValueError("--data: give the rows to score, or --split test for the run's own test split")
        X, y, ids, rows = load_inputs(args.data, net.sizes[0], feature_names=net.feature_names,
                                      target_names=target, id_column=getattr(args, "id", None))
        data = args.data
    if X.ndim != 2 or X.shape[1] != net.sizes[0]:
        raise ValueError(f"--data: {data!r} has {X.shape[1] if X.ndim == 2 else X.shape} features per row, "
                         f"the model {args.model!r} expects {net.sizes[0]}")
    col = f" column {','.join(target)!r}" if target else ""
    _check_labels(net, y, f"--data: {data!r}{col}")
    return net, X, y, ids, rows


def _evaluate(args):
    net, X, y, _, rows = _model_and_data(args)
    if y is None:
        raise ValueError(f"--data: {args.data!r} has no target column"
                         + (f" {','.join(net.target_names)!r}" if net.target_names else "") + " to score against")
    print(f"scoring {rows}", file=sys.stderr)
    scores = net.evaluate(X, y)
    if net.loss in ("mse", "squared"):
        print(f"loss = {_LOSS_WORDS[net.loss]}", file=sys.stderr)
    print(json.dumps(_json_safe({k: round(v, 6) for k, v in scores.items()})))
    return 0 if all(math.isfinite(v) for v in scores.values()) else 1


def _predict(args):
    import csv

    import numpy as np

    if os.path.isdir(args.out):
        raise ValueError(f"--out: {args.out!r} is a directory; expected a file name such as preds.csv")
    net, X, _, ids, rows = _model_and_data(args)
    pred = np.asarray(net.predict(X))
    names = net.target_names
    cols = pred.reshape(len(pred), -1)
    if cols.shape[1] == 1:
        header = ["prediction"]
    else:
        labels = names if names and len(names) == cols.shape[1] else [str(j) for j in range(cols.shape[1])]
        header = [f"prediction_{n}" for n in labels]
    if cols.dtype.kind == "f":
        cells = [[f"{v:.8g}" for v in row] for row in cols]
    else:
        cells = [[str(v) for v in row] for row in cols]
    if args.proba:
        P = net.predict_proba(X)
        classes = net.classes_ if net.classes_ is not None else range(P.shape[1])
        header += [f"p_{c}" for c in classes]
        cells = [c + [f"{v:.6g}" for v in p] for c, p in zip(cells, P)]
    if ids is not None:
        header = [args.id] + header
        cells = [[i] + c for i, c in zip(ids, cells)]
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(cells)
    print(f"wrote {len(pred)} predictions for {rows} to {args.out}")
    return 0


def _export(args):
    import fastbp

    net = fastbp.load(args.model)
    try:
        net.to_onnx(args.out, opset=args.opset)
    except ImportError as e:
        raise ValueError(f"export: {e}") from None
    print(f"wrote {args.out}: input X (n, {net.sizes[0]}) {net.dtype.name} -> output Y (n, {net.sizes[-1]})"
          + (f"; classes {net.classes_.tolist()} in its metadata" if net.classes_ is not None else "")
          + ("; with the model's scaling" if net.scaler_ is not None else ""))
    return 0


def _gradcheck(args):
    import numpy as np

    import fastbp
    from .data import load

    if args.model:
        net = fastbp.load(args.model)
    else:
        net = fastbp.Network([10, *args.layers, 3], activation=args.activation, dtype="float64", seed=0)
    if args.data:
        X, y = load(args.data)[:2]
        X, y = X[: args.samples], y[: args.samples]
    else:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((args.samples, net.sizes[0]))
        k = net.sizes[-1]
        y = rng.integers(0, k, args.samples) if net.loss == "cross_entropy" else rng.random((args.samples, k))
    err = fastbp.gradcheck(net, X, y, max_params=args.max_params)
    print(f"max relative error {err:.3e} over {min(args.max_params, net.n_params)} of {net.n_params} parameters "
          f"({'ok' if err <= 1e-6 else 'LARGE'})")
    return 0 if err <= 1e-6 else 1


SWEEP_TABLES = {"data", "train", "search", "space"}


def _sweep(args):
    import tomllib

    import fastbp
    from .data import load

    try:
        with open(args.spec, "rb") as f:
            spec = tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"spec: no such file: {args.spec!r}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"spec: {args.spec!r} is not valid TOML: {e}") from None
    unknown = set(spec) - SWEEP_TABLES
    if unknown:
        raise ValueError(f"spec: unknown table {sorted(unknown)[0]!r}; expected {sorted(SWEEP_TABLES)}")
    data = dict(spec.get("data", {}))
    search = dict(spec.get("search", {}))
    space = spec.get("space")
    if not space:
        raise ValueError(f"space: {args.spec!r} has no [space] table, or an empty one")
    for key in search:
        if key not in ("method", "trials", "seed", "metric", "mode", "prune", "cv", "shuffle"):
            raise ValueError(f"search: unknown key {key!r}; expected method, trials, seed, metric, mode, prune, cv, "
                             "shuffle")
    for key in data:
        if key not in ("path", "target", "val_split"):
            raise ValueError(f"data: unknown key {key!r}; expected path, target, val_split")
    ds = load(data.get("path", "digits"), target=data.get("target"))
    out = args.out or os.path.join("sweeps", time.strftime("%Y%m%d-%H%M%S"))
    args.resources.enter_context(_run_dir(out))
    results = os.path.join(out, "trials.jsonl")
    t0 = time.perf_counter()

    def progress(done, total, best):
        value = best["final"].get(search.get("metric", "val_accuracy"))
        print(f"\rtrials {done}/{total}  best {value:.4f}", end="", file=sys.stderr, flush=True)

    # Cross-validation holds out its own folds: no validation split unless one is asked for (an error then).
    val_split = data.get("val_split", None if "cv" in search else 0.2)
    res = fastbp.sweep(space, ds.X, ds.y, validation_split=val_split,
                       backend="dask" if args.scheduler else "local", scheduler=args.scheduler, results=results,
                       resume=args.resume, max_trials=args.max_trials, progress=progress, **search,
                       **spec.get("train", {}))
    print(file=sys.stderr)
    res.to_csv(os.path.join(out, "trials.csv"))
    swept = list(space)
    print(f"{len(res)} trials in {time.perf_counter() - t0:.1f}s; top {min(10, len(res))} by {res.metric}:")
    for rank, t in enumerate(res.leaderboard(10), 1):
        shown = "  ".join(f"{k}={t['config'][k]}" for k in swept)
        pruned = f"  (pruned at epoch {t['pruned_at_epoch']})" if "pruned_at_epoch" in t else ""
        print(f"{rank:3d}. {res.metric} {t['final'].get(res.metric, float('nan')):.4f}  {shown}{pruned}")
    _plot_sweep(os.path.join(out, "sweep.png"), res, swept)
    res.best_network().save(os.path.join(out, "best_model.npz"))
    print(f"wrote {out}/trials.jsonl, trials.csv, sweep.png, best_model.npz")
    return 0


def _plot_sweep(path, res, swept):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(swept), figsize=(4 * len(swept), 3.5), dpi=100, squeeze=False)
    ys = [t["final"].get(res.metric, float("nan")) for t in res.trials]
    n = len(ys)
    # Many trials: smaller, fainter points, so that dense regions read as density, not as one blot.
    size, alpha = max(4.0, 40.0 / math.sqrt(max(n, 1))), min(0.8, max(0.15, 30.0 / max(n, 1)))
    finite = [y for y in ys if math.isfinite(y)]
    best = None
    if finite:
        pick = max if res.mode == "max" else min
        best = ys.index(pick(finite))
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, n)
    for ax, key in zip(axes[0], swept):
        xs = [t["config"].get(key) for t in res.trials]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
            pos = list(xs)
            if _spans_decades(xs):
                ax.set_xscale("log")
        else:
            labels = sorted({json.dumps(x) for x in xs})
            pos = [labels.index(json.dumps(x)) + jitter[i] for i, x in enumerate(xs)]
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
        ax.scatter(pos, ys, s=size, alpha=alpha, linewidths=0)
        if best is not None:
            ax.scatter([pos[best]], [ys[best]], s=80, marker="*", color="C3", label="best", zorder=3)
            ax.legend(fontsize=8, loc="best")
        if _spans_decades(ys):
            ax.set_yscale("log")
        ax.set(xlabel=key, ylabel=res.metric)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{n} trials", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _info(args):
    import numba
    import numpy as np

    import fastbp

    print(f"fastbp {fastbp.__version__}  numpy {np.__version__}  numba {numba.__version__}  "
          f"python {sys.version.split()[0]}")
    print(f"cpu count {os.cpu_count()}  numba threads {numba.get_num_threads()}  "
          f"threading layer {numba.config.THREADING_LAYER}")
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            print(f"blas {lib.get('internal_api')} {lib.get('version')} threads {lib.get('num_threads')} "
                  f"({os.path.basename(lib.get('filepath', ''))})")
    except ImportError:
        print("blas: install threadpoolctl to see the BLAS libraries and their threads")
    print(f"numba cache dir {numba.config.CACHE_DIR or '(__pycache__ beside the fastbp sources)'}")
    from .engine import policy

    print("\n".join(policy.describe()))
    return 0


def _calibrate(args):
    from .engine import calibration, policy

    print("timing the three products of a layer on every engine ...", flush=True)
    entry = calibration.calibrate()
    print(f"wrote {calibration.path()}")
    print("\n".join(policy.describe()))
    return 0 if entry else 1


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = _parser().parse_args(argv)
        handler = {"train": _train, "evaluate": _evaluate, "predict": _predict, "export": _export,
                   "gradcheck": _gradcheck, "info": _info, "sweep": _sweep,
                   "calibrate": _calibrate}[args.command]
        with contextlib.ExitStack() as args.resources:  # run-directory locks, released however the run ends
            return handler(args)
    except KeyboardInterrupt:
        print("fastbp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (OSError, ValueError, TypeError, FloatingPointError, MemoryError) as e:  # the one error path
        if debug:
            raise
        return _fail(_message(e))
    except Exception as e:
        if debug:
            raise
        what = " ".join(str(e).split())
        print(f"fastbp: error: a bug in fastbp ({type(e).__name__}: {what}); run again with --debug to see the "
              "traceback, and please report it", file=sys.stderr)
        return EXIT_BUG


def _message(e):
    """One line for an expected failure: an OS error names its file, MemoryError says what ran out."""
    if isinstance(e, MemoryError):
        return f"out of memory ({e or 'the data or the network is too large for this machine'})"
    if isinstance(e, OSError) and e.filename is not None:
        names = repr(e.filename) + (f" -> {e.filename2!r}" if e.filename2 is not None else "")
        return f"{names}: {e.strerror or e}"
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
