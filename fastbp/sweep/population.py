"""Trials of one shape trained side by side (``training.train_population``), cross-validation folds as
members, and a trial's record."""

import itertools
import json
import math
import time

import numpy as np

from ..specs.schedules import get_schedule
from ..training import train_population
from .spaces import GROUP_KEYS, _canonical, _network_for, _optimizer_for



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
