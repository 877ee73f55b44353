"""What runs in each measuring process: one framework, one or more jobs, one JSON line per job.

``python scripts/bench.py --worker SPEC_JSON`` runs ``worker(spec)``: ``spec``
names the framework, the learning rate, the seed and the jobs. A job is one
configuration (layer sizes, batch, samples, dtype, timed repeats) and a kind:
``"epoch"`` (training, the default) or ``"predict"``; a training job may carry
``extra``, the options of one row of ``FIT_EXTRAS``. Each worker warms up first
(fastbp: a two-batch fit that compiles the kernels or loads them from Numba's
cache, then one whole epoch; the others: one whole epoch, which for JAX and
torch.compile includes their compile) and then times ``repeats`` epochs; the
median is quoted. After its jobs a worker reports the BLAS libraries it loaded
and the versions it imported (``machine.process_info``).
"""

import itertools
import json
import os
import statistics
import sys
import time

from .configs import CONFIGS, make_data, make_network
from .machine import process_info

MARK = "@@fastbp-bench "
ADAM_LR = 1e-3
TRAINING_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SWEEP_SPACE = {"lr": [0.01, 0.03, 0.1, 0.3], "momentum": [0.0, 0.5, 0.9], "seed": [0, 1, 2, 3]}
PREDICT_ROWS = 10_000

# The fit-extras table: one row per training option, measured on EXTRAS_CONFIG, each framework doing it its own
# way. A row maps a framework to its options; a framework without an entry shows "–". fastbp's options are
# `Network.fit` keyword arguments (a value "@name" is made from the data by FIT_DATA[name](X, y, seed));
# the peers' workers understand "optimizer" ("sgd" or "adam") and "lr", and refuse any other key.
# A new row is one entry here (and, for a peer, its handling of the new key in its worker).
EXTRAS_CONFIG = "mnist"
ADAM = {"optimizer": "adam", "lr": ADAM_LR}
FIT_EXTRAS = {
    f"adam (lr {ADAM_LR:g})": {"fastbp": ADAM, "torch": ADAM, "torch-compile": ADAM, "jax": ADAM, "sklearn": ADAM},
    # fastbp's own features, whose cost is read against its plain-SGD row of the main table; "net.KEY" is a
    # Network argument, the rest go to fit.
    "sample weights": {"fastbp": {"sample_weight": "@weights"}},
    "dropout 0.2 (both hidden layers)": {"fastbp": {"net.dropout": 0.2}},
}
FIT_DATA = {"weights": lambda X, y, seed: __import__("numpy").random.default_rng(seed).uniform(0.5, 1.5, len(y))}
PEER_EXTRA_KEYS = {"optimizer", "lr"}


def emit(obj):
    print(MARK + json.dumps(obj), flush=True)


def worker(spec):
    fw = spec["framework"]
    fn = {"fastbp": _work_fastbp, "torch": _work_torch, "torch-compile": _work_torch, "jax": _work_jax,
          "sklearn": _work_sklearn, "matmul": _work_matmul, "fastbp-training": _work_training,
          "fastbp-sweep": _work_sweep}[fw]
    state = {"compile": fw == "torch-compile"}
    for job in spec["jobs"]:
        try:
            res = (_PREDICT[fw] if job.get("kind") == "predict" else fn)(job, spec, state)
        except Exception as e:  # noqa: BLE001 - reported to the parent, which shows it
            res = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:300]}
        # Emitted job by job, so a crash later in the process loses only the jobs after it.
        emit({**{k: job[k] for k in ("layers", "batch", "samples", "dtype") if k in job}, **res,
              "process": process_info()})
    return 0


# ----------------------------------------------------------------------------- helpers

def _rss_now():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _rss_peak()


def _rss_peak():
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _summary(times, samples, counted=None):
    """Median samples/s of a list of epoch times, and the spread (max - min) / median."""
    med = statistics.median(times)
    counted = samples if counted is None else counted
    return {"epoch_seconds": times, "median_seconds": med, "samples_per_second": counted / med,
            "spread": (max(times) - min(times)) / med if med > 0 else 0.0}


def _peer_options(job):
    """(optimizer name, lr) of a peer's job; a key it cannot do is an error, shown in the row."""
    extra = job.get("extra") or {}
    unknown = sorted(set(extra) - PEER_EXTRA_KEYS)
    if unknown:
        raise ValueError(f"this worker does not implement the option {unknown[0]!r}")
    opt = extra.get("optimizer", "sgd")
    if opt not in ("sgd", "adam"):
        raise ValueError(f"this worker does not implement the optimizer {opt!r}")
    return opt, extra.get("lr")


def _engine_name(layers, batch, n_params):
    """The engine fastbp takes for this network (``fastbp.engine.policy.engine_for``, which honours FASTBP_ENGINE;
    ``fastbp.matmul.engine_for`` in versions before the engine/ package)."""
    try:
        from fastbp.engine.policy import engine_for
    except ImportError:
        try:
            from fastbp.matmul import engine_for
        except ImportError:
            return None
    try:
        mm = engine_for(layers, batch, n_params)
    except Exception as e:  # noqa: BLE001 - another fastbp's signature: say so, keep the timing
        return f"unknown (engine_for: {type(e).__name__}: {e})"
    return "loops, one core" if mm is None else repr(mm)


def _one_row_seconds(call, X, quick):
    """Median seconds of ``call`` on one row, over enough calls to be steady."""
    row = X[:1]
    for _ in range(5):
        call(row)
    times = []
    for _ in range(20 if quick else 200):
        t0 = time.perf_counter()
        call(row)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _predict_result(call, X, job, spec):
    """Seconds of ``call(X)`` (median of the repeats, after a warm-up) and of ``call`` on one row."""
    call(X)
    times = []
    for _ in range(max(3, job["repeats"])):
        t0 = time.perf_counter()
        call(X)
        times.append(time.perf_counter() - t0)
    return {"one_row_seconds": _one_row_seconds(call, X, spec.get("quick")), **_summary(times, X.shape[0])}


# ----------------------------------------------------------------------------- fastbp

def _fit_options(job, X, y, seed):
    extra = {k: v for k, v in (job.get("extra") or {}).items() if not k.startswith("net.")}
    for k, v in extra.items():
        if isinstance(v, str) and v.startswith("@"):
            extra[k] = FIT_DATA[v[1:]](X, y, seed)
    return extra


def _network_options(job):
    return {k[4:]: v for k, v in (job.get("extra") or {}).items() if k.startswith("net.")}


def _work_fastbp(job, spec, state):
    layers, batch, n, dtype, repeats = job["layers"], job["batch"], job["samples"], job["dtype"], job["repeats"]
    t0 = time.perf_counter()
    import numpy as np

    import fastbp

    import_s = time.perf_counter() - t0
    fit_kw = {"lr": spec["lr"]}

    def network():
        return make_network(layers, dtype, seed=spec["seed"], **_network_options(job))

    # Compile (or load from the cache) on two batches, outside any timing.
    Xw, yw = make_data(layers, min(n, 2 * batch), spec["seed"] + 1)
    fit_kw.update(_fit_options(job, Xw, yw, spec["seed"]))
    t0 = time.perf_counter()
    network().fit(Xw.astype(dtype), yw, epochs=1, batch_size=batch, verbose=0, **fit_kw)
    compile_s = time.perf_counter() - t0
    del Xw, yw
    baseline = _rss_now()

    X, y = make_data(layers, n, spec["seed"])
    if dtype != "float32":
        X = X.astype(dtype)
    fit_kw.update(_fit_options(job, X, y, spec["seed"]))
    net = network()
    t0 = time.perf_counter()
    net.fit(X, y, epochs=1, batch_size=batch, shuffle=True, verbose=0, **fit_kw)
    warm_s = time.perf_counter() - t0
    # The timed epochs: one fit of `repeats` epochs; History's per-epoch seconds time the compiled epoch
    # (the shuffle's permutation is drawn just before, in Python). `fit_overhead` is the rest of the call
    # (input checks, the one-hot targets, buffers), paid once per fit, not per epoch.
    t0 = time.perf_counter()
    hist = net.fit(X, y, epochs=repeats, batch_size=batch, shuffle=True, verbose=0, **fit_kw)
    wall = time.perf_counter() - t0
    times = list(hist["seconds"])
    res = {"version": fastbp.__version__, "import_seconds": import_s, "compile_seconds": compile_s,
           "warmup_seconds": warm_s, "fit_wall_seconds": wall, "fit_overhead_seconds": wall - sum(times),
           "final_loss": hist["loss"][-1], "engine": _engine_name(layers, batch, net.n_params),
           "engine_forced": os.environ.get("FASTBP_ENGINE"), **_summary(times, n)}
    if job.get("memory"):
        item = np.dtype(dtype).itemsize
        sizes = net.sizes
        cap = min(batch, n)
        data = X.nbytes + y.nbytes + n * sizes[-1] * item + n * 8  # X, labels, one-hot Y, permutation
        params4 = 4 * net.n_params * item  # params, grad, the epoch snapshot, slack for the optimizer state
        work = cap * (sizes[0] + 3 * sum(sizes[1:])) * item  # the batch rows, z, a and δ of every layer
        # ru_maxrss is the kernel's high-water mark, updated lazily: never quote less than the RSS now.
        res["memory"] = {"peak_rss": max(_rss_peak(), _rss_now()), "ru_maxrss": _rss_peak(),
                         "rss_end": _rss_now(), "baseline_rss": baseline, "data_bytes": data,
                         "params_bytes_x4": params4, "work_bytes": work,
                         "bound": baseline + data + params4 + work}
    return res


def _predict_fastbp(job, spec, state):
    import fastbp

    layers = job["layers"]
    net = make_network(layers, "float32", seed=spec["seed"])
    X, _ = make_data(layers, job["samples"], spec["seed"])
    res = _predict_result(net.predict, X, job, spec)
    return {"version": fastbp.__version__, "engine": _engine_name(layers, job["samples"], net.n_params), **res}


# ----------------------------------------------------------------------------- PyTorch (eager and compiled)

def _torch_model(torch, layers):
    mods = []
    for i in range(len(layers) - 1):
        mods.append(torch.nn.Linear(layers[i], layers[i + 1]))
        if i < len(layers) - 2:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def _work_torch(job, spec, state):
    """PyTorch eager, or (``state["compile"]``) the whole training step under ``torch.compile``: forward, loss,
    backward and the optimizer's step in one compiled function (Dynamo splits it at ``backward``; AOTAutograd
    compiles the backward graph, and the optimizer step is a graph of its own)."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    layers, batch, n, repeats = job["layers"], job["batch"], job["samples"], job["repeats"]
    opt_name, lr = _peer_options(job)
    torch.manual_seed(spec["seed"])
    X, y = make_data(layers, n, spec["seed"])
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    model = _torch_model(torch, layers)
    crit = torch.nn.CrossEntropyLoss()
    if opt_name == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr or ADAM_LR)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr or spec["lr"], momentum=0.0)
    gen = torch.Generator().manual_seed(spec["seed"])

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = crit(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    if state["compile"]:
        step = torch.compile(step)

    def epoch():
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            loss = step(Xt.index_select(0, idx), yt.index_select(0, idx))
        return float(loss)

    t0 = time.perf_counter()
    epoch()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        last = epoch()
        times.append(time.perf_counter() - t0)
    return {"version": torch.__version__, "threads": torch.get_num_threads(), "warmup_seconds": warm,
            "final_loss": last, **_summary(times, n)}


def _predict_torch(job, spec, state):
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(spec["seed"])
    model = _torch_model(torch, job["layers"]).eval()
    X, _ = make_data(job["layers"], job["samples"], spec["seed"])

    def predict(Xa):
        with torch.inference_mode():
            return model(torch.from_numpy(Xa)).argmax(dim=1).numpy()

    return {"version": torch.__version__, "threads": torch.get_num_threads(), **_predict_result(predict, X, job, spec)}


# ----------------------------------------------------------------------------- JAX

def _jax_params(jnp, np, layers, seed):
    rng = np.random.default_rng(seed)
    params = []
    for a, b in itertools.pairwise(layers):
        lim = (6.0 / (a + b)) ** 0.5
        params.append((jnp.asarray(rng.uniform(-lim, lim, (b, a)).astype(np.float32)), jnp.zeros(b, jnp.float32)))
    return params


def _jax_logits(jax, p, x):
    a = x
    for W, b in p[:-1]:
        a = jax.nn.relu(a @ W.T + b)
    W, b = p[-1]
    return a @ W.T + b


def _work_jax(job, spec, state):
    """The whole epoch in one jitted call: shuffle, batches, ``lax.scan`` over the steps. Adam is written out
    (the moments carried through the scan, bias-corrected as torch.optim.Adam and fastbp.Adam do)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    layers, batch, n, repeats = job["layers"], job["batch"], job["samples"], job["repeats"]
    opt_name, lr = _peer_options(job)
    lr = lr or (ADAM_LR if opt_name == "adam" else spec["lr"])
    b1, b2, eps = 0.9, 0.999, 1e-8
    X, y = make_data(layers, n, spec["seed"])
    params = _jax_params(jnp, np, layers, spec["seed"])
    Xj, yj = jnp.asarray(X), jnp.asarray(y.astype(np.int32))
    nb, rem = divmod(n, batch)
    tmap = jax.tree_util.tree_map

    def loss_fn(p, xb, yb):
        logp = jax.nn.log_softmax(_jax_logits(jax, p, xb))
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def step(carry, xy):
        p, m, v, t = carry
        loss, g = jax.value_and_grad(loss_fn)(p, *xy)
        if opt_name == "adam":
            t = t + 1
            m = tmap(lambda m_, g_: b1 * m_ + (1 - b1) * g_, m, g)
            v = tmap(lambda v_, g_: b2 * v_ + (1 - b2) * g_ * g_, v, g)
            c1, c2 = 1 - b1 ** t, 1 - b2 ** t
            p = tmap(lambda w, m_, v_: w - lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + eps), p, m, v)
        else:
            p = tmap(lambda w, gw: w - lr * gw, p, g)
        return (p, m, v, t), loss

    def epoch(carry, key, Xa, ya):
        perm = jax.random.permutation(key, n)
        Xs, ys = jnp.take(Xa, perm, axis=0), jnp.take(ya, perm, axis=0)
        total = jnp.float32(0)
        if nb:
            carry, losses = lax.scan(step, carry, (Xs[:nb * batch].reshape(nb, batch, -1),
                                                   ys[:nb * batch].reshape(nb, batch)))
            total = losses.sum() * batch
        if rem:
            carry, l_ = step(carry, (Xs[nb * batch:], ys[nb * batch:]))
            total = total + l_ * rem
        return carry, total

    zeros = tmap(jnp.zeros_like, params)
    carry = (params, zeros, tmap(jnp.zeros_like, params), jnp.float32(0))
    epoch_jit = jax.jit(epoch, donate_argnums=0)
    key = jax.random.PRNGKey(spec["seed"])
    t0 = time.perf_counter()
    carry, loss = epoch_jit(carry, jax.random.fold_in(key, 0), Xj, yj)
    jax.block_until_ready((carry, loss))
    warm = time.perf_counter() - t0
    times = []
    for e in range(repeats):
        k = jax.random.fold_in(key, e + 1)
        t0 = time.perf_counter()
        carry, loss = epoch_jit(carry, k, Xj, yj)
        jax.block_until_ready((carry, loss))
        times.append(time.perf_counter() - t0)
    return {"version": jax.__version__, "backend": jax.default_backend(), "warmup_seconds": warm,
            "final_loss": float(loss) / n, **_summary(times, n)}


def _predict_jax(job, spec, state):
    import jax
    import jax.numpy as jnp
    import numpy as np

    params = _jax_params(jnp, np, job["layers"], spec["seed"])
    fwd = jax.jit(lambda p, x: jnp.argmax(_jax_logits(jax, p, x), axis=1))
    X, _ = make_data(job["layers"], job["samples"], spec["seed"])

    def predict(Xa):
        return np.asarray(fwd(params, Xa))

    return {"version": jax.__version__, "backend": jax.default_backend(), **_predict_result(predict, X, job, spec)}


# ----------------------------------------------------------------------------- scikit-learn

def _sklearn_classifier(layers, batch, lr, seed, opt_name="sgd"):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=tuple(layers[1:-1]), activation="relu", solver=opt_name,
                         learning_rate="constant", learning_rate_init=lr, momentum=0.0, nesterovs_momentum=False,
                         alpha=0.0, batch_size=batch, max_iter=1, shuffle=True, random_state=seed, tol=0.0,
                         early_stopping=False)


def _work_sklearn(job, spec, state):
    import warnings

    import numpy as np
    import sklearn
    from sklearn.exceptions import ConvergenceWarning

    layers, batch, n, repeats = job["layers"], job["batch"], job["samples"], job["repeats"]
    opt_name, lr = _peer_options(job)
    lr = lr or (ADAM_LR if opt_name == "adam" else spec["lr"])
    X, y = make_data(layers, n, spec["seed"])
    clf = _sklearn_classifier(layers, batch, lr, spec["seed"], opt_name)
    classes = np.arange(layers[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        clf.partial_fit(X, y, classes=classes)  # one epoch, with the initialisation
        warm = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            clf.partial_fit(X, y)
            times.append(time.perf_counter() - t0)
    return {"version": sklearn.__version__, "warmup_seconds": warm, "param_dtype": str(clf.coefs_[0].dtype),
            "final_loss": float(clf.loss_), **_summary(times, n)}


def _predict_sklearn(job, spec, state):
    import numpy as np
    import sklearn

    layers = job["layers"]
    X, y = make_data(layers, job["samples"], spec["seed"])
    clf = _sklearn_classifier(layers, 128, spec["lr"], spec["seed"])
    clf.partial_fit(X[:256], y[:256], classes=np.arange(layers[-1]))  # initialised weights (float32 data kept)
    return {"version": sklearn.__version__, "param_dtype": str(clf.coefs_[0].dtype),
            **_predict_result(clf.predict, X, job, spec)}


_PREDICT = {"fastbp": _predict_fastbp, "torch": _predict_torch, "jax": _predict_jax, "sklearn": _predict_sklearn}
PREDICTORS = tuple(_PREDICT)


# ----------------------------------------------------------------------------- fastbp alone: products, extras, sweep

def _matmul_kernel(state):
    if "kernel" not in state:
        import numpy as np
        from numba import njit

        @njit
        def products(A, W, D, Z, G, E, n_batches):
            """Per batch and layer l: Z = A Wᵀ, G = Dᵀ A, and (l > 0) E = D W, through Numba's np.dot (BLAS)."""
            for _ in range(n_batches):
                for l in range(len(W)):
                    np.dot(A[l], W[l].T, Z[l])
                    np.dot(D[l].T, A[l], G[l])
                    if l > 0:
                        np.dot(D[l], W[l], E[l])

        state["kernel"] = products
    return state["kernel"]


def _work_matmul(job, spec, state):
    import numba
    import numpy as np
    import scipy

    layers, batch, n, dtype, repeats = job["layers"], job["batch"], job["samples"], job["dtype"], job["repeats"]
    rng = np.random.default_rng(spec["seed"])
    B = min(batch, n)
    pairs = list(itertools.pairwise(layers))
    # Tuples of same-typed arrays (one per layer): Numba indexes them in its loop.
    A = tuple(rng.standard_normal((B, a)).astype(dtype) for a, b in pairs)
    W = tuple(rng.standard_normal((b, a)).astype(dtype) for a, b in pairs)
    D = tuple(rng.standard_normal((B, b)).astype(dtype) for a, b in pairs)
    Z = tuple(np.empty((B, b), dtype) for a, b in pairs)
    G = tuple(np.empty((b, a), dtype) for a, b in pairs)
    E = tuple(np.empty((B, a), dtype) for a, b in pairs)
    products = _matmul_kernel(state)
    t0 = time.perf_counter()
    products(A, W, D, Z, G, E, 2)
    warm = time.perf_counter() - t0
    # Each batch costs the same, so time enough batches for ~0.3 s (at most an epoch's) and scale.
    n_epoch = max(1, n // B)
    t0 = time.perf_counter()
    products(A, W, D, Z, G, E, 2)
    per = max((time.perf_counter() - t0) / 2, 1e-7)
    count = max(1, min(n_epoch, int((0.05 if spec.get("quick") else 0.3) / per)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        products(A, W, D, Z, G, E, count)
        times.append(time.perf_counter() - t0)
    macs = sum(B * a * b * (3 if l > 0 else 2) for l, (a, b) in enumerate(itertools.pairwise(layers)))
    res = _summary(times, n, counted=count * B)
    res.update({"version": f"numba {numba.__version__}, scipy {scipy.__version__}", "warmup_seconds": warm,
                "batches_timed": count, "gflops": 2 * macs * count / res["median_seconds"] / 1e9})
    return res


def _work_training(job, spec, state):
    """Per-epoch wall time of fit on mnist (784-256-128-10, batch 128) with each optimizer, with validation
    and with the progress bar: what a user pays per epoch, Python included."""
    import fastbp

    layers, batch, _ = CONFIGS["mnist"]
    n, rounds, lr = job["samples"], job["repeats"], spec["lr"]
    X, y = make_data(layers, n, spec["seed"])
    Xv, yv = make_data(layers, n // 10, spec["seed"] + 2)
    optimizers = {"sgd": lambda: fastbp.SGD(lr=lr), "adam": lambda: fastbp.Adam(lr=1e-3),
                  "adamw": lambda: fastbp.AdamW(lr=1e-3), "rmsprop": lambda: fastbp.RMSprop(lr=1e-3)}
    variants = {name: {"optimizer": name} for name in TRAINING_OPTIMIZERS}
    variants["sgd + progress bar"] = {"optimizer": "sgd", "verbose": 1}
    variants["sgd + validation (10%)"] = {"optimizer": "sgd", "validation": Xv}
    variants["sgd + validation (10%) + progress bar"] = {"optimizer": "sgd", "validation": Xv, "verbose": 1}

    class Clock:
        def __init__(self):
            self.t = []

        def on_epoch_end(self, net, epoch, logs):
            self.t.append(time.perf_counter())

    def fit(v, X_, y_, epochs):
        net = make_network(layers, "float32", seed=spec["seed"])
        clock = Clock()
        val = (Xv, yv) if "validation" in v else None
        net.fit(X_, y_, epochs=epochs, batch_size=batch, optimizer=optimizers[v["optimizer"]](),
                validation_data=val, verbose=v.get("verbose", 0), callbacks=[clock])
        return clock.t[-1] - clock.t[-2] if epochs > 1 else None

    for v in variants.values():  # compile and warm every path on two batches
        fit(v, X[: 2 * batch], y[: 2 * batch], 2)
    # Interleaved rounds, so that a slow spell of the machine hits every variant alike.
    times = {k: [] for k in variants}
    for _ in range(rounds):
        for k, v in variants.items():
            times[k].append(fit(v, X, y, 2))
    base = statistics.median(times["sgd"])
    out = {"layers": layers, "batch": batch, "samples": n, "validation_samples": len(Xv), "variants": {}}
    for k, ts in times.items():
        med = statistics.median(ts)
        out["variants"][k] = {"epoch_seconds": ts, "median_seconds": med, "samples_per_second": n / med,
                              "vs_sgd": med / base - 1.0}
    return out


def _work_sweep(job, spec, state):
    """The issue-7 comparison: a 48-trial grid (lr x momentum x seed) on digits, 64-32-10, batch 32, with a
    fixed 20% validation split, by fastbp.sweep, by Network.fit one trial after another, and by
    scikit-learn's GridSearchCV(MLPClassifier(solver="sgd"), n_jobs=2)."""
    import warnings

    import numpy as np

    import fastbp
    from fastbp.datasets import digits

    X, y = digits()
    epochs = job["epochs"]
    kw = {"layers": [32], "epochs": epochs, "batch_size": 32, "validation_split": 0.2}
    fastbp.sweep({"lr": [0.1]}, X, y, **{**kw, "epochs": 1})  # compile (or load) outside the timing
    fastbp.Network([64, 32, 10]).fit(X, y, epochs=1, batch_size=32, validation_split=0.2, verbose=0)
    grid = list(itertools.product(SWEEP_SPACE["lr"], SWEEP_SPACE["momentum"], SWEEP_SPACE["seed"]))
    t_sweep, t_fit = [], []
    for _ in range(job["repeats"]):  # interleaved, so that a slow spell hits both alike
        t0 = time.perf_counter()
        res = fastbp.sweep(SWEEP_SPACE, X, y, **kw)
        t_sweep.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for lr, m, s in grid:
            fastbp.Network([64, 32, 10], seed=s).fit(X, y, epochs=epochs, batch_size=32, validation_split=0.2,
                                                     optimizer=fastbp.SGD(lr=lr, momentum=m), verbose=0)
        t_fit.append(time.perf_counter() - t0)
    out = {"trials": len(res.trials), "epochs": epochs, "sweep_seconds": t_sweep, "fit_seconds": t_fit,
           "best": {"config": res.best["config"], "val_accuracy": res.best["final"].get("val_accuracy")}}
    if job.get("sklearn"):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import GridSearchCV
        from sklearn.neural_network import MLPClassifier

        cut = len(X) - round(0.2 * len(X))  # fastbp's validation_split: the last 20% of the rows
        clf = MLPClassifier(hidden_layer_sizes=(32,), solver="sgd", batch_size=32, max_iter=epochs, alpha=0.0,
                            nesterovs_momentum=False, learning_rate="constant", early_stopping=False, tol=0.0,
                            n_iter_no_change=epochs + 1, shuffle=True)
        gs = GridSearchCV(clf, {"learning_rate_init": SWEEP_SPACE["lr"], "momentum": SWEEP_SPACE["momentum"],
                                "random_state": SWEEP_SPACE["seed"]},
                          cv=[(np.arange(cut), np.arange(cut, len(X)))], n_jobs=2, refit=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            gs.fit(X, y)
            out["sklearn_seconds"] = time.perf_counter() - t0
        out["sklearn_version"] = __import__("sklearn").__version__
    return out

