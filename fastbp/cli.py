"""The ``fastbp`` command: train, evaluate, predict, gradcheck, info, sweep.

argparse (the standard library) rather than click or typer: the command needs
sub-commands, typed options and a config file, all of which argparse covers,
and it keeps ``pip install .`` free of one more dependency.

User errors print one line, ``fastbp: error: ...``, and exit with status 2;
``--debug`` shows the traceback instead. Ctrl-C during training saves the last
completed epoch and exits with status 130.
"""

import argparse
import json
import math
import os
import sys
import time

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise SystemExit(_fail(f"{message} (see fastbp {self.prog.split()[-1]} --help)"
                               if " " in self.prog else message))


def _fail(message):
    print(f"fastbp: error: {message}", file=sys.stderr)
    return EXIT_USAGE


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
    "data": "digits", "target": None, "layers": [64], "activation": "relu", "output": None, "loss": None,
    "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, "schedule": "constant", "step_size": 10,
    "gamma": 0.1, "warmup": 0, "t_max": None, "eta_min": 0.0, "schedule_per": "epoch", "clip_norm": None,
    "epochs": 30, "batch_size": 32, "dtype": "float32", "seed": 0, "val_split": 0.1, "test_split": 0.2,
    "early_stopping": None, "checkpoint_every": None, "out": None,
}


def _parser():
    p = _Parser(prog="fastbp", description="Train multilayer perceptrons fast on the CPU.")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a network (default: on the bundled digits)")
    t.add_argument("--config", help="a TOML file with any of these options (command-line options win)")
    t.add_argument("--data", help="'digits', a directory of MNIST-style IDX files, a .npz or a .csv")
    t.add_argument("--target", help="the label column of a CSV with a header (default: the last column)")
    t.add_argument("--layers", type=_layers, help="hidden widths, e.g. 256,128 (default 64)")
    t.add_argument("--activation", help="hidden activation: relu, sigmoid, tanh, gaussian, ... (default relu)")
    t.add_argument("--output", help="output activation (default: the one that goes with --loss)")
    t.add_argument("--loss", help="cross_entropy, binary_cross_entropy, mse or squared (default cross_entropy)")
    t.add_argument("--optimizer", help="sgd, adam, adamw or rmsprop (default sgd)")
    t.add_argument("--lr", type=float, help="learning rate (default 0.1)")
    t.add_argument("--momentum", type=float, help="SGD / RMSprop momentum (default 0)")
    t.add_argument("--weight-decay", type=float, help="weight decay (default 0)")
    t.add_argument("--schedule", choices=["constant", "step", "exponential", "cosine"], help="lr schedule")
    t.add_argument("--step-size", type=int, help="step schedule: epochs (or steps) per decay (default 10)")
    t.add_argument("--gamma", type=float, help="step / exponential schedule factor (default 0.1)")
    t.add_argument("--warmup", type=int, help="cosine schedule: linear warm-up length (default 0)")
    t.add_argument("--t-max", type=int, help="cosine schedule: length (default: the whole run)")
    t.add_argument("--eta-min", type=float, help="cosine schedule: final lr (default 0)")
    t.add_argument("--schedule-per", choices=["epoch", "step"], help="schedule unit (default epoch)")
    t.add_argument("--clip-norm", type=float, help="clip each batch's gradient to this global norm")
    t.add_argument("--epochs", type=int, help="default 30")
    t.add_argument("--batch-size", type=int, help="default 32")
    t.add_argument("--dtype", choices=["float32", "float64"], help="default float32")
    t.add_argument("--seed", type=int, help="default 0")
    t.add_argument("--val-split", type=float, help="fraction of the training rows held out for validation "
                   "(default 0.1; 0 for none)")
    t.add_argument("--test-split", type=float, help="fraction held out for the final test when the data has no "
                   "test split (default 0.2)")
    t.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop when val_loss stalls this long")
    t.add_argument("--checkpoint-every", type=int, metavar="N", help="save model.npz every N epochs")
    t.add_argument("--out", help="output directory (default runs/<timestamp>)")
    t.add_argument("--quiet", action="store_true", help="no per-epoch output")

    e = sub.add_parser("evaluate", help="loss and accuracy of a saved model on data")
    e.add_argument("model")
    e.add_argument("--data", required=True)
    e.add_argument("--target")

    pr = sub.add_parser("predict", help="write a saved model's predictions as CSV")
    pr.add_argument("model")
    pr.add_argument("--data", required=True)
    pr.add_argument("--target")
    pr.add_argument("--out", default="preds.csv")

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

    sub.add_parser("info", help="versions, threads, BLAS and cache directory")
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
        cfg[k] = _layers(value) if k == "layers" and not isinstance(value, list) else value
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
        f.write("# fastbp train --config config.toml re-runs this\n")
        for k, v in cfg.items():
            if v is not None:
                f.write(f"{k} = {_toml_value(v)}\n")


def _settings(args):
    cfg = dict(TRAIN_DEFAULTS)
    if args.config:
        cfg.update(_read_config(args.config))
    for k in TRAIN_DEFAULTS:
        v = getattr(args, k, None)
        if v is not None:
            cfg[k] = v
    return cfg


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
    raise ValueError(f"--schedule: expected constant, step, exponential or cosine, got {name!r}")


def _optimizer(cfg):
    from fastbp.optimizers import OPTIMIZERS

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


def _plot_curves(path, history):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    epochs = history.epoch
    for key, style in (("loss", "-"), ("val_loss", "--")):
        if key in history:
            ax1.plot(epochs, history[key], style, label=key.replace("_", " "))
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    for key, style in (("accuracy", "-"), ("val_accuracy", "--")):
        if key in history:
            ax2.plot(epochs, history[key], style, label=key.replace("_", " "))
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _train(args):
    import numpy as np

    import fastbp
    from fastbp.data import load, train_test_split

    cfg = _settings(args)
    for key in ("epochs", "batch_size"):
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')}: expected an integer >= 1, got {cfg[key]!r}")
    for key in ("lr", "clip_norm"):
        v = cfg[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0)):
            raise ValueError(f"--{key.replace('_', '-')}: expected a positive number, got {v!r}")
    _check_fraction("--val-split", cfg["val_split"], allow_zero=True)
    _check_fraction("--test-split", cfg["test_split"], allow_zero=False)
    ds = load(cfg["data"], target=cfg["target"])
    X, y, X_test, y_test = ds
    if X_test is None:
        X, X_test, y, y_test = train_test_split(X, y, test_size=float(cfg["test_split"]), seed=cfg["seed"])
    y_arr = np.asarray(y)
    loss = cfg["loss"]
    n_out = int(y_arr.max()) + 1 if y_arr.ndim == 1 and (loss in (None, "cross_entropy")) else (
        1 if y_arr.ndim == 1 else y_arr.shape[1])
    sizes = [int(X.shape[1]), *cfg["layers"], n_out]
    net = fastbp.Network(sizes, activation=cfg["activation"], output=cfg["output"], loss=loss,
                         dtype=cfg["dtype"], seed=cfg["seed"])
    optimizer, schedule = _optimizer(cfg), _schedule(cfg)
    out = cfg["out"] or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    model_path = os.path.join(out, "model.npz")
    run_cfg = {**cfg, "out": out}
    _write_toml(os.path.join(out, "config.toml"), run_cfg)
    print(f"training {net} on {cfg['data']}: {len(X)} train / {len(X_test)} test rows -> {out}", flush=True)
    t0 = time.perf_counter()
    try:
        hist = net.fit(X, y, epochs=cfg["epochs"], batch_size=cfg["batch_size"], optimizer=optimizer,
                       schedule=schedule, clip_norm=cfg["clip_norm"],
                       validation_split=cfg["val_split"] or None, early_stopping=cfg["early_stopping"],
                       checkpoint=model_path, checkpoint_every=cfg["checkpoint_every"] or cfg["epochs"] + 1,
                       verbose=0 if args.quiet else 2)
    except KeyboardInterrupt:
        print(f"fastbp: interrupted; the last completed epoch ({net.epochs_trained}) is saved in {model_path}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    scores = net.evaluate(X_test, y_test)
    seconds = time.perf_counter() - t0
    metrics = {"test": scores, "epochs": net.epochs_trained, "seconds": seconds,
               "history": {"epoch": hist.epoch, **hist.history}}
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    _plot_curves(os.path.join(out, "curves.png"), hist)
    shown = "  ".join(f"test {k} {v:.4f}" for k, v in scores.items())
    print(f"{shown}  ({seconds:.1f}s)")
    print(f"wrote {out}/model.npz, metrics.json, config.toml, curves.png")
    return 0 if math.isfinite(scores["loss"]) else 1


# ----------------------------------------------------------------------------- evaluate, predict

def _model_and_data(args):
    import fastbp
    from fastbp.data import load

    net = fastbp.load(args.model)
    ds = load(args.data, target=args.target)
    X, y = (ds.X_test, ds.y_test) if ds.X_test is not None else (ds.X, ds.y)
    if X.ndim != 2 or X.shape[1] != net.sizes[0]:
        raise ValueError(
            f"--data: {args.data!r} has {X.shape[1] if X.ndim == 2 else X.shape} features per row, "
            f"the model {args.model!r} expects {net.sizes[0]}"
        )
    return net, X, y


def _evaluate(args):
    net, X, y = _model_and_data(args)
    scores = net.evaluate(X, y)
    print(json.dumps({k: round(v, 6) for k, v in scores.items()}))
    return 0


def _predict(args):
    import numpy as np

    net, X, _ = _model_and_data(args)
    pred = net.predict(X)
    pred = pred.reshape(len(pred), -1)
    header = "prediction" if pred.shape[1] == 1 else ",".join(f"output_{j}" for j in range(pred.shape[1]))
    np.savetxt(args.out, pred, delimiter=",", header=header, comments="",
               fmt="%d" if pred.dtype.kind in "iu" else "%.8g")
    print(f"wrote {len(pred)} predictions to {args.out}")
    return 0


def _gradcheck(args):
    import numpy as np

    import fastbp
    from fastbp.data import load

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
    from fastbp.data import load

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
        if key not in ("method", "trials", "seed", "metric", "mode"):
            raise ValueError(f"search: unknown key {key!r}; expected method, trials, seed, metric, mode")
    for key in data:
        if key not in ("path", "target", "val_split"):
            raise ValueError(f"data: unknown key {key!r}; expected path, target, val_split")
    ds = load(data.get("path", "digits"), target=data.get("target"))
    out = args.out or os.path.join("sweeps", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    results = os.path.join(out, "trials.jsonl")
    t0 = time.perf_counter()

    def progress(done, total, best):
        value = best["final"].get(search.get("metric", "val_accuracy"))
        print(f"\rtrials {done}/{total}  best {value:.4f}", end="", file=sys.stderr, flush=True)

    res = fastbp.sweep(space, ds.X, ds.y, validation_split=data.get("val_split", 0.2),
                       backend="dask" if args.scheduler else "local", scheduler=args.scheduler, results=results,
                       resume=args.resume, max_trials=args.max_trials, progress=progress, **search,
                       **spec.get("train", {}))
    print(file=sys.stderr)
    res.to_csv(os.path.join(out, "trials.csv"))
    swept = list(space)
    print(f"{len(res)} trials in {time.perf_counter() - t0:.1f}s; top {min(10, len(res))} by {res.metric}:")
    for rank, t in enumerate(res.leaderboard(10), 1):
        shown = "  ".join(f"{k}={t['config'][k]}" for k in swept)
        print(f"{rank:3d}. {res.metric} {t['final'].get(res.metric, float('nan')):.4f}  {shown}")
    _plot_sweep(os.path.join(out, "sweep.png"), res, swept)
    print(f"wrote {out}/trials.jsonl, trials.csv, sweep.png")
    return 0


def _plot_sweep(path, res, swept):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(swept), figsize=(4 * len(swept), 3.5), dpi=100, squeeze=False)
    ys = [t["final"].get(res.metric, float("nan")) for t in res.trials]
    for ax, key in zip(axes[0], swept):
        xs = [t["config"].get(key) for t in res.trials]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
            ax.scatter(xs, ys, s=14, alpha=0.7)
            if min(xs) > 0 and max(xs) / min(xs) >= 100:
                ax.set_xscale("log")
        else:
            labels = sorted({json.dumps(x) for x in xs})
            ax.scatter([labels.index(json.dumps(x)) for x in xs], ys, s=14, alpha=0.7)
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
        ax.set(xlabel=key, ylabel=res.metric)
        ax.grid(alpha=0.3)
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
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = _parser().parse_args(argv)
        handler = {"train": _train, "evaluate": _evaluate, "predict": _predict, "gradcheck": _gradcheck,
                   "info": _info, "sweep": _sweep}[args.command]
        return handler(args)
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError) as e:
        if debug:
            raise
        return _fail(str(e))
    except KeyboardInterrupt:
        print("fastbp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
