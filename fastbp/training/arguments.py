"""fit's arguments, checked and converted at the boundary, and the defaults of training (defined once here)."""

import numpy as np

from ..common import checks
from ..engine import plan
from ..specs.optimizers import SGD, Optimizer, get_optimizer
from ..specs.schedules import ReduceLROnPlateau, get_schedule

__all__ = ["DEFAULTS", "resolve_optimizer", "check_fit_args", "row_class_weights", "split_validation",
           "check_monitor", "kernel_rule", "schedule_length"]

# The defaults of training, for Network.fit, fastbp.sweep, the estimators and the command line alike
# ("layers": the hidden widths where the data gives the input and output widths: sweep, command line).
DEFAULTS = {"layers": [64], "epochs": 20, "batch_size": 32, "lr": 0.1, "optimizer": "sgd", "schedule": None,
            "clip_norm": None}


def resolve_optimizer(optimizer, lr):
    """The Optimizer spec of fit's ``optimizer`` and ``lr`` arguments (plain SGD when neither is given)."""
    if lr is not None:
        lr = checks.check_positive_float(lr, "lr")
    if optimizer is None:
        return SGD(lr=DEFAULTS["lr"] if lr is None else lr)
    if isinstance(optimizer, Optimizer) and lr is not None:
        raise ValueError(f"lr: give the learning rate inside the optimizer ({optimizer!r}), not both")
    return get_optimizer(optimizer, lr)


def check_fit_args(net, X, y, epochs, batch_size, lr, optimizer, schedule, clip_norm, shuffle, validation_data,
                   validation_split, sample_weight=None, class_weight=None, l2=0.0):
    """fit's data and training settings, checked and converted: (X, Y, Xv, Yv, optimizer, schedule, clip,
    sw, swv, l2), the sample weights (float64, class weights folded in) None where not given."""
    X, Y = net.check_data(X, y)
    l2 = checks.check_nonnegative_float(l2, "l2")
    sw = None if sample_weight is None else checks.check_sample_weight(sample_weight, X.shape[0])
    if class_weight is not None:
        cw = row_class_weights(net, Y, class_weight)
        sw = cw if sw is None else sw * cw
        if not (sw > 0).any():
            raise ValueError("class_weight: with sample_weight, every row's weight is zero")
    _, _, clip = checks.fit_settings(epochs, batch_size, clip_norm)
    opt = resolve_optimizer(optimizer, lr)
    sched = get_schedule(schedule)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle: expected a bool, got {shuffle!r}")
    n = X.shape[0]
    X, Y, Xv, Yv = split_validation(net, X, Y, validation_data, validation_split)
    swv = None
    if validation_data is not None and len(validation_data) == 3 and validation_data[2] is not None:
        swv = checks.check_sample_weight(validation_data[2], Xv.shape[0], "validation_data[2]")
    elif validation_split is not None and sw is not None:
        sw, swv = sw[: X.shape[0]], sw[X.shape[0]:]
        for part, name in ((sw, "training"), (swv, "validation")):
            if not (part > 0).any():
                raise ValueError(f"sample_weight: the {name} rows of validation_split={validation_split} all "
                                 f"have weight zero (of {n} rows)")
    return X, Y, Xv, Yv, opt, sched, clip, sw, swv, l2


def row_class_weights(net, Y, class_weight):
    """Each row's weight (float64) from ``class_weight``: "balanced" (n / (n_classes · count(class)) over the
    classes present, as scikit-learn's ``compute_class_weight``) or a dict {label: weight} (labels of
    ``classes_``, or class indices without them; classes not named weigh 1). Y holds the encoded targets."""
    if not net.is_classifier:
        raise ValueError(f"class_weight: only a single-label classifier has classes; this network's loss is "
                         f"{net.loss!r} with {net.layout.sizes[-1]} outputs")
    idx = Y.argmax(axis=1) if Y.shape[1] > 1 else (Y[:, 0] >= 0.5).astype(np.int64)
    n_classes = max(Y.shape[1], 2)
    labels = list(range(n_classes)) if net.classes_ is None else net.classes_.tolist()
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight: expected 'balanced' or a dict {{label: weight}}, got {class_weight!r}")
        counts = np.bincount(idx, minlength=n_classes).astype(np.float64)
        present = counts > 0
        per_class = np.zeros(n_classes)
        per_class[present] = Y.shape[0] / (present.sum() * counts[present])
        return per_class[idx]
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight: expected 'balanced' or a dict {{label: weight}}, got "
                        f"{type(class_weight).__name__}")
    per_class = np.ones(n_classes)
    for label, weight in class_weight.items():
        matches = [i for i, c in enumerate(labels) if c == label]
        if not matches:
            raise ValueError(f"class_weight: unknown class {label!r}; the classes are {labels}")
        per_class[matches[0]] = checks.check_nonnegative_float(weight, f"class_weight[{label!r}]")
    w = per_class[idx]
    if not (w > 0).any():
        raise ValueError(f"class_weight: every row's class has weight zero ({class_weight!r})")
    return w


def split_validation(net, X, Y, validation_data, validation_split):
    """(X, Y, X_val, Y_val) from fit's ``validation_data`` or ``validation_split`` (None, None without)."""
    if validation_data is not None and validation_split is not None:
        raise ValueError("validation_data, validation_split: give one or the other, not both")
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)):
            raise TypeError(f"validation_data: expected (X_val, y_val) or (X_val, y_val, sample_weight_val), got "
                            f"{type(validation_data).__name__}"
                            f"{' of length ' + str(len(validation_data)) if isinstance(validation_data, (tuple, list)) else ''}")
        Xv, Yv = net.check_data(validation_data[0], validation_data[1], "validation_data")
        return X, Y, Xv, Yv
    if validation_split is not None:
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) or not (
            0.0 < validation_split < 1.0
        ):
            raise ValueError(f"validation_split: expected a fraction in (0, 1), got {validation_split!r}")
        n_val = int(round(X.shape[0] * validation_split))
        if not 1 <= n_val < X.shape[0]:
            raise ValueError(
                f"validation_split: {validation_split} of {X.shape[0]} rows leaves an empty part; "
                "expected at least one row in each"
            )
        cut = X.shape[0] - n_val
        return X[:cut], Y[:cut], X[cut:], Y[cut:]
    return X, Y, None, None


def check_monitor(schedule, net, Xv):
    """A plateau schedule's monitor must be logged: a ValueError before training if it is not."""
    if not isinstance(schedule, ReduceLROnPlateau):
        return
    logged = ["loss"] + (["accuracy"] if net.is_classifier else [])
    if Xv is not None:
        logged += ["val_" + k for k in logged]
    if schedule.monitor not in logged:
        raise ValueError(f"schedule: monitor {schedule.monitor!r} is not among the logged values {logged}"
                         + (" (pass validation_data or validation_split)" if schedule.monitor.startswith("val_")
                            else ""))


def kernel_rule(net, optimizer, schedule, clip, length, l2):
    """The kernels' ``plan.Rule`` of a network's training: the settings and the network's dropout."""
    return plan.rule(optimizer, schedule, clip, length, l2, net.dropout_rates, net.state.dropout_key)


def schedule_length(sched, epochs, n_batches):
    return epochs * n_batches if sched.per == "step" else epochs
