"""Network: the model, a thin Python class around the flat parameters and the compiled kernels.

It owns the parameter vector, the layer specs and the training state, checks
every input at the boundary, and runs the forward pass, gradients and input
sensitivities; ``fit`` is the one training path of training/. Nothing here
runs per batch.
"""

import numbers
import warnings

import numpy as np

from .common import checks
from . import io, training
from .engine import plan, policy
from .specs.activations import IDENTITY, SIGMOID, SOFTMAX, STEP, get_activation
from .data import Scaler, encode_labels, scale_hint
from .engine.kernels import _full_pass, _predict
from .engine.layout import Layout
from .specs.losses import ACC_ARGMAX, ACC_NONE, ACC_THRESHOLD, DEFAULT_OUTPUT, LOSSES, get_loss
from .specs.optimizers import get_optimizer
from .training import History

__all__ = ["Network", "History", "load"]

INITS = ("glorot", "he")


def resolve_output_and_loss(output, loss):
    """(output Activation, loss name) from the user's ``output`` and ``loss``, either possibly None."""
    if loss is None and output is None:
        loss = "cross_entropy"
    if loss is None:
        out = get_activation(output, "output")
        loss = {SOFTMAX: "cross_entropy", SIGMOID: "binary_cross_entropy"}.get(out.code, "mse")
        return out, loss
    get_loss(loss)
    out = get_activation(DEFAULT_OUTPUT[loss] if output is None else output, "output")
    return out, loss


class Network:
    """A multilayer perceptron over one flat parameter vector.

    Parameters
    ----------
    layers : list of int
        Widths ``[n_0, n_1, ..., n_L]``: the input, each hidden layer, the output.
    activation : str, Activation or list of them, default "relu"
        The hidden layers' activation: one for all, or one per hidden layer.
    output : str or Activation, optional
        The output layer's activation. Default: the one that goes with ``loss``
        (softmax for cross_entropy, sigmoid for binary_cross_entropy, identity otherwise).
    loss : {"cross_entropy", "binary_cross_entropy", "mse", "squared"}, optional
        The cost. Default: the one that goes with ``output`` (cross_entropy if neither is given).
    dtype : {"float32", "float64"}, default "float32"
    seed : int or None, default 0
        Seeds the initial weights and the shuffling; None draws a seed from the OS.
    init : {"glorot", "he"}, default "glorot"
        Glorot/Xavier uniform (Glorot & Bengio 2010), or He normal (for ReLU).
    classes : sequence, optional
        Class labels (strings or integers) for a classifier's outputs, in output
        order: ``predict`` returns them and ``fit``/``evaluate`` accept labels among
        them. Without it, y holds indices 0..k-1, unless the first ``fit`` is given
        string labels: then ``classes_`` becomes their sorted distinct values.
    standardize : bool, default False
        On the first ``fit``, learn each feature's mean and standard deviation (and
        the targets' for a regression with an identity output) into ``scaler_``;
        ``forward``, ``predict``, ``evaluate``, ``save`` and ``to_onnx`` then apply
        them, so the model takes and gives data in its own units.
    dropout : float or list of float, default 0
        Inverted dropout (Srivastava et al. 2014) during ``fit``: each hidden layer's
        units are zeroed with this probability and the kept ones scaled by 1/(1-p); one
        rate for every hidden layer or one per hidden layer. The masks come from a
        counter-based generator keyed by the network's seed, the epoch, the batch, the
        layer and the unit, so training stays reproducible whatever the thread count,
        and continues exactly after ``save``/``load``. ``forward``, ``predict``,
        ``evaluate``, ``loss_and_grad`` and ``input_grad`` never drop.
    input_dropout : float, default 0
        The same for the input features.

    Attributes
    ----------
    classes_ : ndarray or None
        The class labels of the outputs (None: class indices).
    scaler_ : fastbp.data.Scaler or None
        The stored scaling (set by the first ``fit`` with ``standardize=True``).
    target_1d : bool or None
        Whether the first ``fit`` had 1-D targets: a one-output regression then predicts shape (n,).
    feature_names, target_names : list of str or None
        Column names of the training data, kept in the model file (the CLI sets them
        from a CSV header, and matches prediction files by them).

    Examples
    --------
    >>> import numpy as np, fastbp
    >>> net = fastbp.Network([2, 4, 1], activation="sigmoid", output="sigmoid", loss="mse")
    >>> net.weights(1).shape
    (4, 2)
    """

    def __init__(self, layers, activation="relu", output=None, loss=None, dtype="float32", seed=0,
                 init="glorot", classes=None, standardize=False, dropout=0.0, input_dropout=0.0):
        sizes = checks.check_layers(layers)
        self.layout = Layout(sizes)
        L = self.layout.n_layers
        n_hidden = L - 1
        if isinstance(activation, (list, tuple)):
            if len(activation) != n_hidden:
                raise ValueError(
                    f"activation: expected one activation per hidden layer ({n_hidden}), got {len(activation)}"
                )
            hidden = [get_activation(a, f"activation[{i}]") for i, a in enumerate(activation)]
        else:
            hidden = [get_activation(activation, "activation")] * n_hidden
        for i, a in enumerate(hidden):
            if a.output_only:
                raise ValueError(f"activation: {a.name} is for the output layer only, got it for hidden layer {i + 1}")
        out, loss = resolve_output_and_loss(output, loss)
        n_out = sizes[-1]
        if out.code == SOFTMAX and n_out < 2:
            raise ValueError(f"output: softmax needs at least 2 output units, got layers[-1] = {n_out}")
        if loss == "cross_entropy" and out.code != SOFTMAX:
            raise ValueError(f"loss: cross_entropy is computed with a softmax output, got output={out.name!r}")
        if loss == "binary_cross_entropy" and out.code != SIGMOID:
            raise ValueError(
                f"loss: binary_cross_entropy is computed with a sigmoid output, got output={out.name!r}"
            )
        if init not in INITS:
            raise ValueError(f"init: expected one of {list(INITS)}, got {init!r}")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (1 << 63))
        self.seed = checks.check_int(seed, "seed", minimum=0)
        self.dtype = np.dtype(checks.check_dtype(dtype))
        self.activations = hidden + [out]
        self.loss = loss
        self.init = init

        self._acts = np.array([a.code for a in self.activations], dtype=np.int64)
        self._act_p = np.array([a.kernel_params for a in self.activations], dtype=np.float64).reshape(L, 2)
        self._loss_code = LOSSES[loss]
        if out.code == SOFTMAX or (loss != "mse" and loss != "squared") or out.code in (SIGMOID, STEP):
            self._acc_mode = ACC_ARGMAX if n_out > 1 else ACC_THRESHOLD
        else:
            self._acc_mode = ACC_NONE
        if loss == "binary_cross_entropy" and n_out > 1:  # multi-label: no argmax; evaluate scores each label
            self._acc_mode = ACC_NONE

        self.dropout = _check_dropout(dropout, n_hidden)
        self.input_dropout = _check_rate(input_dropout, "input_dropout")

        # A third child for the dropout masks' key (spawning more children leaves the first two as they were).
        init_seq, shuffle_seq, dropout_seq = np.random.SeedSequence(self.seed).spawn(3)
        self._params = np.zeros(self.layout.n_params, dtype=self.dtype)
        self.layout.init(self._params, np.random.default_rng(init_seq), [init] * L)
        self.state = training.State(np.random.default_rng(shuffle_seq),
                                    dropout_key=int(dropout_seq.generate_state(1, np.uint64)[0]))
        self.epochs_trained = 0
        self.history = History()
        self.stop_training = False
        self._set_classes(classes)
        if not isinstance(standardize, (bool, np.bool_)):
            raise TypeError(f"standardize: expected a bool, got {standardize!r}")
        self.standardize = bool(standardize)
        self.scaler_ = None
        self.target_1d = None
        self.feature_names = None
        self.target_names = None

    def _set_classes(self, classes):
        if classes is None:
            self.classes_ = None
            return
        if not self.is_classifier:
            raise ValueError(f"classes: only a single-label classifier has classes; this network's loss is {self.loss!r}")
        arr = np.asarray(list(classes) if not isinstance(classes, np.ndarray) else classes)
        want = 2 if self._acc_mode == ACC_THRESHOLD else self.layout.sizes[-1]
        if arr.ndim != 1 or len(arr) != want or len(np.unique(arr)) != len(arr):
            raise ValueError(f"classes: expected {want} distinct labels (one per class of the output layer), got "
                             f"{arr.tolist() if arr.ndim == 1 else arr.shape}")
        if arr.dtype.kind not in "iuUS":
            raise TypeError(f"classes: expected integer or string labels, got dtype {arr.dtype}")
        self.classes_ = arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(str)


    # ------------------------------------------------------------------ layout
    @property
    def sizes(self):
        """The layer widths ``[n_0, ..., n_L]``."""
        return list(self.layout.sizes)

    @property
    def dropout_rates(self):
        """The dropout rate of each layer's input, float64 (L,): the input's, then each hidden layer's."""
        return np.array([self.input_dropout, *self.dropout], dtype=np.float64)

    @property
    def n_params(self):
        return self.layout.n_params

    @property
    def is_classifier(self):
        """True when ``predict`` returns one class per row and ``evaluate`` reports accuracy."""
        return self._acc_mode != ACC_NONE

    @property
    def is_multilabel(self):
        """True for several sigmoid outputs with binary cross-entropy: ``predict`` gives 0/1 columns."""
        return self.loss == "binary_cross_entropy" and self.layout.sizes[-1] > 1

    @property
    def params(self):
        """The flat parameter vector W1, b1, ..., WL, bL (the array itself: writes change the network)."""
        return self._params

    @params.setter
    def params(self, value):
        self._params[...] = checks.check_params(value, self.n_params, self.dtype)

    def weights(self, l):
        """W^l, shape (n_l, n_{l-1}): a view into ``params``. Layers are numbered 1..L as in the paper."""
        return self.layout.weights(self._params, l)

    def biases(self, l):
        """b^l, shape (n_l,): a view into ``params``."""
        return self.layout.biases(self._params, l)

    # ------------------------------------------------------------------ kernels
    def kernel_net(self, mm):
        """The ``plan.Net`` of this network for the engine ``mm`` (what its kernels take)."""
        return plan.net_plan(self.layout, self._acts, self._act_p, self._loss_code, self._acc_mode, mm)

    def _engine(self, rows):
        return policy.engine_for(self.layout.sizes, rows, self.n_params)

    def _check_X(self, X, argname="X"):
        """X checked and converted, then scaled by the stored scaler: what the kernels see."""
        X = checks.check_X(X, self.layout.sizes[0], self.dtype, argname)
        return X if self.scaler_ is None else self.scaler_.transform_X(X, self.dtype)

    def check_data(self, X, y, argname=None):
        """(X, Y) checked and converted for the kernels: X (n, n_0), Y (n, n_L), both in this network's
        dtype, labels encoded by ``classes_`` and the stored scaling applied. ``argname`` names a pair
        such as "validation_data" in errors."""
        xname, yname = ("X", "y") if argname is None else (f"{argname}[0]", f"{argname}[1]")
        X = self._check_X(X, xname)
        if self.classes_ is not None and np.ndim(y) == 1:
            y = encode_labels(y, self.classes_, yname)[0]
        Y = checks.check_y(y, X.shape[0], self.layout.sizes[-1], self.loss, self.dtype, yname)
        if self.scaler_ is not None:
            Y = self.scaler_.transform_y(Y, self.dtype)
        return X, Y

    def _scales_targets(self):
        return self.activations[-1].code == IDENTITY and not self.is_classifier

    def prepare_fit(self, X, y, hint=True):
        """What the first fit learns besides the weights: class names from string labels, whether targets
        are 1-D, the scaling (``standardize``); and (``hint``) a warning when unscaled features differ widely
        in scale. Called by ``fit`` before it checks the data; returns X, converted to the
        network's dtype where it looked at it (so that fit does not convert it again)."""
        if self.epochs_trained > 0:
            return X
        y_arr = np.asarray(y)
        if self.classes_ is None and self.is_classifier and y_arr.ndim == 1 and y_arr.dtype.kind in "USO":
            classes = encode_labels(y_arr)[1]
            want = 2 if self._acc_mode == ACC_THRESHOLD else self.layout.sizes[-1]
            if len(classes) != want:
                raise ValueError(f"y: {len(classes)} distinct labels {classes.tolist()[:10]}, but the network has "
                                 f"{want} classes (its output layer); give layers[-1] = {len(classes)} or classes=")
            self._set_classes(classes)
        if self.target_1d is None:
            self.target_1d = y_arr.ndim == 1
        X = checks.check_X(X, self.layout.sizes[0], self.dtype)  # the copy fit makes anyway, if any
        if self.standardize:
            Y = None
            if self._scales_targets():
                Y = checks.check_y(y, X.shape[0], self.layout.sizes[-1], self.loss, self.dtype)
            self.scaler_ = Scaler.fit(X, Y)
        elif hint:
            hint = scale_hint(X)
            if hint is not None:
                warnings.warn(f"fit: {hint}", stacklevel=4)
        return X

    def _pass(self, X, Y, param_grad=False, input_grad=False, sw=None):
        n = X.shape[0]
        sizes = self.layout.sizes
        rows = plan.chunk_rows(sizes, n)
        work = plan.work(sizes, self.n_params, self.dtype, rows, grad=param_grad)
        grad = np.zeros(self.n_params if param_grad else 0, dtype=self.dtype)
        dX = np.zeros((n if input_grad else 0, sizes[0]), dtype=self.dtype)
        mm = self._engine(rows)
        loss_sum, correct = _full_pass(self._params, *plan.data(X, Y, sw), self.kernel_net(mm), work, param_grad, grad,
                                       input_grad, dX)
        return loss_sum, correct, grad, dX

    # ------------------------------------------------------------------ public
    def forward(self, X):
        """The output activations a^L, shape (n_samples, n_L), in the targets' units (the stored scaling
        applied to X, and undone on regression outputs)."""
        if self.scaler_ is not None:
            return self.scaler_.inverse_y(self._forward(self._check_X(X)), self.dtype)
        # Unscaled, the kernel checks X for NaN and Inf chunk by chunk as it reads it for the first product.
        Xc = checks.check_X(X, self.layout.sizes[0], self.dtype, finite=False)
        A = self._forward(Xc, check=True)
        if A is None:
            checks.check_X(X, self.layout.sizes[0], self.dtype)  # raises, naming the first NaN or Inf
            A = self._forward(Xc)  # only if the two checks ever disagreed: never a partial answer
        return A

    def _forward(self, X, check=False):
        """a^L of the checked X; with ``check``, None if X holds a NaN or Inf."""
        n = X.shape[0]
        sizes = self.layout.sizes
        out = np.empty((n, sizes[-1]), dtype=self.dtype)
        rows = plan.chunk_rows(sizes, n)
        work = plan.forward_work(sizes, self.dtype, rows)
        bad = _predict(self._params, X, out, self.kernel_net(self._engine(rows)), work, check)
        return None if bad >= 0 else out

    def predict(self, X):
        """Classifiers: the class of each row (argmax; a ≥ 0.5 for one output unit) as a label of
        ``classes_``, or an index without it. Multi-label: 0/1 columns (a ≥ 0.5). Regression: the
        outputs, shape (n,) when the model was trained on 1-D targets with one output, else (n, n_L)."""
        A = self.forward(X)
        if self.is_multilabel:
            return (A >= 0.5).astype(np.int64)
        if self._acc_mode in (ACC_ARGMAX, ACC_THRESHOLD):
            idx = A.argmax(axis=1) if self._acc_mode == ACC_ARGMAX else (A[:, 0] >= 0.5).astype(np.int64)
            return idx if self.classes_ is None else self.classes_[idx]
        return A[:, 0] if self.target_1d and A.shape[1] == 1 else A

    def predict_proba(self, X):
        """Classifiers: one column per class, in ``classes_`` order: the softmax (or sigmoid) outputs;
        a single sigmoid unit p gives the columns (1 − p, p)."""
        if not self.is_classifier:
            raise ValueError(f"predict_proba: a {'multi-label' if self.is_multilabel else 'regression'} network "
                             "has no class probabilities; use forward")
        A = self.forward(X)
        if self._acc_mode == ACC_THRESHOLD:
            return np.concatenate([1 - A, A], axis=1)
        return A

    def evaluate(self, X, y, sample_weight=None):
        """Scores on (X, y), in the targets' own units.

        ``loss`` is the mean cost (for mse, the paper's ½ Σ_j (a_j − y_j)² per row, averaged);
        classifiers add ``accuracy``; multi-label networks ``exact_match`` (rows with every
        label right) and ``hamming_accuracy`` (labels right); regression ``rmse``, ``mae`` and
        ``r2`` (the coefficient of determination, averaged over outputs). With ``sample_weight``
        (one weight ≥ 0 per row), every score is the weighted mean over the rows (r2 as
        scikit-learn's ``r2_score`` with weights).
        """
        X, Y = self.check_data(X, y)
        n = X.shape[0]
        sw = None if sample_weight is None else checks.check_sample_weight(sample_weight, n)
        total = n if sw is None else float(sw.sum())
        if self.is_multilabel:
            loss_sum, _, _, _ = self._pass(X, Y, sw=sw)
            right = (self._forward(X) >= 0.5) == (Y >= 0.5)
            return {"loss": loss_sum / total, "exact_match": float(np.average(right.all(axis=1), weights=sw)),
                    "hamming_accuracy": float(np.average(right.mean(axis=1), weights=sw))}
        if not self.is_classifier:
            A = self._forward(X)
            if self.scaler_ is not None and self.scaler_.y_mean is not None:
                return _regression_scores(self.scaler_.inverse_y(A, np.float64), self.scaler_.inverse_y(Y, np.float64),
                                          self.loss, sw)
            # Unscaled targets: the loss as the kernels sum it, the very number fit and loss_and_grad report.
            return {**_regression_scores(A, Y, self.loss, sw), "loss": self._pass(X, Y, sw=sw)[0] / total}
        loss_sum, correct, _, _ = self._pass(X, Y, sw=sw)
        return {"loss": loss_sum / total, "accuracy": correct / total}

    def loss_and_grad(self, X, y, sample_weight=None, l2=0.0):
        """(cost, ∇C as a flat vector in the ``params`` layout) over all rows: the mean cost, or with
        ``sample_weight`` the weighted mean Σ_k w_k C_k / Σ_k w_k; ``l2`` adds the penalty
        (l2/2)·Σ_l ‖W^l‖² / Σ_k w_k on the weights (not the biases), scikit-learn's ``alpha``."""
        X, Y = self.check_data(X, y)
        sw = None if sample_weight is None else checks.check_sample_weight(sample_weight, X.shape[0])
        l2 = checks.check_nonnegative_float(l2, "l2")
        loss_sum, _, grad, _ = self._pass(X, Y, param_grad=True, sw=sw)
        total = X.shape[0] if sw is None else float(sw.sum())
        loss = loss_sum / total
        if l2 > 0:
            decay = l2 / total
            for l in range(1, self.layout.n_layers + 1):
                W = self.weights(l)
                loss += 0.5 * decay * float(np.dot(W.ravel().astype(np.float64), W.ravel()))
                self.layout.weights(grad, l)[...] += (decay * W).astype(self.dtype)
        return loss, grad

    def input_grad(self, X, y):
        """∂C_k/∂a^0 for every sample k: how each sample's own cost changes with its inputs.

        The paper's sensitivity of the cost to an input activation; shape (n_samples, n_0).
        """
        X, Y = self.check_data(X, y)
        _, _, _, dX = self._pass(X, Y, input_grad=True)
        if self.scaler_ is not None:  # the chain rule through x ↦ (x − mean) / std
            dX = (dX / self.scaler_.x_std).astype(self.dtype)
        return dX

    # Train by mini-batch gradient descent: training.fit, with ``self`` as its network (one signature and
    # docstring: help(Network.fit) shows them).
    fit = training.fit

    # ------------------------------------------------------------------ copies and files
    def get_config(self):
        """The constructor's arguments, JSON-serialisable."""
        return {
            "layers": self.sizes,
            "activation": [a.get_config() for a in self.activations[:-1]],
            "output": self.activations[-1].get_config(),
            "loss": self.loss,
            "dtype": self.dtype.name,
            "seed": self.seed,
            "init": self.init,
            "classes": None if self.classes_ is None else self.classes_.tolist(),
            "standardize": self.standardize,
            "dropout": list(self.dropout),
            "input_dropout": self.input_dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def astype(self, dtype):
        """A copy of this network with its parameters converted to ``dtype``."""
        config = self.get_config()
        config["dtype"] = checks.check_dtype(dtype)
        twin = type(self).from_config(config)
        twin._params[...] = self._params
        twin.epochs_trained = self.epochs_trained
        twin.state.rng.bit_generator.state = self.state.rng.bit_generator.state
        twin.state.dropout_key = self.state.dropout_key
        twin._set_data_info(self._data_info(), self.scaler_)
        return twin

    def _data_info(self):
        return {"feature_names": self.feature_names, "target_names": self.target_names, "target_1d": self.target_1d}

    def _set_data_info(self, info, scaler):
        self.feature_names = info.get("feature_names")
        self.target_names = info.get("target_names")
        self.target_1d = info.get("target_1d")
        self.scaler_ = scaler
        if scaler is not None and (scaler.x_mean.size != self.layout.sizes[0] or (
                scaler.y_mean is not None and scaler.y_mean.size != self.layout.sizes[-1])):
            raise ValueError(f"scaler: statistics for {scaler.x_mean.size} features, the network has "
                             f"{self.layout.sizes[0]} inputs")

    def to_onnx(self, path=None, opset=17):
        """Export the forward pass (with the stored scaling) as an ONNX model; see :func:`fastbp.export.to_onnx`."""
        from .export import to_onnx

        return to_onnx(self, path, opset=opset)


    def save(self, path):
        """Write the network and its training state to ``path`` (.npz + JSON config), atomically.

        Stored: the parameters, the layer specs, the optimizer and its state, the
        step and epoch counts, the shuffling RNG's state, the dropout key, a plateau
        schedule's state and the History, so that
        ``fastbp.load(path).fit(...)`` continues exactly where this one stopped. The class names,
        scaling, column names and target shape are kept too (JSON and arrays, no pickle).
        """
        st = self.state
        config = {"network": self.get_config(), "data": self._data_info(),
                  "epochs_trained": self.epochs_trained, "step": st.step,
                  "rng_state": st.rng.bit_generator.state, "dropout_key": str(st.dropout_key),
                  "schedule_state": st.schedule,
                  "optimizer": None if st.optimizer is None else st.optimizer.get_config(),
                  "history": {"epoch": self.history.epoch, "history": self.history.history}}
        arrays = {"params": self._params}
        if st.slots is not None:
            arrays["opt_state"] = st.slots
        if self.scaler_ is not None:
            arrays.update(self.scaler_.arrays())
        io.save_npz(path, config, arrays)

    def __repr__(self):
        acts = ", ".join(repr(a) for a in self.activations)
        return f"Network({self.sizes}, activations=[{acts}], loss={self.loss!r}, dtype={self.dtype.name!r})"


def _check_rate(p, argname):
    """A dropout rate: a number in [0, 1)."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{argname}: expected a dropout rate in [0, 1), got {p!r}")
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{argname}: expected a dropout rate in [0, 1), got {p!r}")
    return float(p)


def _check_dropout(dropout, n_hidden):
    """Network's ``dropout``: one rate for every hidden layer, or a list of one per hidden layer."""
    if isinstance(dropout, (list, tuple, np.ndarray)):
        if len(dropout) != n_hidden:
            raise ValueError(f"dropout: expected one rate per hidden layer ({n_hidden}), got {len(dropout)}")
        return [_check_rate(p, f"dropout[{i}]") for i, p in enumerate(dropout)]
    return [_check_rate(dropout, "dropout")] * n_hidden


def _regression_scores(A, Y, loss, sw=None):
    """The cost (as the kernels define it) and rmse, mae, r2 of outputs A against targets Y, in float64,
    weighted by the rows' sample weights ``sw`` (None: all 1)."""
    A = np.asarray(A, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    w = np.ones(A.shape[0]) if sw is None else sw
    err = A - Y
    sq = err * err
    per_row = sq.sum(axis=1)
    ss_res = w @ sq
    ss_tot = w @ ((Y - np.average(Y, axis=0, weights=w)) ** 2)
    # As scikit-learn's r2_score: a constant target scores 1 if predicted exactly, else 0.
    r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), np.where(ss_res == 0, 1.0, 0.0))
    return {"loss": float((0.5 if loss == "mse" else 1.0) * np.average(per_row, weights=w)),
            "rmse": float(np.sqrt(np.average(sq.mean(axis=1), weights=w))),
            "mae": float(np.average(np.abs(err).mean(axis=1), weights=w)), "r2": float(r2.mean())}


def load(path):
    """A Network, with its training state, from a file written by :meth:`Network.save`.

    Everything the file holds is checked as ``Network`` and ``fit`` check their arguments (finite
    parameters and optimizer state, counts, the RNG state, a History of one number per epoch and key);
    anything else is a ValueError naming the file.
    """
    config, arrays = io.load_npz(path)
    try:
        if not isinstance(config.get("network"), dict):
            raise ValueError(f"network: expected the constructor's arguments, got {config.get('network')!r}")
        net = Network.from_config(config["network"])
        if "params" not in arrays:
            raise ValueError("no 'params' array")
        net.params = arrays["params"]
        net.epochs_trained = checks.check_int(config.get("epochs_trained", 0), "epochs_trained", minimum=0)
        info = config.get("data") or {}
        if not isinstance(info, dict):
            raise ValueError(f"data: expected the column names and target shape, got {info!r}")
        net._set_data_info(info, Scaler.from_arrays(arrays))
        st = net.state
        st.step = checks.check_int(config.get("step", 0), "step", minimum=0)
        if "rng_state" in config:
            st.rng.bit_generator.state = config["rng_state"]
        if "dropout_key" in config:
            st.dropout_key = int(config["dropout_key"])
        st.schedule = config.get("schedule_state")
        if config.get("optimizer") is not None:
            st.optimizer = get_optimizer(config["optimizer"])
            shape = (st.optimizer.n_slots, net.n_params)
            slots = arrays.get("opt_state", np.zeros((0, net.n_params)))
            if slots.shape != shape:
                raise ValueError(f"optimizer state of shape {slots.shape}, expected {shape}")
            st.slots = checks.check_params(slots.reshape(-1), slots.size, net.dtype, "opt_state").reshape(shape)
        for e, logs in _checked_history(config.get("history"), net.epochs_trained):
            net.history.append(e, logs)
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"path: {str(path)!r} holds an inconsistent fastbp model: {e}") from None
    return net


def _checked_history(hist, epochs_trained):
    """(epoch, logs) pairs of a saved History: epochs increasing in 1..epochs_trained, each key's numbers for
    its last epochs (a key first logged by a later fit has fewer)."""
    if not hist:
        return []
    if not (isinstance(hist, dict) and isinstance(hist.get("epoch"), list) and isinstance(hist.get("history"), dict)):
        raise ValueError("history: expected {'epoch': [...], 'history': {key: [...]}}")
    epochs, records = hist["epoch"], hist["history"]
    if any(isinstance(e, bool) or not isinstance(e, int) for e in epochs) or \
            any(not 1 <= e <= epochs_trained for e in epochs) or any(a >= b for a, b in zip(epochs, epochs[1:])):
        raise ValueError(f"history: expected increasing epoch numbers in 1..{epochs_trained}, got {epochs[:10]}")
    for key, values in records.items():
        # a key first logged by a later fit (val_loss once validation is given) has values for the last epochs only
        if not isinstance(values, list) or len(values) > len(epochs):
            raise ValueError(f"history[{key!r}]: expected at most {len(epochs)} values (one per epoch), got "
                             f"{len(values) if isinstance(values, list) else type(values).__name__}")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
            raise ValueError(f"history[{key!r}]: expected numbers")
    n = len(epochs)
    return [(e, {k: v[i - (n - len(v))] for k, v in records.items() if i >= n - len(v)}) for i, e in enumerate(epochs)]
