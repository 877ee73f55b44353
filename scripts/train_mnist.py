#!/usr/bin/env python
"""Train an MLP on MNIST or Fashion-MNIST from its IDX files and print the test accuracy.

    python scripts/train_mnist.py DIR [--layers 256,128] [--epochs 10] [--optimizer adam] [--lr 1e-3]

DIR holds the four files as they are distributed (train-images-idx3-ubyte.gz,
train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz;
plain or gzipped, either naming).
"""

import argparse
import time

import fastbp
from fastbp.data import load


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", help="directory with the MNIST-style IDX files")
    p.add_argument("--layers", default="256,128", help="hidden widths (default 256,128)")
    p.add_argument("--activation", default="relu")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", help="write the trained model to this .npz")
    args = p.parse_args(argv)

    data = load(args.dir)
    if data.X_test is None:
        raise SystemExit(f"{args.dir}: no t10k-* test files found")
    hidden = [int(w) for w in args.layers.split(",") if w]
    net = fastbp.Network([data.X.shape[1], *hidden, int(data.y.max()) + 1], activation=args.activation,
                         dtype=args.dtype, seed=args.seed)
    t0 = time.perf_counter()
    net.fit(data.X, data.y, epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
            validation_split=0.1, verbose=2)
    scores = net.evaluate(data.X_test, data.y_test)
    print(f"test accuracy {scores['accuracy']:.4f}  test loss {scores['loss']:.4f}  "
          f"({time.perf_counter() - t0:.1f}s for {args.epochs} epochs of {len(data.X)} images)")
    if args.save:
        net.save(args.save)


if __name__ == "__main__":
    main()
