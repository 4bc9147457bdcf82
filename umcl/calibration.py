"""Per-finding calibration of zero-shot scores and decision thresholds.

The zero-shot probability of a finding is sigmoid(z) with the logit
z = s·(u·w_present − u·w_absent) (umcl/model/umcl.py). Those probabilities are not calibrated, so
on the validation split each finding gets either a Platt scaling p = sigmoid(a·z + b) or a
temperature p = sigmoid(z / T) (a = 1/T, b = 0), and a decision threshold on the calibrated
probability chosen by the configured operating point (`evaluate.operating_point` in
umcl/config/model.py). The result is saved with the model and applied by evaluation, the gate and
the service.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from umcl.config import OperatingTarget
from umcl.errors import InputError

METHODS = ("platt", "temperature", "none")
DEFAULT_THRESHOLD = 0.5
# A Gaussian prior on (log a, b) around the raw model (a = 1, b = 0) worth this much against the
# summed validation loss: its pull fades as a finding's validation examples grow, so a finding with
# few examples stays near the raw model while a well-sampled one is fitted by its data.
PRIOR_STRENGTH = 1.0
FIT_STEPS = 200
IDENTITY_OPERATING_POINT = "fixed 0.5"

OperatingPoint = str | dict[str, float]


@dataclass(frozen=True)
class FindingCalibration:
    """One finding's calibrated probability sigmoid(a·z + b) and its decision threshold on it."""

    a: float
    b: float
    threshold: float  # on the calibrated probability: positive when p ≥ threshold
    positives: int  # known validation labels of each class
    negatives: int
    fitted: bool  # False: too few validation examples; a = 1, b = 0, threshold 0.5
    reason: str | None = None  # why it was not fitted


@dataclass(frozen=True)
class Calibration:
    method: str  # platt | temperature | none
    operating_point: OperatingPoint  # "youden" or {"sensitivity": x} / {"specificity": x}
    findings: dict[str, FindingCalibration]

    @classmethod
    def identity(cls, names: list[str]) -> Calibration:
        """No calibration: the raw sigmoid(z) and threshold 0.5 for every finding."""
        unfitted = FindingCalibration(
            1.0, 0.0, DEFAULT_THRESHOLD, 0, 0, fitted=False, reason="no calibration (identity)"
        )
        return cls("none", IDENTITY_OPERATING_POINT, dict.fromkeys(names, unfitted))

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "operating_point": self.operating_point,
            "findings": {name: asdict(f) for name, f in self.findings.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        findings = {name: FindingCalibration(**f) for name, f in data["findings"].items()}
        return cls(data["method"], data["operating_point"], findings)

    def threshold(self, name: str) -> float:
        """The threshold `decisions` holds `name`'s probability to (0.5 without an entry)."""
        entry = self.findings.get(name)
        return DEFAULT_THRESHOLD if entry is None else entry.threshold

    def calibrated(self, name: str) -> bool:
        """Whether `name`'s probability is rescaled by a fit (with `none`, thresholds only)."""
        entry = self.findings.get(name)
        return entry is not None and entry.fitted and self.method != "none"

    def _column(
        self, names: list[str], field: str, default: float, like: torch.Tensor
    ) -> torch.Tensor:
        values = [
            getattr(self.findings[n], field) if n in self.findings else default for n in names
        ]
        return torch.tensor(values, dtype=like.dtype, device=like.device)

    def probabilities(self, logits: torch.Tensor, names: list[str]) -> torch.Tensor:
        """(n, F) calibrated probabilities of (n, F) logits whose columns are `names`; a name
        without an entry (e.g. outside the label space) gets the plain sigmoid(z)."""
        if logits.shape[-1] != len(names):
            raise ValueError(f"{logits.shape[-1]} logit columns for {len(names)} names")
        a = self._column(names, "a", 1.0, logits)
        b = self._column(names, "b", 0.0, logits)
        return torch.sigmoid(logits * a + b)

    def decisions(self, probabilities: torch.Tensor, names: list[str]) -> torch.Tensor:
        """(n, F) bool: calibrated probability ≥ the finding's threshold (0.5 without an entry)."""
        if probabilities.shape[-1] != len(names):
            raise ValueError(
                f"{probabilities.shape[-1]} probability columns for {len(names)} names"
            )
        return probabilities >= self._column(names, "threshold", DEFAULT_THRESHOLD, probabilities)


def operating_point_json(operating_point: OperatingPoint | OperatingTarget) -> OperatingPoint:
    """The configured operating point as stored: "youden" or a one-key target dict."""
    if isinstance(operating_point, str):
        if operating_point != "youden":
            raise InputError(f"operating point {operating_point!r}: use 'youden' or a target")
        return operating_point
    target = (
        operating_point
        if isinstance(operating_point, OperatingTarget)
        else OperatingTarget.model_validate(operating_point)
    )
    return target.model_dump(exclude_none=True)


def choose_threshold(
    probabilities: torch.Tensor, truth: torch.Tensor, operating_point: OperatingPoint
) -> float:
    """A threshold on `probabilities` (1-D, both classes in `truth`) by the operating point, among
    the ROC thresholds (each distinct score, positive when p ≥ threshold)."""
    # Imported where used: torchmetrics takes seconds to import, and a service that only
    # applies a calibration never needs it.
    from torchmetrics.functional.classification import binary_roc

    fpr, tpr, thresholds = binary_roc(probabilities, truth.long())
    if operating_point == "youden":
        return float(thresholds[(tpr - fpr).argmax()])
    ((rule, target),) = operating_point.items()
    if rule == "sensitivity":
        # Thresholds descend and TPR rises with them: the first one reaching the target is the
        # highest; the last threshold (the lowest score) always has TPR 1.
        return float(thresholds[(tpr >= target).nonzero()[0, 0]])
    if rule == "specificity":
        reaching = (1 - fpr >= target).nonzero()
        # A negative scored exactly 1.0 keeps every threshold below the target: take the highest.
        return float(thresholds[reaching[-1, 0]] if len(reaching) else thresholds[0])
    raise InputError(f"operating point {operating_point!r}: use youden, sensitivity or specificity")


def _fit_scaling(z: torch.Tensor, y: torch.Tensor, bias: bool) -> tuple[float, float]:
    """(a, b) minimising mean BCE of sigmoid(a·z + b) plus the prior around (1, 0).

    a = exp(log a) stays positive so calibration never reverses a finding's ranking (its AUROC
    is unchanged); temperature is the same fit without the bias (a = 1/T). torch's L-BFGS rather
    than scikit-learn: the penalty pulls toward (1, 0), not toward zero as sklearn's does, and it
    matches `linear_probe` in umcl/evaluate.py.
    """
    z, y = z.double(), y.double()
    params = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # (log a, b)
    mask = torch.tensor([1.0, 1.0 if bias else 0.0], dtype=torch.float64)
    optimizer = torch.optim.LBFGS(
        [params],
        max_iter=FIT_STEPS,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        log_a, b = params * mask
        loss = torch.nn.functional.binary_cross_entropy_with_logits(log_a.exp() * z + b, y)
        loss = loss + PRIOR_STRENGTH * (params * mask).pow(2).sum() / (2 * len(z))
        loss.backward()
        return loss

    optimizer.step(closure)
    log_a, b = (params * mask).detach().tolist()
    return math.exp(log_a), b


def fit_calibration(
    logits: torch.Tensor,
    labels: torch.Tensor,
    names: list[str],
    method: str,
    operating_point: OperatingPoint | OperatingTarget,
    min_per_class: int = 5,
) -> Calibration:
    """Fit each finding's scaling and threshold on validation logits (n, F) and labels (n, F)
    of 1 / 0 / NaN (unknown); findings with fewer than `min_per_class` known positives or
    negatives keep the raw sigmoid and threshold 0.5."""
    if method not in METHODS:
        raise InputError(f"calibration method {method!r}: use one of {', '.join(METHODS)}")
    if logits.shape != labels.shape or logits.shape[1] != len(names):
        raise ValueError(
            f"logits {tuple(logits.shape)}, labels {tuple(labels.shape)}, {len(names)} names"
        )
    point = operating_point_json(operating_point)
    logits, labels = logits.detach().cpu().float(), labels.detach().cpu().float()
    findings = {}
    for k, name in enumerate(names):
        known = ~labels[:, k].isnan()
        z, y = logits[known, k], labels[known, k]
        positives = int(y.sum())
        negatives = len(y) - positives
        if min(positives, negatives) < min_per_class:
            findings[name] = FindingCalibration(
                1.0,
                0.0,
                DEFAULT_THRESHOLD,
                positives,
                negatives,
                fitted=False,
                reason=f"{positives} positive and {negatives} negative known validation labels; "
                f"fitting needs at least {min_per_class} of each",
            )
            continue
        a, b = (1.0, 0.0) if method == "none" else _fit_scaling(z, y, bias=method == "platt")
        scaled = FindingCalibration(a, b, DEFAULT_THRESHOLD, positives, negatives, fitted=True)
        # The threshold is chosen on probabilities computed exactly as `probabilities` will.
        p = Calibration(method, point, {name: scaled}).probabilities(z[:, None], [name])[:, 0]
        threshold = choose_threshold(p, y, point)
        findings[name] = FindingCalibration(a, b, threshold, positives, negatives, fitted=True)
    return Calibration(method, point, findings)


def _known(
    probabilities: torch.Tensor, labels: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    known = ~labels[:, k].isnan()
    return probabilities[known, k], labels[known, k].long()


def expected_calibration_error(
    probabilities: torch.Tensor, labels: torch.Tensor, names: list[str], bins: int = 15
) -> dict[str, Any]:
    """ECE (L1, equal-width bins) per finding over its known labels, their mean, and `pooled`:
    over every known (image, finding) decision of those findings at once, the reliability
    diagram's ECE (a finding with a few dozen test labels has a noisy ECE of its own). As for
    AUROC, a finding whose known labels are all one class is skipped and named: labels that are
    only ever recorded when present (No Finding, Support Devices in CheXpert-style tables) say
    nothing about how often the model is right when it says absent."""
    from torchmetrics.functional.classification import binary_calibration_error  # see above

    per_finding, skipped, columns = {}, {}, []
    for k, name in enumerate(names):
        p, y = _known(probabilities, labels, k)
        positives = int(y.sum())
        if positives == 0 or positives == len(y):
            skipped[name] = f"{positives} positive of {len(y)} known labels"
            continue
        per_finding[name] = float(binary_calibration_error(p, y, n_bins=bins, norm="l1"))
        columns.append(k)
    macro = sum(per_finding.values()) / len(per_finding) if per_finding else None
    known = ~labels[:, columns].isnan()
    chosen, truth = probabilities[:, columns][known], labels[:, columns][known].long()
    pooled = (
        float(binary_calibration_error(chosen, truth, n_bins=bins, norm="l1")) if columns else None
    )
    return {"pooled": pooled, "macro": macro, "per_finding": per_finding, "skipped": skipped}


def operating_stats(
    probabilities: torch.Tensor, labels: torch.Tensor, names: list[str], calibration: Calibration
) -> dict[str, Any]:
    """Sensitivity and specificity per finding at the calibration's thresholds, over the known
    labels; findings without both classes are skipped and named."""
    decided = calibration.decisions(probabilities, names)
    per_finding, skipped = {}, {}
    for k, name in enumerate(names):
        known = ~labels[:, k].isnan()
        truth, said = labels[known, k] == 1, decided[known, k]
        positives, negatives = int(truth.sum()), int((~truth).sum())
        if positives == 0 or negatives == 0:
            skipped[name] = f"{positives} positive and {negatives} negative known labels"
            continue
        entry = calibration.findings.get(name)
        per_finding[name] = {
            "threshold": entry.threshold if entry else DEFAULT_THRESHOLD,
            "sensitivity": float((said & truth).sum()) / positives,
            "specificity": float((~said & ~truth).sum()) / negatives,
            "positives": positives,
            "negatives": negatives,
        }
    macro = (
        {
            measure: sum(f[measure] for f in per_finding.values()) / len(per_finding)
            for measure in ("sensitivity", "specificity")
        }
        if per_finding
        else None
    )
    return {"macro": macro, "per_finding": per_finding, "skipped": skipped}


def two_class_columns(labels: torch.Tensor) -> list[int]:
    """The findings whose known labels hold both classes."""
    positives = (labels == 1).sum(0)
    negatives = (labels == 0).sum(0)
    return [k for k in range(labels.shape[1]) if positives[k] > 0 and negatives[k] > 0]


def reliability_curve(
    probabilities: torch.Tensor, labels: torch.Tensor, bins: int = 10
) -> list[dict[str, float | int]]:
    """Reliability diagram rows pooled over the known labels of the findings with both classes
    (those `expected_calibration_error` pools): per non-empty equal-width bin the mean predicted
    probability, the observed positive rate and the count."""
    columns = two_class_columns(labels)
    probabilities, labels = probabilities[:, columns], labels[:, columns]
    known = ~labels.isnan()
    p, y = probabilities[known].double(), labels[known].double()
    # p = 1.0 belongs to the last bin, not to one of its own.
    index = (p * bins).floor().long().clamp(0, bins - 1)
    rows = []
    for i in range(bins):
        members = index == i
        count = int(members.sum())
        if count:
            rows.append(
                {
                    "bin": i,
                    "confidence": float(p[members].mean()),
                    "frequency": float(y[members].mean()),
                    "count": count,
                }
            )
    return rows
