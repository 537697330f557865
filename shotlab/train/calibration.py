"""Calibration: temperature scaling fitted on the validation split and folded into the head.

    record = fit_calibration(y_val, probs_val, task="multiclass")   # {"method": "temperature", ...}
    fold_into_head(model, record)        # every runtime built from the model now gives calibrated scores
    probs = apply(probs, record, task)   # the same on scores already computed

A fine-tuned model on a few dozen images is over-confident (the demo's run had ECE 0.25), and the
review band and per-class thresholds are read off its scores. Temperature scaling (Guo et al.
2017) divides the logits by one fitted number T (multiclass: one T; multilabel: one T per class,
each class being its own sigmoid), chosen to minimise the validation negative log-likelihood. It
never changes which class scores highest, so accuracy is unchanged; only the confidences move.

The temperature is folded into the classifier's last linear layer (weights and bias divided by
T): the ONNX graph, TensorRT, the PyTorch reference and the explainers all compute the
calibrated logits with no extra operator, so parity holds by construction.

With fewer than MIN_SAMPLES validation images (or a single class present) the fit is refused and
the raw scores are kept; the record says why.

Where the raw scores already rank every validation sample's own class first (text embeddings
separate a few dozen comments easily; an exact tie counts), the log-likelihood keeps falling as
T shrinks and has no minimum: the fit ran to its bound T = 0.05 whatever the scores. n right of
n says the model is right about (n + 1) / (n + 2) of the time (Laplace's rule of succession), not
always; so for such a split (or such a class, multilabel) T is the one at which the mean score
of the true label is (n + 1) / (n + 2), and the record's `rule` says so, or says that no T
within the bounds reaches it (raw scores as close as 0.38 / 0.34 / 0.28 everywhere: T stays at
0.05, and such near ties still come out about 0.90 / 0.10).
"""

from __future__ import annotations

import numpy as np

from shotlab.train.metrics import ece

MIN_SAMPLES = 20  # below this the NLL of one temperature is dominated by one or two images
LOG_T_BOUNDS = (-3.0, 3.0)  # T in [0.05, 20]: beyond, the fit is chasing a handful of outliers
EPS = 1e-7
SEPARATED = ("the raw scores rank every validation sample's own class first (no log-likelihood "
             "minimum), so T gives the true label a mean score of (n + 1) / (n + 2) for n = {n}")


def pseudo_logits(probs, task: str) -> np.ndarray:
    """Logits that give `probs` back: log p for softmax (up to a per-row constant, which softmax
    ignores), log(p / (1 - p)) for sigmoid."""
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p)) if task == "multilabel" else np.log(p)


def scaled(probs, temperature, task: str) -> np.ndarray:
    """`probs` with their logits divided by `temperature` (a scalar or one value per class)."""
    z = pseudo_logits(probs, task) / np.asarray(temperature, dtype=np.float64)
    if task == "multilabel":
        return 1.0 / (1.0 + np.exp(-z))
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll(z: np.ndarray, y: np.ndarray, task: str) -> float:
    if task == "multilabel":  # binary cross-entropy of one class's column
        return float(np.mean(np.logaddexp(0.0, z) - y * z))
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(log_p[np.arange(len(y)), y]))


def _true_label_score(z: np.ndarray, y: np.ndarray, task: str) -> float:
    """The mean probability the logits `z` give each sample's true label (value, multilabel)."""
    if task == "multilabel":
        p = 1.0 / (1.0 + np.exp(-z))
        return float(np.mean(np.where(y == 1, p, 1 - p)))
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return float(np.mean(p[np.arange(len(y)), y]))


def _laplace_temperature(z: np.ndarray, y: np.ndarray, task: str) -> float:
    """For a separated split: the T giving the true label a mean score of (n + 1) / (n + 2),
    or the nearer bound where no T within them does (scores so close together that even
    T = 0.05 leaves the mean below it; the record then says so)."""
    from scipy.optimize import brentq

    target = (len(y) + 1) / (len(y) + 2)
    low, high = LOG_T_BOUNDS
    gap = lambda t: _true_label_score(z / np.exp(t), y, task) - target  # noqa: E731 (falls in t)
    if gap(low) <= 0 or gap(high) >= 0:  # out of reach within the bounds: the nearer bound
        return float(np.exp(low if gap(low) <= 0 else high))
    return float(np.exp(brentq(gap, low, high, xtol=1e-4)))


def laplace_rule(z: np.ndarray, y: np.ndarray, temperature: float, task: str) -> str:
    """What the record says of a separated split's (or multilabel column's) T: the Laplace
    target met, or missed at a bound."""
    target = (len(y) + 1) / (len(y) + 2)
    reached = _true_label_score(z / temperature, y, task)
    if abs(reached - target) <= 1e-3:
        return SEPARATED.format(n=len(y))
    return (f"{SEPARATED.format(n=len(y))}; out of reach within T "
            f"{np.exp(LOG_T_BOUNDS[0]):.2f}-{np.exp(LOG_T_BOUNDS[1]):.0f}, so the bound, at a "
            f"mean of {reached:.3f}")


def _separated(z: np.ndarray, y: np.ndarray, task: str) -> bool:
    """Whether every sample's true label is ranked first (multilabel: on the right side of 0.5),
    so the log-likelihood only falls as T shrinks."""
    if task == "multilabel":  # a score of exactly 0.5 is a tie: no minimum either
        return bool(np.all(np.where(y == 1, z >= 0, z <= 0)))
    true = z[np.arange(len(y)), y]
    others = np.where(np.arange(z.shape[1]) == y[:, None], -np.inf, z)
    return bool(np.all(true >= others.max(axis=1)))


def _best_temperature(z: np.ndarray, y: np.ndarray, task: str) -> tuple[float, bool]:
    """(T, separated): the log-likelihood's T, or for a perfectly separated split (no minimum)
    the Laplace one (module docstring)."""
    from scipy.optimize import minimize_scalar

    if _separated(z, y, task):
        return _laplace_temperature(z, y, task), True
    found = minimize_scalar(lambda t: _nll(z / np.exp(t), y, task), bounds=LOG_T_BOUNDS,
                            method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x)), False


def refusal(y, task: str) -> str | None:
    """Why the validation labels `y` are too few to fit a temperature, or None."""
    y = np.asarray(y)
    if len(y) < MIN_SAMPLES:
        return (f"only {len(y)} validation samples (calibration needs {MIN_SAMPLES}); "
                f"the scores are the model's raw ones")
    if task == "multiclass" and len(np.unique(y)) < 2:  # multilabel columns: see fit_calibration
        return "the validation split holds one class only; the scores are the model's raw ones"
    return None


def fit_calibration(y_val, probs_val, *, task: str) -> dict:
    """The calibration record for a model whose validation scores are `probs_val`."""
    reason = refusal(y_val, task)
    if reason:
        return {"method": "none", "reason": reason}
    y = np.asarray(y_val)
    z = pseudo_logits(probs_val, task)
    if task == "multilabel":  # a column with one label value only has no temperature to fit
        fits = [_best_temperature(z[:, k], y[:, k], task) if 0 < y[:, k].sum() < len(y)
                else (1.0, False) for k in range(z.shape[1])]
        temperature = [t for t, _ in fits]
        rules = {laplace_rule(z[:, k], y[:, k], t, task) for k, (t, sep) in enumerate(fits)
                 if sep}
        rule = "; ".join(sorted(rules)) + (" (for the classes so separated)" if rules else "")
    else:
        temperature, separated = _best_temperature(z, y, task)
        rule = laplace_rule(z, y, temperature, task) if separated else ""
    after = scaled(probs_val, temperature, task)
    return {"method": "temperature", "temperature": temperature, "fitted_on": int(len(y)),
            **({"rule": rule} if rule else {}),
            "val_nll_before": nll(y, probs_val, task), "val_nll_after": nll(y, after, task),
            "val_ece_before": ece(y, probs_val, task=task), "val_ece_after": ece(y, after, task=task)}


def nll(y, probs, task: str) -> float:
    """Mean negative log-likelihood (multilabel: binary cross-entropy over every score): what
    the temperature minimises, and a steadier figure than ECE on a few dozen images."""
    return _nll(pseudo_logits(probs, task), np.asarray(y), task)


def calibration_for(model, y_val, probs_val, *, task: str) -> dict:
    """`fit_calibration` for a timm model, refused when its classifier is not one linear layer
    (the temperature could not be folded into it)."""
    import torch

    head = model.get_classifier()
    if not isinstance(head, torch.nn.Linear):
        return {"method": "none", "reason": f"the classifier is a {type(head).__name__}, not a "
                                            f"linear layer; the scores are the model's raw ones"}
    return fit_calibration(y_val, probs_val, task=task)


def apply(probs, record: dict | None, task: str) -> np.ndarray:
    if not record or record.get("method") != "temperature":
        return np.asarray(probs)
    return scaled(probs, record["temperature"], task).astype(np.float32)


def fold_into_head(model, record: dict | None) -> None:
    """Divide the classifier's weights and bias by the record's temperature, in place."""
    import torch

    if not record or record.get("method") != "temperature":
        return
    head = model.get_classifier()
    t = torch.as_tensor(record["temperature"], dtype=head.weight.dtype,
                        device=head.weight.device).reshape(-1)
    with torch.no_grad():
        head.weight.div_(t[:, None] if t.numel() > 1 else t)
        if head.bias is not None:
            head.bias.div_(t)
