"""fastbp.MLPClassifier / MLPRegressor against scikit-learn itself, and scikit-learn's estimator checks."""

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn import neural_network as sk  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastbp import MLPClassifier, MLPRegressor  # noqa: E402


# The checks run on float64 estimators: one of them (check_sample_weight_equivalence_on_dense_data) asks
# that integer weights and repeated rows give predictions equal to rtol 1e-7, which float32 training cannot
# (its sums are rounded in another order: 1 ulp for a regression, ~1e-4 after 200 Adam epochs); every other
# check passes with the float32 default too.
@parametrize_with_checks([MLPClassifier(dtype="float64"), MLPRegressor(dtype="float64")])
def test_sklearn_checks(estimator, check):
    check(estimator)


def _data(n=60, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(d, k))
    return X, X @ W, np.argmax(X @ W + 0.3 * rng.normal(size=(n, k)), axis=1)


def _same_run(ours, theirs, X, y, **kw):
    ours.set_params(**kw)
    theirs.set_params(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    return ours, theirs


SGD_ONE_EPOCH = dict(solver="sgd", momentum=0.0, shuffle=False, max_iter=1, batch_size=16, learning_rate_init=0.1,
                     random_state=3, dtype="float64", hidden_layer_sizes=(7, 4), alpha=0.0)


@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "regression", "regression2"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_one_sgd_epoch_gives_sklearns_weights(task, activation):
    X, R, c = _data()
    y = {"multiclass": c, "binary": c == 1, "multilabel": R > 0, "regression": R[:, 0], "regression2": R[:, :2]}[task]
    regression = task.startswith("regression")
    ours = MLPRegressor() if regression else MLPClassifier()
    theirs = sk.MLPRegressor() if regression else sk.MLPClassifier()
    kw = {k: v for k, v in SGD_ONE_EPOCH.items() if k != "dtype"}
    ours.set_params(dtype="float64")
    ours, theirs = _same_run(ours, theirs, X, y, activation=activation, **kw)
    # The starting weights are scikit-learn's (same draws), the 4 batches its updates.
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-10)
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_outputs_ == theirs.n_outputs_ and ours.n_layers_ == theirs.n_layers_
    assert ours.t_ == theirs.t_ and ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.predict(X) if regression else ours.predict_proba(X),
                               theirs.predict(X) if regression else theirs.predict_proba(X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("task", ["multiclass", "binary", "regression", "regression2"])
def test_l2_and_sample_weights_give_sklearns_weights(task):
    X, R, c = _data()
    y = {"multiclass": c, "binary": c == 1, "regression": R[:, 0], "regression2": R[:, :2]}[task]
    regression = task.startswith("regression")
    w = np.random.default_rng(1).uniform(0, 2, size=len(X))
    w[:7] = 0  # batch boundaries carry zero weights too
    ours = MLPRegressor(dtype="float64") if regression else MLPClassifier(dtype="float64")
    theirs = sk.MLPRegressor() if regression else sk.MLPClassifier()
    kw = {**{k: v for k, v in SGD_ONE_EPOCH.items() if k != "dtype"}, "alpha": 0.3, "max_iter": 2}
    ours.set_params(**kw)
    theirs.set_params(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y, sample_weight=w)
        theirs.fit(X, y, sample_weight=w)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # loss_ is scikit-learn's (its penalty within an epoch: exact for one output, close for several).
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9 if task != "regression2" else 1e-2)
    assert ours.score(X, y, sample_weight=w) == pytest.approx(theirs.score(X, y, sample_weight=w), rel=1e-9)


def test_class_weight_is_sample_weight_per_class():
    X, _, c = _data()
    kw = {**SGD_ONE_EPOCH, "max_iter": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(class_weight={0: 2.0, 1: 0.5, 2: 1.0}, **kw).fit(X, c, sample_weight=np.full(len(X), 3.0))
        b = MLPClassifier(**kw).fit(X, c, sample_weight=3.0 * np.array([2.0, 0.5, 1.0])[c])
        balanced = MLPClassifier(class_weight="balanced", **kw).fit(X, c)
        counts = np.bincount(c)
        ref = MLPClassifier(**kw).fit(X, c, sample_weight=len(c) / (3 * counts[c]))
    for u, v in zip(a.coefs_ + balanced.coefs_, b.coefs_ + ref.coefs_):
        np.testing.assert_allclose(u, v, rtol=1e-12)


def test_invscaling_epochs_give_sklearns_weights():
    X, _, c = _data()
    kw = {**{k: v for k, v in SGD_ONE_EPOCH.items() if k != "dtype"}, "max_iter": 4, "learning_rate": "invscaling",
          "power_t": 0.25}
    ours, theirs = _same_run(MLPClassifier(dtype="float64"), sk.MLPClassifier(), X, c, **kw)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


@pytest.mark.parametrize("learning_rate", ["constant", "adaptive"])
def test_stopping_rule_and_adaptive_rate_as_sklearn(learning_rate):
    X, _, c = _data()
    kw = {**{k: v for k, v in SGD_ONE_EPOCH.items() if k != "dtype"}, "max_iter": 60, "tol": 0.05,
          "n_iter_no_change": 2, "learning_rate": learning_rate, "learning_rate_init": 0.2}
    ours, theirs = _same_run(MLPClassifier(dtype="float64"), sk.MLPClassifier(), X, c, **kw)
    assert ours.n_iter_ == theirs.n_iter_ < 60
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_momentum_and_adam_follow_sklearn_closely():
    X, _, c = _data()
    for solver, kw in (("sgd", dict(momentum=0.9, nesterovs_momentum=True)), ("adam", {})):
        ours, theirs = _same_run(MLPClassifier(dtype="float64"), sk.MLPClassifier(), X, c, solver=solver,
                                 shuffle=False, max_iter=5, batch_size=16, random_state=1, alpha=0.0, **kw)
        # SGD momentum with a constant rate is scikit-learn's update exactly; Adam differs only in
        # where epsilon enters (docs/sklearn.md), far below this tolerance.
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-6)


def test_lbfgs_close_to_sklearn():
    X, R, c = _data(n=80)
    y = np.tanh(R[:, 0])
    kw = dict(solver="lbfgs", hidden_layer_sizes=(6,), activation="tanh", random_state=0, max_iter=300, alpha=1e-3)
    ours, theirs = _same_run(MLPRegressor(dtype="float64"), sk.MLPRegressor(), X, y, **kw)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=0.05, abs=1e-4)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), abs=0.01)
    assert 0 < ours.n_iter_ <= 300
    # The first evaluation is scikit-learn's cost at the same starting weights: 3 iterations stay together.
    kw.update(max_iter=3, alpha=0.1)
    w = np.linspace(0.5, 1.5, len(X))
    ours = MLPClassifier(dtype="float64", **kw)
    theirs = sk.MLPClassifier(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, c, sample_weight=w)
        theirs.fit(X, c, sample_weight=w)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-7)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_any_labels_and_probabilities():
    X, _, c = _data(n=90)
    for labels in (np.array(["cat", "dog", "emu"]), np.array([5, 15, 40])):
        y = labels[c]
        clf = MLPClassifier(max_iter=300, random_state=0, learning_rate_init=0.01).fit(X, y)
        assert list(clf.classes_) == sorted(labels.tolist())
        assert set(clf.predict(X)) <= set(labels.tolist())
        assert clf.score(X, y) > 0.8
        P = clf.predict_proba(X)
        np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-5)
        np.testing.assert_array_equal(clf.classes_[P.argmax(axis=1)], clf.predict(X))
        np.testing.assert_allclose(clf.predict_log_proba(X), np.log(P))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        binary = MLPClassifier(max_iter=5, random_state=0).fit(X, np.where(c == 1, 15, 5))
    assert binary.coefs_[-1].shape[1] == 1 and binary.predict_proba(X).shape == (90, 2)


def test_partial_fit_classes_and_unknown_class():
    X, _, c = _data(n=90)
    clf = MLPClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, c)
    clf.partial_fit(X[:30], c[:30], classes=[0, 1, 2, 3])
    for _ in range(3):
        clf.partial_fit(X, c)
    assert clf.n_iter_ == 1 and clf.t_ == 30 + 3 * 90 and len(clf.loss_curve_) == 4
    assert clf.predict_proba(X).shape == (90, 4)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X[:5], np.array([0, 1, 2, 9, 9]))


def test_assigned_weights_predict_and_warm_start_continues():
    X, R, _ = _data()
    y = R[:, 0]
    reg = MLPRegressor(hidden_layer_sizes=(5,), solver="sgd", max_iter=3, random_state=0, dtype="float64",
                       shuffle=False, momentum=0.0, alpha=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
        ref = sk.MLPRegressor(hidden_layer_sizes=(5,), solver="sgd", max_iter=3, random_state=0, shuffle=False,
                              momentum=0.0, warm_start=True, alpha=0.0).fit(X, y)
    reg.coefs_ = [w.copy() for w in ref.coefs_]
    reg.intercepts_ = [b.copy() for b in ref.intercepts_]
    np.testing.assert_allclose(reg.predict(X), ref.predict(X), rtol=1e-10)
    reg.set_params(warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
        ref.fit(X, y)
    for a, b in zip(reg.coefs_, ref.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_pickle_clone_pipeline_gridsearch():
    X, _, c = _data(n=90)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=200, random_state=0).fit(X, c)
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert clone(clf).get_params() == clf.get_params()
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0,
                                                         learning_rate_init=0.01))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert cross_val_score(pipe, X, c, cv=3).mean() > 0.8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid = GridSearchCV(MLPClassifier(max_iter=50, random_state=0), {"alpha": [1e-4, 1e-2]}, cv=2).fit(X, c)
    assert grid.best_params_["alpha"] in (1e-4, 1e-2)


def test_early_stopping_as_sklearn():
    X, _, c = _data(n=200)
    clf = MLPClassifier(early_stopping=True, random_state=0, max_iter=200, n_iter_no_change=3).fit(X, c)
    assert clf.best_loss_ is None and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.n_iter_ < 200
    with pytest.raises(ValueError, match="early_stopping"):
        clf.partial_fit(X, c)


def test_dropout_trains_with_masks_and_predicts_without():
    X, _, c = _data(n=90)
    kw = dict(hidden_layer_sizes=(16,), max_iter=20, random_state=0, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = MLPClassifier(**kw).fit(X, c)
        dropped = MLPClassifier(dropout=0.5, **kw).fit(X, c)
        again = MLPClassifier(dropout=0.5, **kw).fit(X, c)
    assert not np.allclose(plain.coefs_[0], dropped.coefs_[0])
    np.testing.assert_array_equal(dropped.coefs_[0], again.coefs_[0])  # masks from random_state
    np.testing.assert_array_equal(dropped.predict_proba(X), dropped.predict_proba(X))
    with pytest.raises(ValueError, match="dropout"):
        MLPClassifier(dropout=0.5, solver="lbfgs").fit(X, c)


def test_bad_parameters_name_the_parameter():
    X, _, c = _data()
    for kw, name in ((dict(solver="newton"), "solver"), (dict(hidden_layer_sizes=(3, 0)), "hidden_layer_sizes"),
                     (dict(learning_rate="fast"), "learning_rate"), (dict(momentum=1.5), "momentum")):
        with pytest.raises(ValueError, match=name):
            MLPClassifier(**kw).fit(X, c)
    with pytest.raises(ValueError, match="loss"):
        MLPRegressor(loss="poisson").fit(X, c.astype(float))


def test_import_fastbp_does_not_import_sklearn():
    import subprocess
    import sys

    code = "import sys, fastbp; assert 'sklearn' not in sys.modules; fastbp.MLPRegressor; assert 'sklearn' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("learning_rate", ["constant", "adaptive"])
def test_rule_inside_the_compiled_training_is_the_rule_after_each_epoch(learning_rate, capsys):
    """scikit-learn's stopping rule judged inside the compiled training (the default) gives bitwise what it
    gives judged in Python after each epoch (as it is with verbose=True), across warm-started fits too."""
    X, _, y = _data()
    kw = dict(solver="sgd", hidden_layer_sizes=(7,), learning_rate=learning_rate, learning_rate_init=0.3,
              max_iter=80, tol=0.01, n_iter_no_change=3, random_state=2, warm_start=True)
    runs = []
    for verbose in (False, True):
        est = MLPClassifier(verbose=verbose, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
            first = (est.n_iter_, list(est.loss_curve_))
            est.set_params(max_iter=5).fit(X, y)
        runs.append((est, first))
    capsys.readouterr()
    (fast, fast_first), (slow, slow_first) = runs
    assert fast_first == slow_first and fast_first[0] < 80
    assert fast.loss_curve_ == slow.loss_curve_
    assert (fast.n_iter_, fast.t_, fast.loss_, fast.best_loss_, fast._no_improvement_count) == \
        (slow.n_iter_, slow.t_, slow.loss_, slow.best_loss_, slow._no_improvement_count)
    for a, b in zip(fast.coefs_ + fast.intercepts_, slow.coefs_ + slow.intercepts_):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("labels", [[3, 7], ["b", "a", "c"], [-1.0, 0.0, 2.0, 9.0]])
def test_targets_are_label_binarizers(labels):
    """fit's targets (encoded here, not by LabelBinarizer.transform) are LabelBinarizer's, for any labels."""
    from sklearn.preprocessing import LabelBinarizer

    rng = np.random.default_rng(0)
    y = np.array(labels, dtype=object if isinstance(labels[0], str) else None)[rng.integers(0, len(labels), 40)]
    y[: len(labels)] = labels
    est = MLPClassifier(max_iter=1).fit(rng.normal(size=(40, 3)), y)
    np.testing.assert_array_equal(est._encode(y), LabelBinarizer().fit(y).transform(y))
    part = MLPClassifier().partial_fit(rng.normal(size=(3, 3)), y[:3], classes=labels)
    np.testing.assert_array_equal(part._encode(y[:3]), LabelBinarizer().fit(labels).transform(y[:3]))
