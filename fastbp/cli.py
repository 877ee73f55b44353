"""The ``fastbp`` command."""

import argparse
import os
import sys
import time

__all__ = ["main"]


class UserError(Exception):
    """A mistake in the command line or its data: reported in one line, exit status 2."""


def _layers(text):
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths such as 256,128, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"expected widths >= 1, got {text!r}")
    return widths


def _parser():
    p = argparse.ArgumentParser(prog="fastbp", description="Train multilayer perceptrons fast on the CPU.")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a network (default: on the bundled digits)")
    t.add_argument("--layers", type=_layers, default=[64], help="hidden widths, e.g. 256,128 (default 64)")
    t.add_argument("--activation", default="relu", help="hidden activation (default relu)")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=0.1)
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--test-split", type=float, default=0.2, help="fraction held out for the final score")
    t.add_argument("--out", default=None, help="save the trained model to this .npz file")

    sub.add_parser("info", help="versions, threads and cache directory")
    return p


def _train(args):
    import numpy as np

    import fastbp
    from fastbp.data import train_test_split
    from fastbp.datasets import digits

    X, y = digits()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=args.test_split, seed=args.seed)
    sizes = [X.shape[1], *args.layers, int(y.max()) + 1]
    net = fastbp.Network(sizes, activation=args.activation, dtype=args.dtype, seed=args.seed)
    print(f"training {net} on digits: {len(Xtr)} train / {len(Xte)} test samples", flush=True)
    t0 = time.perf_counter()
    hist = net.fit(Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, verbose=0)
    for e, loss, acc, sps in zip(hist.epoch, hist["loss"], hist["accuracy"], hist["samples_per_second"]):
        print(f"epoch {e:3d}  loss {loss:.4f}  accuracy {acc:.4f}  {sps:12,.0f} samples/s")
    scores = net.evaluate(Xte, yte)
    print(f"test loss {scores['loss']:.4f}  test accuracy {scores['accuracy']:.4f}  "
          f"({time.perf_counter() - t0:.1f}s including compilation)")
    if args.out:
        net.save(args.out)
        print(f"saved {args.out}")
    return 0 if np.isfinite(scores["loss"]) else 1


def _info(args):
    import numba
    import numpy as np

    import fastbp

    print(f"fastbp {fastbp.__version__}  numpy {np.__version__}  numba {numba.__version__}  python {sys.version.split()[0]}")
    print(f"numba threads {numba.get_num_threads()}  cpu count {os.cpu_count()}")
    print(f"numba cache dir {numba.config.CACHE_DIR or '(beside the sources)'}")
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return {"train": _train, "info": _info}[args.command](args)
    except (UserError, ValueError, TypeError, FileNotFoundError) as e:
        if args.debug:
            raise
        print(f"fastbp: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fastbp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
