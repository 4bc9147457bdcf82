"""Calibration of zero-shot logits on constructed over-confident scores with known answers."""

from __future__ import annotations

import json

import pytest
import torch

from umcl.calibration import (
    Calibration,
    FindingCalibration,
    expected_calibration_error,
    fit_calibration,
    operating_stats,
    reliability_curve,
)

NAN = float("nan")
NAMES = ["Edema", "Cardiomegaly", "Pleural Effusion"]


def overconfident(n: int, seed: int, findings: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits z = 4·logit(q) + 1.5 of true probabilities q, labels ~ Bernoulli(q): a model four
    times too sure and biased toward positive, as the raw zero-shot scores are."""
    g = torch.Generator().manual_seed(seed)
    true_logit = torch.randn(n, findings, generator=g) * 1.5 + torch.linspace(-1, 0.5, findings)
    labels = torch.bernoulli(torch.sigmoid(true_logit), generator=g)
    return 4 * true_logit + 1.5, labels


def fitted(
    method: str, operating_point: str | dict = "youden"
) -> tuple[Calibration, torch.Tensor, torch.Tensor]:
    logits, labels = overconfident(3000, seed=0)
    return fit_calibration(logits, labels, NAMES, method, operating_point), logits, labels


@pytest.mark.parametrize(("method", "ceiling"), [("platt", 0.05), ("temperature", None)])
def test_calibration_lowers_held_out_ece(method: str, ceiling: float | None) -> None:
    calibration, _, _ = fitted(method)
    logits, labels = overconfident(3000, seed=1)
    before = expected_calibration_error(torch.sigmoid(logits), labels, NAMES)
    after = expected_calibration_error(calibration.probabilities(logits, NAMES), labels, NAMES)
    for name in NAMES:
        assert after["per_finding"][name] < before["per_finding"][name], name
    assert before["macro"] > 0.1  # the constructed scores are badly calibrated
    if ceiling is not None:
        assert after["macro"] < ceiling, after
    if method == "platt":  # the true map is a = 1/4, b = −1.5/4
        for entry in calibration.findings.values():
            assert entry.a == pytest.approx(0.25, abs=0.03)
            assert entry.b == pytest.approx(-0.375, abs=0.1)
    else:
        assert all(entry.b == 0 and 0 < entry.a < 1 for entry in calibration.findings.values())


def test_calibration_keeps_each_findings_ranking() -> None:
    calibration, logits, _ = fitted("platt")
    calibrated = calibration.probabilities(logits, NAMES)
    for k in range(len(NAMES)):
        assert torch.equal(logits[:, k].argsort(stable=True), calibrated[:, k].argsort(stable=True))


def test_finding_with_two_positives_is_not_fitted() -> None:
    logits, labels = overconfident(400, seed=2)
    labels[:, 1] = 0
    labels[[3, 7], 1] = 1
    labels[100:, 1] = NAN  # unknown rows count for neither class
    calibration = fit_calibration(logits, labels, NAMES, "platt", "youden")
    entry = calibration.findings["Cardiomegaly"]
    assert not entry.fitted and not calibration.calibrated("Cardiomegaly")
    assert (entry.a, entry.b, entry.threshold) == (1.0, 0.0, 0.5)
    assert (entry.positives, entry.negatives) == (2, 98)
    assert "2 positive" in entry.reason
    probabilities = calibration.probabilities(logits, NAMES)
    raw = torch.sigmoid(logits)  # same layout: a strided column's sigmoid differs in the last bit
    assert torch.equal(probabilities[:, 1], raw[:, 1])
    assert calibration.calibrated("Edema") and not torch.allclose(probabilities[:, 0], raw[:, 0])


def rates(
    probabilities: torch.Tensor, truth: torch.Tensor, threshold: float
) -> tuple[float, float]:
    """(sensitivity, specificity) of calling p ≥ threshold positive."""
    said, positive = probabilities >= threshold, truth == 1
    sensitivity = (said & positive).sum() / positive.sum()
    specificity = (~said & ~positive).sum() / (~positive).sum()
    return float(sensitivity), float(specificity)


@pytest.mark.parametrize("target", [0.9, 0.75])
def test_sensitivity_target_is_the_highest_threshold_reaching_it(target: float) -> None:
    calibration, logits, labels = fitted("platt", {"sensitivity": target})
    assert calibration.operating_point == {"sensitivity": target}
    probabilities = calibration.probabilities(logits, NAMES)
    for k, name in enumerate(NAMES):
        threshold = calibration.findings[name].threshold
        assert rates(probabilities[:, k], labels[:, k], threshold)[0] >= target
        higher = probabilities[:, k][probabilities[:, k] > threshold].min()
        assert rates(probabilities[:, k], labels[:, k], float(higher))[0] < target


def test_specificity_target_is_the_lowest_threshold_reaching_it() -> None:
    calibration, logits, labels = fitted("temperature", {"specificity": 0.8})
    probabilities = calibration.probabilities(logits, NAMES)
    for k, name in enumerate(NAMES):
        threshold = calibration.findings[name].threshold
        assert rates(probabilities[:, k], labels[:, k], threshold)[1] >= 0.8
        lower = probabilities[:, k][probabilities[:, k] < threshold].max()
        assert rates(probabilities[:, k], labels[:, k], float(lower))[1] < 0.8


def test_youden_threshold_maximises_tpr_minus_fpr() -> None:
    calibration, logits, labels = fitted("platt")
    probabilities = calibration.probabilities(logits, NAMES)
    for k, name in enumerate(NAMES):
        p, y = probabilities[:, k], labels[:, k]
        best = max(sum(rates(p, y, float(t))) - 1 for t in p.unique())
        chosen = sum(rates(p, y, calibration.findings[name].threshold)) - 1
        assert chosen == pytest.approx(best, abs=1e-6)
        assert 0.3 < calibration.findings[name].threshold < 0.7  # not the raw, biased scale


def test_no_method_keeps_raw_scores_but_chooses_thresholds() -> None:
    calibration, logits, labels = fitted("none", {"sensitivity": 0.9})
    assert all((e.a, e.b) == (1.0, 0.0) and e.fitted for e in calibration.findings.values())
    assert torch.equal(calibration.probabilities(logits, NAMES), torch.sigmoid(logits))
    decided = calibration.decisions(torch.sigmoid(logits), NAMES)
    sensitivity = (decided & (labels == 1)).sum(0) / (labels == 1).sum(0)
    assert (sensitivity >= 0.9).all()
    at_half = ((torch.sigmoid(logits) >= 0.5) & (labels == 1)).sum(0) / (labels == 1).sum(0)
    assert (at_half < 0.9).any()  # so the chosen thresholds are not the default


def test_round_trip_through_json_is_exact() -> None:
    calibration = fit_calibration(*overconfident(500, seed=3), NAMES, "platt", {"specificity": 0.7})
    calibration = Calibration(
        calibration.method,
        calibration.operating_point,
        calibration.findings | {"Edema": FindingCalibration(1.0, 0.0, 0.5, 1, 9, False, "too few")},
    )
    again = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert again == calibration
    logits = overconfident(50, seed=4)[0]
    assert torch.equal(again.probabilities(logits, NAMES), calibration.probabilities(logits, NAMES))


def test_names_outside_the_calibration_get_plain_sigmoid_and_half() -> None:
    calibration, logits, _ = fitted("platt")
    asked = ["Pneumothorax", "Edema"]
    two = torch.stack([logits[:, 1], logits[:, 0]], 1)  # Edema's logits in the second column
    probabilities = calibration.probabilities(two, asked)
    assert torch.equal(probabilities[:, 0], torch.sigmoid(two)[:, 0])
    torch.testing.assert_close(probabilities[:, 1], calibration.probabilities(logits, NAMES)[:, 0])
    decided = calibration.decisions(probabilities, asked)
    assert torch.equal(decided[:, 0], probabilities[:, 0] >= 0.5)
    assert not calibration.calibrated("Pneumothorax")
    identity = Calibration.identity(NAMES)
    assert torch.equal(identity.probabilities(logits, NAMES), torch.sigmoid(logits))
    assert not any(identity.calibrated(n) for n in NAMES)
    with pytest.raises(ValueError, match="3 logit columns for 2 names"):
        calibration.probabilities(logits, asked)


def test_bad_method_or_operating_point_is_refused() -> None:
    logits, labels = overconfident(100, seed=5)
    with pytest.raises(ValueError, match="calibration method 'isotonic'"):
        fit_calibration(logits, labels, NAMES, "isotonic", "youden")
    with pytest.raises(ValueError, match="operating point 'f1'"):
        fit_calibration(logits, labels, NAMES, "platt", "f1")
    with pytest.raises(ValueError, match="exactly one"):
        fit_calibration(logits, labels, NAMES, "platt", {"sensitivity": 0.9, "specificity": 0.9})


def test_metrics_on_hand_made_probabilities() -> None:
    probabilities = torch.tensor(
        [[0.05, 0.93], [0.15, 0.25], [0.12, 0.65], [1.0, 0.75], [0.3, 0.12]]
    )
    labels = torch.tensor([[0, 1], [1, 0], [0, NAN], [1, 1], [NAN, 1]])
    rows = reliability_curve(probabilities, labels, bins=10)
    assert [(r["bin"], r["count"]) for r in rows] == [(0, 1), (1, 3), (2, 1), (7, 1), (9, 2)]
    assert rows[1]["confidence"] == pytest.approx(0.13)
    assert rows[1]["frequency"] == pytest.approx(2 / 3)
    # p = 1.0 falls in the last bin, not one of its own.
    assert (rows[-1]["confidence"], rows[-1]["frequency"]) == (pytest.approx(0.965), 1.0)

    ece = expected_calibration_error(probabilities, labels, ["a", "b"], bins=10)
    # a: bins {0.05}→|0−0.05|, {0.15, 0.12}→|0.5−0.135|·2, {1.0}→0 over 4 rows.
    assert ece["per_finding"]["a"] == pytest.approx((0.05 + 2 * 0.365) / 4, abs=1e-6)
    assert ece["macro"] == pytest.approx(sum(ece["per_finding"].values()) / 2)
    assert ece["pooled"] == pytest.approx(
        expected_calibration_error(
            probabilities.flatten()[:, None], labels.flatten()[:, None], ["ab"], bins=10
        )["macro"]
    )
    # A finding whose known labels are one class has no ECE of its own, as it has no AUROC.
    one_class = expected_calibration_error(
        probabilities, torch.tensor([[1.0, 0], [1, 1], [1, 0], [1, 1], [1, 1]]), ["a", "b"]
    )
    assert set(one_class["per_finding"]) == {"b"} and "a" in one_class["skipped"]
    empty = expected_calibration_error(probabilities, torch.full_like(labels, NAN), ["a", "b"])
    assert (empty["macro"], empty["pooled"], empty["per_finding"]) == (None, None, {})

    calibration = Calibration(
        "platt", "youden", {"a": FindingCalibration(1.0, 0.0, 0.1, 2, 2, True)}
    )
    stats = operating_stats(probabilities, labels, ["a", "b"], calibration)
    assert stats["per_finding"]["a"] == {
        "threshold": 0.1,
        "sensitivity": 1.0,
        "specificity": 0.5,
        "positives": 2,
        "negatives": 2,
    }
    assert stats["per_finding"]["b"]["threshold"] == 0.5  # no entry: the default
    assert stats["per_finding"]["b"]["sensitivity"] == pytest.approx(2 / 3)
    assert stats["macro"]["specificity"] == pytest.approx(0.5 * (0.5 + 1.0))
    one_class = operating_stats(probabilities, torch.ones_like(labels), ["a", "b"], calibration)
    assert one_class["macro"] is None and set(one_class["skipped"]) == {"a", "b"}
