"""Sweeps that prune (successive halving), cross-validate, and hand back their networks."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from fastbp.datasets import digits
from fastbp.sweep import Halving, _digest, _Search

X, Y = digits()
X, Y = X[:480], Y[:480]
FIXED = dict(layers=[8], batch_size=32)
SPACE = {"lr": [0.003, 0.03, 0.3], "seed": [0, 1, 2]}  # 9 trials: 3 go on after the rung at epoch 2
PRUNE = {"name": "halving", "factor": 3, "min_epochs": 2}


def _fit(config, epochs, X_=X, y_=Y, **kw):
    net = fastbp.Network([64, *config["layers"], 10], seed=config["seed"])
    net.fit(X_, y_, epochs=epochs, batch_size=config["batch_size"], lr=config["lr"], verbose=0, **kw)
    return net


@pytest.fixture(scope="module")
def pruned():
    return fastbp.sweep(SPACE, X, Y, epochs=3, validation_split=0.25, prune=PRUNE, **FIXED)


def test_rungs_and_how_many_go_on():
    h = Halving()
    assert (h.factor, h.min_epochs) == (2, None)
    # the default first rung: an eighth of the epochs, rounded up; then doubling below the epochs
    assert h.rungs(27) == [4, 8, 16] and h.rungs(32) == [4, 8, 16] and h.rungs(33) == [5, 10, 20]
    assert h.rungs(8) == [1, 2, 4] and h.rungs(2) == [1] and h.rungs(1) == []
    assert [h.keep(n) for n in (81, 40, 11, 3, 2, 1)] == [40, 20, 5, 1, 1, 1]
    h3 = Halving(factor=3, min_epochs=1)
    assert h3.rungs(27) == [1, 3, 9] and h3.rungs(28) == [1, 3, 9, 27] and h3.rungs(1) == []
    assert [h3.keep(n) for n in (81, 27, 10, 3, 2, 1)] == [27, 9, 3, 1, 1, 1]
    assert Halving(factor=2, min_epochs=2).rungs(10) == [2, 4, 8]
    for spec in (h, h3):
        assert Halving(**{k: v for k, v in spec.get_config().items() if k != "name"}).get_config() == spec.get_config()
    for bad in ({"factor": 1}, {"min_epochs": 0}):
        with pytest.raises(ValueError, match="prune"):
            Halving(**bad)
    with pytest.raises(TypeError, match="prune"):
        Halving(factor=2.5)


def test_ranking_ties_and_missing_values():
    search = _Search(None, 10, None, Halving(factor=2), "val_loss", "min", {}, None)
    # ties go to the earlier trial; NaN and None rank last
    values = {0: 0.5, 1: 0.2, 2: 0.2, 3: math.nan, 4: None, 5: 0.2}
    assert search.halving(1, [0, 1, 2, 3, 4, 5], values) == {1, 2, 5}
    assert search.halving(1, [5, 2, 1], {1: 0.2, 2: 0.2, 5: 0.2}) == {1}
    search.mode = "max"
    assert search.halving(1, [0, 1, 2, 3, 4, 5], values) == {0, 1, 2}
    assert search.halving(1, [3, 4], {3: math.nan, 4: None}) == {3}


def test_trials_are_ranked_by_the_best_value_so_far():
    search = _Search(None, 10, None, Halving(), "val_accuracy", "max", {}, None)
    h = {"val_accuracy": [0.5, 0.9, 0.7, 0.95]}
    assert [search._value(h, r) for r in (1, 2, 3, 4)] == [0.5, 0.9, 0.9, 0.95]
    assert math.isnan(search._value(h, 5))  # did not reach the rung
    assert search._value({"val_accuracy": [math.nan, 0.4, None]}, 3) == 0.4
    assert math.isnan(search._value({"val_accuracy": [math.nan, None]}, 2))
    search.mode, search.metric = "min", "val_loss"
    assert search._value({"val_loss": [0.9, 0.3, 0.6]}, 3) == 0.3


def test_a_pruned_sweep_keeps_the_best_at_each_rung_and_stops_the_rest(pruned):
    assert len(pruned) == 9
    # the reference: every trial fit alone for two epochs, ranked by its best val_accuracy in them, ties
    # to the earlier trial
    fits = [_fit(t["config"], 2, validation_split=0.25).history["val_accuracy"] for t in pruned.trials]
    best = [max(h) for h in fits]
    kept = sorted(range(9), key=lambda i: (-best[i], i))[:3]
    for i, t in enumerate(pruned.trials):
        if i in kept:
            assert "pruned_at_epoch" not in t and len(t["history"]["loss"]) == 3
            assert t["params_digest"] == _digest(_fit(t["config"], 3, validation_split=0.25).params)
        else:
            assert t["pruned_at_epoch"] == 2 and len(t["history"]["loss"]) == 2
            assert t["final"]["val_accuracy"] == fits[i][-1]
    assert "pruned_at_epoch" not in pruned.best


def test_a_resumed_pruned_sweep_reaches_the_same_result(pruned, tmp_path):
    path = tmp_path / "t.jsonl"
    kw = dict(epochs=3, validation_split=0.25, prune=PRUNE, results=path, **FIXED)
    fastbp.sweep(SPACE, X, Y, **kw)
    lines = path.read_text().splitlines()
    assert len(lines) == 9 and sum("pruned_at_epoch" in json.loads(line) for line in lines[:6]) == 6
    table = lambda res: [(t["config"]["lr"], t["config"]["seed"], t.get("pruned_at_epoch"),  # noqa: E731
                          t["params_digest"], t["final"]) for t in res.trials]
    old = [json.dumps({k: v for k, v in json.loads(line).items() if k not in ("network", "fit")}) for line in lines]
    for keep in (2, 7):  # killed after some pruned trials were written; after all pruned ones and a finished one
        path.write_text("\n".join(lines[:keep]) + "\n" + lines[keep][:20])
        with pytest.warns(UserWarning, match=f"line {keep + 1} is not a trial record"):
            again = fastbp.sweep(SPACE, X, Y, resume=True, **kw)
        assert table(again) == table(pruned)
    # a file of records without the settings split (written before it): they get it on resuming
    path.write_text("\n".join(old) + "\n")
    again = fastbp.sweep(SPACE, X, Y, resume=True, **kw)
    assert [(t["network"], t["fit"]) for t in again.trials] == [(t["network"], t["fit"]) for t in pruned.trials]


def test_halving_with_epochs_swept_is_refused():
    with pytest.raises(ValueError, match="epochs"):
        fastbp.sweep({"epochs": [2, 3]}, X, Y, validation_split=0.25, prune="halving", **FIXED)
    with pytest.raises(ValueError, match="prune"):
        fastbp.sweep(SPACE, X, Y, validation_split=0.25, prune="hyperband", **FIXED)


def test_halving_on_dask_gives_the_local_result(pruned):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        res = fastbp.sweep(SPACE, X, Y, epochs=3, validation_split=0.25, prune=PRUNE, backend="dask",
                           scheduler=c.scheduler_address, **FIXED)
    assert [(t["config"], t.get("pruned_at_epoch"), t["params_digest"]) for t in res.trials] == \
        [(t["config"], t.get("pruned_at_epoch"), t["params_digest"]) for t in pruned.trials]
    # the networks came back from the workers
    np.testing.assert_array_equal(res.best_network().params, pruned.best_network().params)


def test_halving_with_optuna_prunes_through_its_pruner():
    pytest.importorskip("optuna")
    res = fastbp.sweep({"lr": fastbp.loguniform(1e-4, 1.0)}, X, Y, method="optuna", trials=10, epochs=4,
                       validation_split=0.25, prune=Halving(factor=2), **FIXED)
    assert len(res) == 10
    stopped = [t for t in res.trials if "pruned_at_epoch" in t]
    assert stopped and all(len(t["history"]["loss"]) == t["pruned_at_epoch"] in (1, 2) for t in stopped)
    assert any(len(t["history"]["loss"]) == 4 for t in res.trials)


# ----------------------------------------------------------------------------- cross-validation

@pytest.fixture(scope="module")
def crossed():
    return fastbp.sweep({"lr": [0.03, 0.3]}, X, Y, epochs=2, cv=3, seed=0, **FIXED)


def test_each_fold_is_fit_on_the_other_folds_validated_on_its_own(crossed):
    folds = np.array_split(np.arange(len(X)), 3)
    for t in crossed.trials:
        assert len(t["folds"]) == 3
        for k, f in enumerate(folds):
            rest = np.setdiff1d(np.arange(len(X)), f)
            net = _fit(t["config"], 2, X[rest], Y[rest], validation_data=(X[f], Y[f]))
            assert t["params_digest"][k] == _digest(net.params)
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                assert t["folds"][k][key] == net.history[key][-1], key
        for key in ("loss", "val_loss", "val_accuracy"):
            assert t["final"][key] == pytest.approx(np.mean([f[key] for f in t["folds"]]), rel=1e-12)


def test_shuffled_folds_are_cut_from_rows_permuted_with_the_seed():
    res = fastbp.sweep({"lr": [0.3]}, X, Y, epochs=1, cv=2, shuffle=True, seed=5, **FIXED)
    perm = np.random.default_rng(5).permutation(len(X))
    Xp, Yp = X[perm], Y[perm]
    net = _fit(res.trials[0]["config"], 1, Xp[240:], Yp[240:], validation_data=(Xp[:240], Yp[:240]))
    assert res.trials[0]["params_digest"][0] == _digest(net.params)
    assert res.trials[0]["folds"][0]["val_loss"] == net.history["val_loss"][-1]


def test_cross_validation_with_halving_ranks_by_the_fold_mean():
    res = fastbp.sweep({"lr": [0.003, 0.03, 0.3, 1.0]}, X, Y, epochs=2, cv=2, prune=Halving(factor=2), **FIXED)
    at_one = [t["history"]["val_accuracy"][0] for t in res.trials]  # the default rung of 2 epochs: epoch 1
    kept = sorted(range(4), key=lambda i: (-at_one[i], i))[:2]
    assert [i for i, t in enumerate(res.trials) if "pruned_at_epoch" not in t] == sorted(kept)
    for t in res.trials:
        if "pruned_at_epoch" in t:  # its folds' finals are their figures at the rung
            assert at_one[res.trials.index(t)] == pytest.approx(np.mean([f["val_accuracy"] for f in t["folds"]]))


@pytest.mark.parametrize("kwargs, message", [
    (dict(cv=3, validation_split=0.2), "cv"),
    (dict(cv=1), "cv"),
    (dict(cv=10_000), "cv"),
    (dict(shuffle=True, validation_split=0.2), "shuffle"),
])
def test_bad_cross_validation(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fastbp.sweep({"lr": [0.1]}, X, Y, epochs=1, **FIXED, **kwargs)


# ----------------------------------------------------------------------------- the networks back

def test_best_network_is_fit_of_its_settings_kept_or_retrained(pruned):
    best = pruned.best
    ref = fastbp.Network.from_config(best["network"])
    ref.fit(X, Y, validation_split=0.25, verbose=0, **best["fit"])
    kept = pruned.best_network()
    np.testing.assert_array_equal(kept.params, ref.params)
    again = fastbp.SweepResult(pruned.trials, pruned.metric, pruned.mode, retrain=pruned._retrain)
    np.testing.assert_array_equal(again.best_network().params, ref.params)
    np.testing.assert_array_equal(kept.predict(X[:5]), ref.predict(X[:5]))


def test_a_pruned_trial_with_a_schedule_is_retrained_to_where_it_stopped():
    res = fastbp.sweep({"lr": [0.01, 0.3], "seed": [0, 1]}, X, Y, epochs=4, validation_split=0.25,
                       schedule=fastbp.CosineLR(), prune=Halving(factor=2, min_epochs=2), **FIXED)
    stopped = next(t for t in res.trials if "pruned_at_epoch" in t)
    kept = res.network(stopped)
    assert kept.epochs_trained == 2
    again = fastbp.SweepResult(res.trials, res.metric, res.mode, retrain=res._retrain).network(stopped)
    np.testing.assert_array_equal(again.params, kept.params)
    assert _digest(kept.params) == stopped["params_digest"]


def test_a_cross_validated_trial_is_refit_on_all_rows(crossed):
    rec = crossed.best
    ref = fastbp.Network.from_config(rec["network"])
    ref.fit(X, Y, verbose=0, **rec["fit"])
    np.testing.assert_array_equal(crossed.best_network().params, ref.params)
    with pytest.raises(ValueError, match="retrain"):
        fastbp.SweepResult(crossed.trials, "val_accuracy", "max").best_network()


CLI_SPEC = """
[data]
path = "digits"

[train]
layers = [8]
epochs = 3

[search]
method = "grid"
prune = "halving"
cv = 2

[space]
lr = [0.01, 0.1, 0.3]
seed = [0, 1]
"""


def test_cli_sweep_prunes_cross_validates_and_writes_the_best_model(tmp_path):
    (tmp_path / "s.toml").write_text(CLI_SPEC)
    cli = [sys.executable, "-m", "fastbp.cli"]
    r = subprocess.run([*cli, "sweep", "s.toml", "--out", "o"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "pruned at epoch 1" in r.stdout and "best_model.npz" in r.stdout
    records = [json.loads(line) for line in (tmp_path / "o" / "trials.jsonl").read_text().splitlines()]
    # the default Halving: rungs at epochs 1 and 2 (factor 2): 6 trials, 3 go on, then 1
    assert len(records) == 6 and sum("pruned_at_epoch" in t for t in records) == 5
    assert all(len(t["folds"]) == 2 for t in records)
    model = fastbp.load(tmp_path / "o" / "best_model.npz")
    assert model.epochs_trained == 3
    r = subprocess.run([*cli, "evaluate", "o/best_model.npz", "--data", "digits"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accuracy"] > 0.5
    r = subprocess.run([*cli, "predict", "o/best_model.npz", "--data", "digits", "--out", "p.csv"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "p.csv").read_text().splitlines()) > 1000
