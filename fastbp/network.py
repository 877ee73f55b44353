"""Network: the model, a thin Python class around the flat parameters and the compiled kernels.

It owns the parameter vector, the layer specs and the training state, checks
every input at the boundary, and runs the forward pass, gradients and input
sensitivities; ``fit`` is the one training path of training.py. Nothing here
runs per batch.
"""

import numpy as np

from . import checks, io, plan, training
from .activations import SIGMOID, SOFTMAX, STEP, get_activation
from .kernels import _full_pass, _predict
from .layout import Layout
from .losses import ACC_ARGMAX, ACC_NONE, ACC_THRESHOLD, DEFAULT_OUTPUT, LOSSES, get_loss
from .matmul import engine_for
from .optimizers import get_optimizer
from .training import DEFAULTS, History

__all__ = ["Network", "History", "load"]

INITS = ("glorot", "he")


def _resolve_output_and_loss(output, loss):
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

    Examples
    --------
    >>> import numpy as np, fastbp
    >>> net = fastbp.Network([2, 4, 1], activation="sigmoid", output="sigmoid", loss="mse")
    >>> net.weights(1).shape
    (4, 2)
    """

    def __init__(self, layers, activation="relu", output=None, loss=None, dtype="float32", seed=0,
                 init="glorot"):
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
        out, loss = _resolve_output_and_loss(output, loss)
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

        init_seq, shuffle_seq = np.random.SeedSequence(self.seed).spawn(2)
        self._params = np.zeros(self.layout.n_params, dtype=self.dtype)
        self.layout.init(self._params, np.random.default_rng(init_seq), [init] * L)
        self.state = training.State(np.random.default_rng(shuffle_seq))
        self.epochs_trained = 0
        self.history = History()
        self.stop_training = False

    # ------------------------------------------------------------------ layout
    @property
    def sizes(self):
        """The layer widths ``[n_0, ..., n_L]``."""
        return list(self.layout.sizes)

    @property
    def n_params(self):
        return self.layout.n_params

    @property
    def is_classifier(self):
        """True when ``predict`` returns class indices and ``evaluate`` reports accuracy."""
        return self._acc_mode != ACC_NONE

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

    def _matmul_config(self, rows):
        return engine_for(self.layout.sizes, rows, self.n_params)

    def check_data(self, X, y, argname=None):
        """(X, Y) checked and converted for this network: X (n, n_0), Y (n, n_L), both in its dtype.
        ``argname`` names a pair such as "validation_data" in errors."""
        xname, yname = ("X", "y") if argname is None else (f"{argname}[0]", f"{argname}[1]")
        X = checks.check_X(X, self.layout.sizes[0], self.dtype, xname)
        Y = checks.check_y(y, X.shape[0], self.layout.sizes[-1], self.loss, self.dtype, yname)
        return X, Y

    def _pass(self, X, Y, param_grad=False, input_grad=False):
        n = X.shape[0]
        sizes = self.layout.sizes
        rows = plan.chunk_rows(sizes, n)
        work = plan.work(sizes, self.n_params, self.dtype, rows, grad=param_grad)
        grad = np.zeros(self.n_params if param_grad else 0, dtype=self.dtype)
        dX = np.zeros((n if input_grad else 0, sizes[0]), dtype=self.dtype)
        loss_sum, correct = _full_pass(self._params, X, Y, self.kernel_net(self._matmul_config(rows)), work,
                                       param_grad, grad, input_grad, dX)
        return loss_sum, correct, grad, dX

    # ------------------------------------------------------------------ public
    def forward(self, X):
        """The output activations a^L, shape (n_samples, n_L)."""
        X = checks.check_X(X, self.layout.sizes[0], self.dtype)
        n = X.shape[0]
        sizes = self.layout.sizes
        out = np.empty((n, sizes[-1]), dtype=self.dtype)
        rows = plan.chunk_rows(sizes, n)
        work = plan.work(sizes, self.n_params, self.dtype, rows, delta=False)
        _predict(self._params, X, out, self.kernel_net(self._matmul_config(rows)), work)
        return out

    def predict(self, X):
        """Class indices for classifiers (argmax; a ≥ 0.5 for one output unit), else the outputs."""
        A = self.forward(X)
        if self._acc_mode == ACC_ARGMAX:
            return A.argmax(axis=1)
        if self._acc_mode == ACC_THRESHOLD:
            return (A[:, 0] >= 0.5).astype(np.int64)
        return A

    def evaluate(self, X, y):
        """``{"loss": mean cost, "accuracy": fraction correct}`` (accuracy for classifiers only)."""
        X, Y = self.check_data(X, y)
        loss_sum, correct, _, _ = self._pass(X, Y)
        out = {"loss": loss_sum / X.shape[0]}
        if self.is_classifier:
            out["accuracy"] = correct / X.shape[0]
        return out

    def loss_and_grad(self, X, y):
        """(mean cost over the rows, ∇C as a flat vector in the ``params`` layout)."""
        X, Y = self.check_data(X, y)
        loss_sum, _, grad, _ = self._pass(X, Y, param_grad=True)
        return loss_sum / X.shape[0], grad

    def input_grad(self, X, y):
        """∂C_k/∂a^0 for every sample k: how each sample's own cost changes with its inputs.

        The paper's sensitivity of the cost to an input activation; shape (n_samples, n_0).
        """
        X, Y = self.check_data(X, y)
        _, _, _, dX = self._pass(X, Y, input_grad=True)
        return dX

    def fit(self, X, y, epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"], lr=None, optimizer=None,
            schedule=None, clip_norm=None, shuffle=True, validation_data=None, validation_split=None,
            early_stopping=None, callbacks=None, checkpoint=None, checkpoint_every=1, verbose="auto"):
        """Train by mini-batch gradient descent; each epoch runs in one compiled call.

        Parameters
        ----------
        X, y : array-like
            Inputs (n, n_0) and targets (see the class docstring for y's forms).
        epochs : int, default 20
        batch_size : int, default 32
            The gradient of each update is averaged over the batch (the paper's 1/n Σ_k).
        lr : float, optional
            The learning rate. With no ``optimizer`` this is plain gradient
            descent, θ ← θ - lr ∇C (lr 0.1 if not given: ``fastbp.training.DEFAULTS``);
            with an optimizer name, that optimizer's lr.
        optimizer : str or Optimizer, optional
            "sgd", "adam", "adamw", "rmsprop" or a spec such as ``fastbp.Adam(lr=1e-3)``.
            A later ``fit`` with the same optimizer settings continues its state
            (moments, step count); other settings start it afresh.
        schedule : Schedule, optional
            How the learning rate changes with epochs or steps (constant if None).
        clip_norm : float, optional
            Rescale each batch's gradient to at most this global L2 norm.
        shuffle : bool, default True
            A new permutation of the rows every epoch, from the network's RNG.
        validation_data : (X_val, y_val), optional
        validation_split : float, optional
            Hold out the last fraction of X, y for validation (before shuffling), as Keras does.
        early_stopping : EarlyStopping, int or dict, optional
            An int is the patience on val_loss. The best epoch's parameters are restored.
        callbacks : list, optional
            Objects with ``on_epoch_end(net, epoch, logs)`` (or callables of the same
            arguments); returning True, or setting ``net.stop_training = True``, stops.
        checkpoint : path, optional
            Save the network here (atomically) every ``checkpoint_every`` epochs,
            at the end, and on interrupt.
        verbose : {"auto", 0, 1, 2}, default "auto"
            0 silent, 1 a progress bar, 2 a line per epoch; "auto" is 1 on a terminal, else 0.

        Returns
        -------
        History
            Per epoch: loss, accuracy (classifiers), val_loss and val_accuracy
            (with validation), lr, seconds, samples_per_second.

        Notes
        -----
        If the cost becomes NaN or Inf, the network goes back to the end of the last
        completed epoch (parameters, optimizer state, RNG) and FloatingPointError
        names the epoch and batch. On KeyboardInterrupt it goes back the same way,
        writes the checkpoint if one is set, and re-raises.
        """
        return training.fit(self, X, y, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                            schedule=schedule, clip_norm=clip_norm, shuffle=shuffle, validation_data=validation_data,
                            validation_split=validation_split, early_stopping=early_stopping, callbacks=callbacks,
                            checkpoint=checkpoint, checkpoint_every=checkpoint_every, verbose=verbose)

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
        return twin

    def save(self, path):
        """Write the network and its training state to ``path`` (.npz + JSON config), atomically.

        Stored: the parameters, the layer specs, the optimizer and its state, the
        step and epoch counts, the shuffling RNG's state and the History, so that
        ``fastbp.load(path).fit(...)`` continues exactly where this one stopped.
        """
        st = self.state
        config = {"network": self.get_config(), "epochs_trained": self.epochs_trained, "step": st.step,
                  "rng_state": st.rng.bit_generator.state,
                  "optimizer": None if st.optimizer is None else st.optimizer.get_config(),
                  "history": {"epoch": self.history.epoch, "history": self.history.history}}
        arrays = {"params": self._params}
        if st.slots is not None:
            arrays["opt_state"] = st.slots
        io.save_npz(path, config, arrays)

    def __repr__(self):
        acts = ", ".join(repr(a) for a in self.activations)
        return f"Network({self.sizes}, activations=[{acts}], loss={self.loss!r}, dtype={self.dtype.name!r})"


def load(path):
    """A Network, with its training state, from a file written by :meth:`Network.save`.

    Everything the file holds is checked as ``Network`` and ``fit`` check their arguments (finite
    parameters and optimizer state, counts, the RNG state, a History of equal-length lists);
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
        st = net.state
        st.step = checks.check_int(config.get("step", 0), "step", minimum=0)
        if "rng_state" in config:
            st.rng.bit_generator.state = config["rng_state"]
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
    """(epoch, logs) pairs of a saved History: epochs increasing in 1..epochs_trained, every key one number each."""
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
