"""Has the world moved? A window of the service's records against the model's reference.

Three questions, each a test whose false-alarm rate is `monitor.alpha`:
- input drift: do the window's image embeddings come from the reference's distribution? With a
  reference sample, the kernel two-sample test (MMD, Gaussian kernel at the median distance)
  with a permutation p-value; always, a mean-shift test along the reference's principal axes
  (chi-square: it sees only a moved mean, and is all that is left with summary statistics).
- prediction drift: per finding, the window's positive rate against the reference's (Fisher's
  exact test, Bonferroni over the findings); mean probabilities are reported beside.
- data quality: the share of refused uploads against `monitor.max_failure_rate` (one-sided
  binomial test), and the mix of encodings (format, bits, photometric interpretation, modality,
  size class) against the window before (chi-square test of homogeneity, Bonferroni over the
  five; only when both windows hold `monitor.min_images` images).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from umcl.config import MonitorSettings
from umcl.errors import InputError
from umcl.monitor.reference import Reference
from umcl.monitor.store import CLASSIFIED, REFUSED

FACTS = ("format", "bits", "photometric", "modality", "size_class")
DRIFT, NO_DRIFT, TOO_FEW = "drift", "no drift", "too few images"


@dataclass(frozen=True)
class Window:
    """What the tests read of one window's records: sums and counts over every record, and the
    image embeddings — all of them, or a seeded sample of `monitor.max_images` (memory and time
    stay bounded however busy the window was)."""

    embeddings: np.ndarray  # (m, D), m ≤ images
    images: int  # classified images with a usable record
    positives: np.ndarray  # (L,) images at or above each finding's threshold
    probability_sums: np.ndarray  # (L,)
    refused: dict[str, int]  # reason code → uploads refused
    facts: dict[str, dict[str, int]]  # fact → value → classified images
    unusable: int = 0  # classified records without a finite embedding and probabilities

    @property
    def records(self) -> int:
        """Every record of the window: classified, unusable and refused."""
        return self.images + self.unusable + sum(self.refused.values())

    @classmethod
    def from_arrays(
        cls,
        embeddings: np.ndarray,
        probabilities: np.ndarray,
        thresholds: np.ndarray,
        refused: dict[str, int] | None = None,
        facts: dict | None = None,
        unusable: int = 0,
    ) -> Window:
        """A window of images already embedded and scored."""
        return cls(
            embeddings,
            len(embeddings),
            (probabilities >= thresholds).sum(axis=0),
            probabilities.sum(axis=0),
            refused or {},
            facts or {},
            unusable,
        )


def window_of(
    batches: Callable[[], Iterable[pa.Table]],
    dim: int,
    thresholds: np.ndarray,
    max_images: int | None = None,
    seed: int = 0,
) -> Window:
    """The window of the store's rows that `batches()` yields (called once, or twice when more
    than `max_images` images need a sample: the first pass counts them; both passes must see
    the same rows). A classified record whose embedding is not `dim` finite numbers, or whose
    probabilities are not one finite number per threshold, is counted as unusable and left out
    of every test. The sample is the one `input_drift` draws from all of
    the window's embeddings (same seed, same rows, same order)."""
    findings = len(thresholds)
    images, unusable = 0, 0
    positives, sums = np.zeros(findings, np.int64), np.zeros(findings, np.float64)
    refused: Counter = Counter()
    facts: dict[str, Counter] = {fact: Counter() for fact in FACTS}
    kept: list[np.ndarray] | None = []  # every embedding, until there are too many
    for batch in batches():
        outcome = batch.column("outcome").to_numpy(zero_copy_only=False)
        refused.update(
            str(r) for r in batch.filter(pa.array(outcome == REFUSED)).column("reason").to_pylist()
        )
        embeddings, probabilities, usable, classified = _usable(batch, outcome, dim, findings)
        images += int(usable.sum())
        unusable += int((~usable).sum())
        positives += (probabilities[usable] >= thresholds).sum(axis=0)
        sums += probabilities[usable].sum(axis=0, dtype=np.float64)
        good = classified.filter(pa.array(usable))
        for fact in FACTS:
            facts[fact].update(str(v) for v in good.column(fact).to_pylist())
        if kept is not None:
            kept.append(embeddings[usable])
            if max_images is not None and images > max_images:
                kept = None
    if kept is not None:
        sample = np.concatenate([np.zeros((0, dim), np.float32), *kept])
    else:
        sample = _sample(batches, dim, findings, images, max_images, seed)
    return Window(
        sample,
        images,
        positives,
        sums.astype(np.float32),
        _counts(refused),
        {fact: dict(sorted(counts.items())) for fact, counts in facts.items()},
        unusable,
    )


def sample_rows(images: int, max_images: int, seed: int) -> np.ndarray:
    """The rows of a window's `images` embeddings that the input tests read."""
    return np.random.default_rng(seed).choice(images, max_images, replace=False)


def _sample(
    batches: Callable[[], Iterable[pa.Table]],
    dim: int,
    findings: int,
    images: int,
    max_images: int,
    seed: int,
) -> np.ndarray:
    """The `sample_rows` of the window's usable embeddings, read in a second pass."""
    chosen = sample_rows(images, max_images, seed)
    order = np.argsort(chosen)
    wanted = chosen[order]  # row numbers, ascending; order[k] is where row wanted[k] goes
    out = np.zeros((max_images, dim), np.float32)
    seen, k = 0, 0
    for batch in batches():
        outcome = batch.column("outcome").to_numpy(zero_copy_only=False)
        embeddings, _, usable, _ = _usable(batch, outcome, dim, findings)
        rows = embeddings[usable]
        while k < len(wanted) and wanted[k] < seen + len(rows):
            out[order[k]] = rows[wanted[k] - seen]
            k += 1
        seen += len(rows)
    if seen != images:  # a file went (retention) or broke between the passes
        raise InputError(
            f"the window's records changed while they were read ({images} images, then {seen}): "
            "run `umcl drift` again"
        )
    return out


def _usable(
    batch: pa.Table, outcome: np.ndarray, dim: int, findings: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pa.Table]:
    """(embeddings, probabilities, usable, the classified rows) of one batch."""
    classified = batch.filter(pa.array(outcome == CLASSIFIED))
    embeddings = _matrix(classified.column("embedding"), dim)
    probabilities = _matrix(classified.column("probabilities"), findings)
    usable = np.isfinite(embeddings).all(axis=1) & np.isfinite(probabilities).all(axis=1)
    return embeddings, probabilities, usable, classified


def _matrix(column: pa.ChunkedArray, width: int) -> np.ndarray:
    """(n, width) float32 of a list column; a row that is missing or of another length is NaN."""
    column = column.combine_chunks()
    out = np.full((len(column), width), np.nan, np.float32)
    lengths = pc.list_value_length(column).fill_null(-1).to_numpy(zero_copy_only=False)
    whole = lengths == width
    if whole.any():
        values = column.filter(pa.array(whole)).flatten().fill_null(np.nan)
        out[whole] = values.to_numpy(zero_copy_only=False).reshape(-1, width)
    return out


def _counts(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


# --- input drift ------------------------------------------------------------------------------


def mmd_test(
    reference: np.ndarray, window: np.ndarray, permutations: int, seed: int = 0
) -> tuple[float, float]:
    """Unbiased MMD² between two samples (Gaussian kernel, bandwidth the pooled median squared
    distance) and its permutation p-value."""
    pooled = np.vstack([reference, window]).astype(np.float64)
    m, total = len(reference), len(pooled)
    squared = np.sum(pooled**2, axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * pooled @ pooled.T, 0)
    bandwidth = np.median(distances[np.triu_indices(total, 1)]) or 1.0
    kernel = np.exp(-distances / bandwidth)

    def statistic(members: np.ndarray) -> np.ndarray:
        """MMD² for each row of `members` (P, total), 1 where a sample is in the first group."""
        a, b = members, 1 - members
        aka = np.einsum("pi,ij,pj->p", a, kernel, a, optimize=True) - m
        bkb = np.einsum("pi,ij,pj->p", b, kernel, b, optimize=True) - (total - m)
        akb = np.einsum("pi,ij,pj->p", a, kernel, b, optimize=True)
        n = total - m
        return aka / (m * (m - 1)) + bkb / (n * (n - 1)) - 2 * akb / (m * n)

    observed = statistic(np.r_[np.ones(m), np.zeros(total - m)][None, :])[0]
    rng = np.random.default_rng(seed)
    shuffled = np.zeros((permutations, total))
    for row in range(permutations):
        shuffled[row, rng.permutation(total)[:m]] = 1
    null = statistic(shuffled)
    return float(observed), float((1 + np.sum(null >= observed)) / (1 + permutations))


def mean_shift_test(reference: Reference, window: np.ndarray, axes: int) -> tuple[float, float]:
    """Chi-square statistic of the window mean's distance from the reference mean along the
    reference's first `axes` principal axes (both means' sampling errors counted), p-value."""
    n, big_n = len(window), reference.images
    kept = reference.axes[:axes]
    shift = (window.mean(axis=0) - reference.mean) @ kept.T
    variances = np.maximum(reference.variances[: len(kept)], 1e-12) * (1 / n + 1 / big_n)
    statistic = float(np.sum(shift**2 / variances))
    return statistic, float(stats.chi2.sf(statistic, df=len(kept)))


IMAGES_PER_AXIS = 50  # a principal axis's variance is trusted when this many images estimated it


def input_drift(
    reference: Reference, window: np.ndarray, settings: MonitorSettings, seed: int = 0
) -> dict:
    """Two views of the window's embeddings: any change of distribution (MMD, with a reference
    sample) and a moved mean along the reference's main axes (as many as its test images can
    estimate well); with both, each is held to alpha / 2 (Bonferroni), so together they keep
    the false-alarm rate at alpha."""
    tests = {}
    if len(window) > settings.max_images:  # a busy day: a seeded sample bounds time and memory
        window = window[sample_rows(len(window), settings.max_images, seed)]
    if len(reference.embeddings) >= 2:
        statistic, p_value = mmd_test(reference.embeddings, window, settings.permutations, seed)
        tests["mmd"] = {"statistic": round(statistic, 6), "p_value": p_value}
    axes = min(settings.summary_axes, reference.images // IMAGES_PER_AXIS)
    if axes:
        statistic, p_value = mean_shift_test(reference, window, axes)
        tests["mean_shift"] = {"statistic": round(statistic, 3), "p_value": p_value, "axes": axes}
    if not tests:
        raise InputError(
            f"the reference holds no embeddings and only {reference.images} test images, too few "
            f"to estimate one principal axis ({IMAGES_PER_AXIS}): keep monitor.reference_size > 0"
        )
    combined = min(1.0, len(tests) * min(t["p_value"] for t in tests.values()))
    return {
        "test": " + ".join(tests),
        "tests": tests,
        "p_value": combined,
        "reference_images": len(reference.embeddings) or reference.images,
        "drifted": combined < settings.alpha,
    }


# --- prediction drift -------------------------------------------------------------------------


def prediction_drift(reference: Reference, window: Window, alpha: float) -> dict:
    """Per finding: the reference's and the window's positive rates (at the finding's threshold)
    and mean probabilities, and Fisher's exact test of the two rates (exact also for a rare
    finding); a finding drifted when its p-value is under alpha / findings."""
    n, big_n = window.images, reference.images
    window_positive = window.positives
    findings, drifted = {}, []
    for index, name in enumerate(reference.labels):
        p_ref = float(reference.positive_rate[index])
        ref_positive = round(p_ref * big_n)
        win_positive = int(window_positive[index])
        table = [[win_positive, n - win_positive], [ref_positive, big_n - ref_positive]]
        p_value = float(stats.fisher_exact(table)[1])
        findings[name] = {
            "reference_rate": round(p_ref, 4),
            "window_rate": round(win_positive / n, 4),
            "p_value": p_value,
            "reference_mean_probability": round(float(reference.mean_probability[index]), 4),
            "window_mean_probability": round(float(window.probability_sums[index] / n), 4),
        }
        if p_value < alpha / len(reference.labels):
            drifted.append(name)
    return {"findings": findings, "drifted": drifted}


# --- data quality -----------------------------------------------------------------------------


def mix_change(current: dict[str, int], previous: dict[str, int]) -> float:
    """p-value of the chi-square test that two windows share one mix of values (1.0 when there
    is nothing to compare)."""
    values = sorted(set(current) | set(previous))
    if len(values) < 2 or not sum(current.values()) or not sum(previous.values()):
        return 1.0
    table = np.array([[current.get(v, 0) for v in values], [previous.get(v, 0) for v in values]])
    return float(stats.chi2_contingency(table, correction=False)[1])


def quality_drift(window: Window, previous: Window | None, settings: MonitorSettings) -> dict:
    """Refused uploads: drifted when a one-sided binomial test says the refusal rate is above
    `max_failure_rate` (one refusal among few uploads is not enough). The encoding mix: compared
    with the window before when both hold at least `min_images` images."""
    refused = sum(window.refused.values())
    uploads = window.images + window.unusable + refused
    p_refused = (
        float(stats.binomtest(refused, uploads, settings.max_failure_rate, "greater").pvalue)
        if refused
        else 1.0
    )
    mix = {fact: window.facts.get(fact, {}) for fact in FACTS}
    report: dict = {
        "uploads": uploads,
        "refused": window.refused,
        "unusable_records": window.unusable,
        "failure_rate": round(refused / uploads, 4) if uploads else 0.0,
        "max_failure_rate": settings.max_failure_rate,
        "failure_p_value": p_refused,
        "too_many_refused": p_refused < settings.alpha,
        "mix": mix,
    }
    changed = []
    if previous is not None and min(window.images, previous.images) >= settings.min_images:
        p_values = {f: mix_change(mix[f], previous.facts.get(f, {})) for f in FACTS}
        report["previous_mix"] = {f: previous.facts.get(f, {}) for f in FACTS}
        report["mix_p_values"] = p_values
        changed = [f for f, p in p_values.items() if p < settings.alpha / len(FACTS)]
    report["mix_changed"] = changed
    report["drifted"] = report["too_many_refused"] or bool(changed)
    return report


# --- the verdict ------------------------------------------------------------------------------


def detect(
    reference: Reference,
    window: Window,
    previous: Window | None,
    settings: MonitorSettings,
    *,
    model: str,
    since: datetime,
    until: datetime,
    seed: int = 0,
) -> dict:
    """The drift report of one window (`metrics/drift.json`)."""
    report: dict = {
        "model": model,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "images": window.images,
        "min_images": settings.min_images,
        "quality": quality_drift(window, previous, settings),
    }
    if window.images < settings.min_images:
        # Too few to test the inputs; refusals alone can still say the world moved.
        report["verdict"] = DRIFT if report["quality"]["drifted"] else TOO_FEW
        report["reasons"] = _reasons(report)
        return report
    report["input"] = input_drift(reference, window.embeddings, settings, seed)
    report["prediction"] = prediction_drift(reference, window, settings.alpha)
    report["reasons"] = _reasons(report)
    report["verdict"] = DRIFT if report["reasons"] else NO_DRIFT
    return report


def _reasons(report: dict) -> list[str]:
    """Why the window drifted, in words (empty: it did not)."""
    reasons = []
    inputs = report.get("input")
    if inputs and inputs["drifted"]:
        reasons.append(
            f"input embeddings differ from the reference ({inputs['test']}, "
            f"p = {inputs['p_value']:.3g})"
        )
    prediction = report.get("prediction")
    if prediction and prediction["drifted"]:
        reasons.append(f"positive rates moved for {', '.join(prediction['drifted'])}")
    quality = report["quality"]
    if quality["too_many_refused"]:
        reasons.append(
            f"{quality['failure_rate']:.1%} of {quality['uploads']} uploads refused (above "
            f"{quality['max_failure_rate']:.1%}, p = {quality['failure_p_value']:.3g})"
        )
    if quality["mix_changed"]:
        reasons.append(f"input mix changed: {', '.join(quality['mix_changed'])}")
    return reasons
