"""The sweep: trials rung by rung over a backend (``_Search``), and ``sweep`` itself."""

import math
import os

import numpy as np

from ..common import checks
from ..specs.parse import parse_spec
from ..training import DEFAULTS as TRAINING_DEFAULTS
from ..training import split_validation
from .backends import _Dask, _Local, _split_for_workers
from .population import _advance, _fit_settings, _fold_bounds, _groups, _history, _record
from .prune import PRUNERS, Halving
from .results import SweepResult, _append, _read_results
from .spaces import (DEFAULTS, KNOWN_KEYS, MAX_TRIALS, _canonical, _check_settings, _grid, _network_for, _output_width,
                     _parse_space, _random, choice, loguniform, uniform)


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
