"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor``, drop-in for scikit-learn's.

They take scikit-learn's parameters with its names, defaults and meanings, and
keep its attributes (``coefs_`` in its (n_in, n_out) shapes, ``loss_curve_``,
``classes_`` ...), but train a ``fastbp.Network`` through the one training path
(``training.fit``): its compiled training runs many epochs per call with
scikit-learn's stopping rule on the training loss (tol / n_iter_no_change)
judged inside; early stopping on a validation score, verbose output and
multi-output regression (whose reported loss is not fastbp's) judge it in a
callback after each epoch instead. ``solver="lbfgs"`` runs
SciPy's L-BFGS-B over the flat parameter vector with ``Network.loss_and_grad``.

scikit-learn is imported here only, and fastbp imports this module only when
one of these classes is asked for.
"""

import copy
import numbers
import warnings

import numpy as np
import scipy.optimize
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .common import checks
from . import training
from .specs.activations import get_activation
from .training.callbacks import EarlyStopping
from .network import Network
from .specs.optimizers import SGD, Adam
from .specs.schedules import InvScaling

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names that fastbp spells otherwise.
_ACTIVATION_NAMES = {"logistic": "sigmoid"}
# scikit-learn's names of the output activations, for out_activation_.
_OUT_NAMES = {"sigmoid": "logistic"}
_SOLVERS = ("sgd", "adam", "lbfgs")
_LEARNING_RATES = ("constant", "invscaling", "adaptive")
# scikit-learn's adaptive learning rate: divide by 5 on a plateau, stop below this.
_ADAPTIVE_FACTOR, _ADAPTIVE_MIN_LR = 5.0, 1e-6


def _check_real(value, name, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    bad = (low is not None and (value < low or (low_open and value == low))) or (
        high is not None and (value > high or (high_open and value == high)))
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name}: expected a value in {lo}{low}, {'inf' if high is None else high}{hi}, got {value!r}")
    return float(value)


def _check_count(value, name, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected a bool, got {value!r}")
    return bool(value)


def _accuracy(y, pred, sample_weight=None):
    """scikit-learn's ``accuracy_score(y, pred, sample_weight=sample_weight)``. Without weights, for 1-D arrays
    of integers or booleans of the same length, its checks of the targets (binary or multiclass, one kind of
    label) cannot fail and it is the mean of ``y == pred``: taken directly, as those checks cost more than
    a small data set's prediction (wine: 0.35 ms)."""
    if (sample_weight is None and isinstance(y, np.ndarray) and isinstance(pred, np.ndarray) and y.ndim == 1
            and y.shape == pred.shape and y.dtype.kind in "biu" and pred.dtype.kind in "biu"):
        return float(np.mean(y == pred))
    return accuracy_score(y, pred, sample_weight=sample_weight)


def _r2(y, pred, sample_weight=None):
    """scikit-learn's ``r2_score(y, pred, sample_weight=sample_weight)``. Without weights, for 1-D float64
    arrays of the same length (two rows or more), all finite, whose y is not constant: its arithmetic
    (on (n, 1) columns, as it reshapes them) without its checks of the targets, which cannot fail there."""
    if (sample_weight is None and isinstance(y, np.ndarray) and isinstance(pred, np.ndarray) and y.ndim == 1
            and y.shape == pred.shape and y.shape[0] >= 2 and y.dtype == np.float64 and pred.dtype == np.float64
            and np.isfinite(y).all() and np.isfinite(pred).all()):
        yt, yp = y.reshape(-1, 1), pred.reshape(-1, 1)
        numerator = ((yt - yp) ** 2).sum(axis=0)[0]
        denominator = ((yt - np.average(yt, axis=0)) ** 2).sum(axis=0)[0]
        if denominator != 0.0:
            return float(1.0 - numerator / denominator)
    return r2_score(y, pred, sample_weight=sample_weight)


def _store_arguments(est, args):
    """scikit-learn's constructor: each argument stored under its own name, unchanged and unchecked."""
    for name, value in args.items():
        if name != "self":
            setattr(est, name, value)


class _StopRule:
    """scikit-learn's per-epoch rule, as a ``training.fit`` callback: records loss_curve_ (and
    validation_scores_), counts epochs without improvement by ``tol``, keeps the best weights
    under early stopping, and stops training after ``n_iter_no_change`` such epochs."""

    def __init__(self, est, Xv, yv, swv):
        self.est, self.Xv, self.yv, self.swv = est, Xv, yv, swv
        self.triggered = False

    def __call__(self, net, epoch, logs):
        est = self.est
        loss = est._reported_loss(logs["loss"], est._sw_sum, est._n_batches)
        est.loss_ = loss
        est.loss_curve_.append(loss)
        est.n_iter_ += 1
        est.t_ += est._n_train
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        if self.Xv is not None:
            score = est._score_output(net.forward(self.Xv), self.yv, self.swv)
            est.validation_scores_.append(score)
            if est.verbose:
                print(f"Validation score: {score:f}")
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_params = net.params.copy()
        else:
            if loss > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if loss < est.best_loss_:
                est.best_loss_ = loss
        if est._no_improvement_count > est.n_iter_no_change:
            self.triggered = True
            return True
        return False


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, training, weights."""

    # ------------------------------------------------------------------ parameters
    def _hidden_sizes(self):
        h = self.hidden_layer_sizes
        h = list(h) if hasattr(h, "__iter__") and not isinstance(h, str) else [h]
        for v in h:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v <= 0:
                raise ValueError(f"hidden_layer_sizes: expected positive integers, got {self.hidden_layer_sizes!r}")
        return [int(v) for v in h]

    def _check_params(self):
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver: expected one of {list(_SOLVERS)}, got {self.solver!r}")
        if self.learning_rate not in _LEARNING_RATES:
            raise ValueError(f"learning_rate: expected one of {list(_LEARNING_RATES)}, got {self.learning_rate!r}")
        _check_real(self.alpha, "alpha", 0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _check_count(self.batch_size, "batch_size", 1)
        _check_real(self.learning_rate_init, "learning_rate_init", 0.0, low_open=True)
        _check_real(self.power_t, "power_t", 0.0)
        _check_count(self.max_iter, "max_iter", 1)
        _check_count(self.max_fun, "max_fun", 1)
        _check_count(self.n_iter_no_change, "n_iter_no_change", 1)
        _check_real(self.tol, "tol", 0.0)
        _check_real(self.momentum, "momentum", 0.0, 1.0)
        _check_real(self.validation_fraction, "validation_fraction", 0.0, 1.0, high_open=True)
        _check_real(self.beta_1, "beta_1", 0.0, 1.0, high_open=True)
        _check_real(self.beta_2, "beta_2", 0.0, 1.0, high_open=True)
        _check_real(self.epsilon, "epsilon", 0.0, low_open=True)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            _check_bool(getattr(self, name), name)
        if self.solver == "lbfgs" and np.any(np.asarray(self.dropout, dtype=object) != 0):
            raise ValueError(f"dropout: only the stochastic solvers ('sgd', 'adam') train with dropout, got "
                             f"dropout={self.dropout!r} with solver='lbfgs'")
        if not isinstance(self.verbose, (bool, np.bool_, numbers.Integral)):
            raise ValueError(f"verbose: expected a bool or an int, got {self.verbose!r}")
        return self._hidden_sizes()

    def _hidden_activation(self):
        act = self.activation
        return _ACTIVATION_NAMES.get(act, act) if isinstance(act, str) else act

    def _optimizer(self, lr):
        if self.solver == "adam":
            return Adam(lr=lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        nesterov = self.nesterovs_momentum and self.momentum > 0
        return SGD(lr=lr, momentum=self.momentum, nesterov=nesterov)

    # ------------------------------------------------------------------ weights
    def _init_weights(self, sizes, rng):
        """scikit-learn's initialisation (Glorot uniform, factor 2 for logistic, from ``random_state``),
        drawn in its order, so that a ``random_state`` starts from scikit-learn's very weights."""
        dtype = np.dtype(self.dtype)
        factor = 2.0 if self._hidden_activation() == "sigmoid" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
            self.intercepts_.append(rng.uniform(-bound, bound, fan_out).astype(dtype))

    def _load_weights(self):
        """Copy ``coefs_`` and ``intercepts_`` (which the user may have assigned) into the network."""
        net = self.network_
        for l, (W, b) in enumerate(zip(self.coefs_, self.intercepts_), start=1):
            W, b = np.asarray(W), np.asarray(b)
            if W.shape != net.weights(l).shape[::-1] or b.shape != net.biases(l).shape:
                raise ValueError(f"coefs_[{l - 1}], intercepts_[{l - 1}]: expected shapes "
                                 f"{net.weights(l).shape[::-1]} and {net.biases(l).shape}, got {W.shape} and {b.shape}")
            net.weights(l)[...] = W.T
            net.biases(l)[...] = b

    def _store_weights(self):
        net = self.network_
        L = len(net.sizes) - 1
        self.coefs_ = [net.weights(l).T.copy() for l in range(1, L + 1)]
        self.intercepts_ = [net.biases(l).copy() for l in range(1, L + 1)]

    # ------------------------------------------------------------------ fitting
    def _reported_loss(self, loss, weight_sum, n_batches=1):
        """scikit-learn's loss_ from fastbp's (weighted) mean cost plus L2 penalty: scikit-learn also averages
        squared_error over the outputs, the penalty not (which an epoch adds once per batch). For several
        outputs the penalty is taken at the current weights (within an epoch it changes with each batch,
        and with sample weights each batch's share differs: there the figure is close, not exact)."""
        m = self.n_outputs_
        if self._is_classifier() or m == 1:
            return loss
        net = self.network_
        penalty = 0.5 * float(self.alpha) * sum(
            float(np.vdot(net.weights(l), net.weights(l))) for l in range(1, len(net.sizes))) * n_batches / weight_sum
        return (loss - penalty) / m + penalty

    def _is_classifier(self):
        return isinstance(self, ClassifierMixin)

    def _start(self, X, Y, hidden, rng):
        """A new network for (X, Y) with scikit-learn's starting weights, and the training records reset."""
        out, loss = self._output_and_loss()
        sizes = [X.shape[1], *hidden, Y.shape[1]]
        self._init_weights(sizes, rng)
        self.network_ = Network(sizes, activation=self._hidden_activation(), output=out, loss=loss, dtype=self.dtype,
                                dropout=self.dropout)
        self.n_outputs_ = Y.shape[1]
        self.n_layers_ = len(hidden) + 2
        self.out_activation_ = _OUT_NAMES.get(out, out)
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self._lr = float(self.learning_rate_init)
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
        else:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = None, None, np.inf

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self._check_params()
        first = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y, y = self._validate(X, y, incremental, reset=first)
        if sample_weight is not None:
            sample_weight = checks.check_sample_weight(sample_weight, X.shape[0])
        sample_weight = self._with_class_weight(y, sample_weight)
        rng = check_random_state(self.random_state)
        if first:
            self._start(X, Y, hidden, rng)
        elif Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y: expected {self.n_outputs_} outputs as in the previous fit, got {Y.shape[1]}")
        self._load_weights()
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, Y, sample_weight)
        else:
            self._fit_stochastic(X, Y, sample_weight, rng, incremental)
        self._store_weights()
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large "
                             "values and need to be preprocessed.")
        return self

    def _fit_stochastic(self, X, Y, sw, rng, incremental):
        net = self.network_
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if not incremental:
            net.state.optimizer = None  # scikit-learn starts its optimizer afresh on every fit
            self._lr = float(self.learning_rate_init)
        Xv = yv = swv = None
        if self.early_stopping:
            stratify = Y if self._is_classifier() and self.n_outputs_ == 1 else None
            parts = train_test_split(X, Y, *([] if sw is None else [sw]), random_state=rng,
                                     test_size=self.validation_fraction, stratify=stratify)
            X, Xv, Y, yv = parts[:4]
            if sw is not None:
                sw, swv = parts[4:]
            if Xv.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                                 "your dataset.")
            if self._is_classifier():
                yv = self._decode(yv)
            self._best_params = net.params.copy()
        # Shuffling and dropout masks continue random_state's stream after the draws scikit-learn makes
        # (weights, validation split).
        seq = np.random.SeedSequence(rng.randint(np.iinfo(np.int32).max))
        net.state.rng = np.random.default_rng(seq)
        net.state.dropout_key = int(seq.generate_state(1, np.uint64)[0])
        n = X.shape[0]
        self._n_train = n
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))
        schedule = None
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            schedule = InvScaling(power=self.power_t, scale=n)
        self._sw_sum = n if sw is None else float(sw.sum())
        self._n_batches = -(-n // batch_size)
        rule = _StopRule(self, Xv, yv, swv)
        # Where scikit-learn's rule judges the epoch's cost as fastbp logs it and nothing is printed, the rule
        # runs inside the compiled training (several epochs per call), else as a callback after each epoch.
        compiled = not (self.early_stopping or self.verbose) and (self._is_classifier() or self.n_outputs_ == 1)
        self.n_iter_ = 0
        epochs = 1 if incremental else self.max_iter
        triggered = False
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="fit: ", category=UserWarning)  # fastbp's scale hint
            while epochs > 0:
                args = dict(epochs=epochs, batch_size=batch_size, optimizer=self._optimizer(self._lr),
                            schedule=schedule, shuffle=bool(self.shuffle), verbose=0, sample_weight=sw,
                            l2=float(self.alpha))
                if compiled:
                    hist, triggered = self._fit_with_rule(net, X, Y, args)
                else:
                    rule.triggered = False
                    hist = training.fit(net, X, Y, callbacks=[rule], **args)
                    triggered = rule.triggered
                epochs -= len(hist)
                if not triggered:
                    break
                if self.verbose:
                    what = "Validation score" if self.early_stopping else "Training loss"
                    print(f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                          f"consecutive epochs.", end=" ")
                if self.solver == "sgd" and self.learning_rate == "adaptive" and self._lr > _ADAPTIVE_MIN_LR:
                    self._lr /= _ADAPTIVE_FACTOR
                    # Continue the momentum with the smaller rate, as scikit-learn does.
                    net.state.optimizer = self._optimizer(self._lr)
                    self._no_improvement_count = 0
                    if self.verbose:
                        print(f"Setting learning rate to {self._lr:f}")
                    continue
                if self.verbose:
                    print("Stopping.")
                break
        if not incremental and not triggered and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning)
        if self.early_stopping:
            net.params = self._best_params

    def _fit_with_rule(self, net, X, Y, args):
        """``training.fit`` with scikit-learn's stopping rule on the training loss as its early stopping (which
        the compiled training judges), the records (loss_curve_, best_loss_ ...) continued; returns
        (History, whether the rule stopped training)."""
        stopper = EarlyStopping("loss", patience=self.n_iter_no_change, min_delta=float(self.tol), mode="min",
                                restore_best=False, track_any=True)
        stopper.best = float(self.best_loss_) if self.best_loss_ is not None and np.isfinite(self.best_loss_) else None
        stopper.wait = self._no_improvement_count
        hist = training.fit(net, X, Y, early_stopping=stopper, **args)
        losses = hist["loss"]
        self.loss_curve_.extend(losses)
        self.loss_ = losses[-1]
        self.n_iter_ += len(hist)
        self.t_ += self._n_train * len(hist)
        self.best_loss_ = np.inf if stopper.best is None else stopper.best
        self._no_improvement_count = stopper.wait
        return hist, stopper.wait > stopper.patience

    def _fit_lbfgs(self, X, Y, sw):
        net = self.network_
        weight_sum = X.shape[0] if sw is None else float(sw.sum())

        def cost(theta):
            net.params = theta
            loss, grad = net.loss_and_grad(X, Y, sample_weight=sw, l2=float(self.alpha))
            # scikit-learn's value (squared_error averaged over outputs too) with its gradient, as it passes them.
            return self._reported_loss(float(loss), weight_sum), grad.astype(np.float64)

        res = scipy.optimize.minimize(cost, net.params.astype(np.float64), method="L-BFGS-B", jac=True,
                                      options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        if res.status != 0:
            warnings.warn(f"lbfgs failed to converge after {res.nit} iteration(s) (status={res.status}): "
                          f"{res.message}. Increase the number of iterations (max_iter) or scale the data.",
                          ConvergenceWarning)
        self.n_iter_ = int(min(res.nit, self.max_iter))
        self.loss_ = float(res.fun)
        net.params = res.x

    # ------------------------------------------------------------------ prediction
    def _output(self, X):
        check_is_fitted(self, "coefs_")
        X = validate_data(self, X, reset=False, dtype=self.network_.dtype)
        self._load_weights()
        return self.network_.forward(X).astype(np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags

    def __setstate__(self, state):
        super().__setstate__(state)
        net = self.__dict__.get("network_")
        if net is not None and not net.params.flags.writeable:
            # Unpickled from read-only memory (joblib's memory maps): training and prediction write
            # the weights into the network, so it gets arrays of its own.
            self.network_ = copy.deepcopy(net)


def _fit_binarizer(y):
    """``LabelBinarizer().fit(y)`` for labels y that passed ``check_classification_targets``. For a 1-D array
    of integers or booleans its type (binary: at most two values, else multiclass) and classes (the sorted
    distinct values, y's dtype) are set here, which is what its ``fit`` finds through two more
    ``type_of_target`` calls (a quarter of a millisecond)."""
    lb = LabelBinarizer()
    if not (isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "biu"):
        return lb.fit(y)
    lb.classes_ = np.unique(y)
    lb.y_type_ = "binary" if lb.classes_.shape[0] <= 2 else "multiclass"
    lb.sparse_input_ = False
    return lb


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multilayer perceptron classifier: scikit-learn's ``MLPClassifier``, trained by fastbp.

    Parameters are scikit-learn's (same names, defaults and meanings), plus ``dtype``
    ("float32" default, or "float64"): the precision of the compiled training, ``dropout``
    (a rate, or one per hidden layer: inverted dropout during training, see ``fastbp.Network``), and
    ``class_weight`` (None, "balanced" or {label: weight}, as scikit-learn's linear models
    take it): multiplied into the sample weights. ``activation`` also takes fastbp's own
    activations by name or object. See docs/sklearn.md for the (small) differences: Adam's
    epsilon placement, momentum under a changing learning rate.

    Attributes
    ----------
    classes_, n_features_in_, feature_names_in_, n_outputs_, n_layers_, out_activation_,
    loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_, t_, n_iter_,
    coefs_, intercepts_ : as scikit-learn's. Assigning ``coefs_``/``intercepts_`` sets the weights.
    network_ : fastbp.Network
        The trained network (save, export to ONNX, input gradients).
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype="float32", dropout=0.0, class_weight=None):
        _store_arguments(self, locals())

    def _with_class_weight(self, y, sample_weight):
        if self.class_weight is None:
            return sample_weight
        if not (self.class_weight == "balanced" or isinstance(self.class_weight, dict)):
            raise ValueError(f"class_weight: expected None, 'balanced' or a dict {{label: weight}}, "
                             f"got {self.class_weight!r}")
        w = compute_sample_weight(self.class_weight, y)
        return w if sample_weight is None else w * sample_weight

    def _output_and_loss(self):
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax", "cross_entropy"
        return "sigmoid", "binary_cross_entropy"

    def _validate(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, dtype=np.dtype(self.dtype), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset and not incremental:
            self._label_binarizer = _fit_binarizer(y)
            self.classes_ = self._label_binarizer.classes_
        elif not hasattr(self, "classes_"):
            raise ValueError("classes: must be passed on the first call to partial_fit")
        else:
            classes = np.unique(y) if type_of_target(y) != "multilabel-indicator" else None
            if self.warm_start and not incremental:
                if classes is not None and set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif classes is not None and set(classes) - set(self.classes_):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return X, self._encode(y), y

    def _encode(self, y):
        """The network's targets for labels y (all among ``classes_``): LabelBinarizer's ``transform``, made
        here for 1-D labels of two or more classes (one column ``y == classes_[1]`` for two, else one-hot),
        whose checks ``fit`` has made already and which would cost as much as a short training's epochs."""
        lb, classes = self._label_binarizer, self.classes_
        if y.ndim != 1 or lb.y_type_ not in ("binary", "multiclass") or len(classes) < 2:
            return lb.transform(y).astype(np.float64)
        idx = np.searchsorted(classes, y)
        if lb.y_type_ == "binary":
            return (idx == 1).astype(np.float64).reshape(-1, 1)
        Y = np.zeros((y.shape[0], len(classes)))
        Y[np.arange(y.shape[0]), idx] = 1.0
        return Y

    def _score_output(self, A, y, sample_weight=None):
        return _accuracy(y, self._decode(A), sample_weight)

    def _decode(self, A):
        """The labels of the network's outputs A: LabelBinarizer's ``inverse_transform``, made here for
        labels of two or more classes (the first largest output's class; for two, ``classes_[1]`` where
        the output exceeds 0.5)."""
        lb, classes = self._label_binarizer, self.classes_
        if lb.y_type_ == "multiclass" and A.ndim == 2 and A.shape[1] == len(classes):
            return classes[A.argmax(axis=1)]
        if lb.y_type_ == "binary" and self.n_outputs_ == 1 and len(classes) == 2:
            return classes[(A.ravel() > 0.5).astype(np.intp)]
        if self.n_outputs_ == 1:
            A = A.ravel()
        return lb.inverse_transform(A)

    def score(self, X, y, sample_weight=None):
        """The mean accuracy of ``predict(X)`` against y (weighted by ``sample_weight``): scikit-learn's."""
        return _accuracy(y, self.predict(X), sample_weight)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and labels y (1-D labels of any kind, or a 2-D indicator for multi-label)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y); ``classes`` (all labels) is needed on the first call."""
        if not hasattr(self, "classes_") or getattr(self, "_partial_classes", None) is None:
            if classes is None and not hasattr(self, "classes_"):
                raise ValueError("classes: must be passed on the first call to partial_fit")
            if classes is not None:
                self._label_binarizer = LabelBinarizer()
                if type_of_target(y).startswith("multilabel"):
                    self._label_binarizer.fit(y)
                else:
                    self._label_binarizer.fit(classes)
                self.classes_ = self._label_binarizer.classes_
                self._partial_classes = self.classes_
        elif classes is not None and not np.array_equal(np.unique(classes), np.unique(self._partial_classes)):
            raise ValueError(f"classes: `classes={classes!r}` is not the same as on the last call to "
                             f"partial_fit, was: {self._partial_classes!r}")
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """The predicted labels."""
        return self._decode(self._output(X))

    def predict_proba(self, X):
        """Class probabilities, one column per class of ``classes_``."""
        A = self._output(X)
        if self.n_outputs_ == 1:
            return np.hstack([1 - A, A])
        return A

    def predict_log_proba(self, X):
        """The log of ``predict_proba``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multilayer perceptron regressor: scikit-learn's ``MLPRegressor``, trained by fastbp.

    Identity outputs with scikit-learn's squared-error loss (``loss="squared_error"``, its
    only option here). Parameters and attributes as ``MLPClassifier`` (without ``classes_``).
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 loss="squared_error", shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype="float32", dropout=0.0):
        _store_arguments(self, locals())

    def _check_params(self):
        if self.loss != "squared_error":
            raise ValueError(f"loss: expected 'squared_error' (fastbp has no 'poisson' yet), got {self.loss!r}")
        return super()._check_params()

    def _output_and_loss(self):
        return "identity", "mse"

    def _validate(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.dtype(self.dtype), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, (y.reshape(-1, 1) if y.ndim == 1 else y), y

    def _with_class_weight(self, y, sample_weight):
        return sample_weight

    def _score_output(self, A, y, sample_weight=None):
        return _r2(y, A[:, 0] if A.ndim == 2 and A.shape[1] == 1 and y.ndim == 1 else A, sample_weight)

    def score(self, X, y, sample_weight=None):
        """R² of ``predict(X)`` against y (weighted by ``sample_weight``): scikit-learn's."""
        return _r2(y, self.predict(X), sample_weight)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and real targets y ((n,) or (n, n_outputs))."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """The predicted targets: shape (n,) for one output, else (n, n_outputs)."""
        A = self._output(X)
        return A[:, 0] if A.shape[1] == 1 else A
