"""Stage `gate`: may the candidate replace the champion?

Two kinds of check, on the metrics `umcl evaluate` wrote for the candidate:
- absolute thresholds from `params.yaml: gate` (null switches one off);
- no regression beyond `gate.max_regression` against the current champion, which is re-scored
  here on the *same* test split and image cache, so a new test set never flatters a candidate.
With no champion yet only the thresholds apply. `metrics/gate.json` records every check; a
failing candidate raises GateFailed (the stage exits non-zero) and the champion is untouched.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from umcl.atomic import write_json
from umcl.config import Settings
from umcl.errors import MissingInputError, UMCLError

log = logging.getLogger(__name__)

PRIMARY = "zero_shot_macro_auroc"  # what "better" means: the sweep ranks candidates by it


class GateFailed(UMCLError, RuntimeError):
    """The candidate did not pass; the message names each failed check."""


@dataclass(frozen=True)
class Check:
    name: str
    metric: str
    value: float | None
    threshold: float
    passed: bool
    skipped: str | None = None  # why the test split cannot measure it (`gate.unmeasurable: skip`)


def gated_metrics(metrics: dict) -> dict[str, float | None]:
    """The figures the gate looks at, from an `umcl evaluate` metrics dict: zero-shot macro AUROC
    with the model's own prompts (learned, else templates) and image→text Recall@5."""
    zero_shot = metrics.get("zero_shot", {})
    own = zero_shot.get("learned") or zero_shot.get("handcrafted") or {}
    retrieval = metrics.get("retrieval", {}).get("image_to_text", {})
    return {PRIMARY: own.get("macro_auroc"), "recall_at_5": retrieval.get("recall@5")}


def unmeasurable(metrics: dict) -> dict[str, str]:
    """Gated metrics that the test split cannot measure, and why (`umcl evaluate` writes no
    retrieval without image–report pairs, no zero-shot score without labelled images)."""
    reasons = {}
    if not metrics.get("retrieval"):
        reasons["recall_at_5"] = "the test split has no image–report pair"
    if not metrics.get("zero_shot"):
        reasons[PRIMARY] = "the test split has no labelled image"
    return reasons


def decide(
    candidate: dict[str, float | None],
    settings: Settings,
    champion: dict[str, float | None] | None,
    cannot_measure: dict[str, str] | None = None,
) -> list[Check]:
    """The checks of the candidate; `cannot_measure` (`unmeasurable`): minimums that the test
    data cannot judge, skipped under `gate.unmeasurable: skip` (a site without image–report
    pairs has no Recall@5), else failed. The zero-shot AUROC's minimum is never skipped."""
    gate = settings.gate
    minimums = {PRIMARY: gate.min_zero_shot_auroc, "recall_at_5": gate.min_recall_at_5}
    gated = [metric for metric, minimum in minimums.items() if minimum is not None]
    checks = []
    for metric in gated:
        value = candidate.get(metric)
        reason = (cannot_measure or {}).get(metric) if value is None else None
        # The primary metric is never skipped: a model must be judged on something.
        if reason is not None and gate.unmeasurable == "skip" and metric != PRIMARY:
            checks.append(Check(f"min_{metric}", metric, None, minimums[metric], True, reason))
            continue
        passed = value is not None and value >= minimums[metric]
        checks.append(Check(f"min_{metric}", metric, value, minimums[metric], passed))
    # No regression on every gated metric both models have a figure for (a null threshold only
    # switches off the absolute minimum).
    for metric in minimums:
        value, best = candidate.get(metric), (champion or {}).get(metric)
        if value is None or best is None:
            continue
        floor = best - gate.max_regression
        checks.append(Check(f"no_regression_{metric}", metric, value, floor, value >= floor))
    return checks


def _describe(check: Check) -> str:
    value = "not measured" if check.value is None else f"{check.value:.4f}"
    return f"{check.name}: {value} < {check.threshold:.4f}"


def rescore(
    model_dir: Path, triplets: pl.DataFrame, cache_dir: Path, locator_dir: Path, settings: Settings
) -> dict:
    """`umcl evaluate`'s metrics for a stored model on this test split. A model trained at another
    image size gets the same test images decoded at its own size."""
    from umcl.data.preprocess import build_cache, cache_image_size
    from umcl.evaluate import evaluate_model
    from umcl.imaging.limits import DecodeLimits
    from umcl.model.folder import input_size
    from umcl.model.umcl import UMCLModel

    test = triplets.filter(pl.col("split") == "test")
    size = input_size(model_dir)
    cached = cache_image_size(Path(cache_dir))
    with tempfile.TemporaryDirectory(prefix="umcl-gate-") as scratch:
        if size != cached:
            log.warning(
                "champion takes %d px images, the cache holds %d px: decoding the test images again",
                size,
                cached,
            )
            test_file = Path(scratch) / "test.parquet"
            test.write_parquet(test_file)
            cache_dir = Path(scratch) / "cache"
            build_cache(
                test_file,
                cache_dir,
                size,
                locator_dir,
                settings.preprocess.workers,
                DecodeLimits.from_settings(settings.decode),
            )
        metrics, _ = evaluate_model(
            UMCLModel.from_pretrained(model_dir),
            test,
            Path(cache_dir),
            settings.evaluate,
            settings.labels.uncertainty,
            settings.seed,
        )
    return metrics


def run_gate(
    settings: Settings,
    candidate_metrics: Path,
    triplets_path: Path,
    cache_dir: Path,
    locator_dir: Path,
    out: Path,
    verdict: Path | None = None,
) -> dict:
    """Decide, write `out` (gate.json) and `verdict`, and raise GateFailed when the candidate
    fails."""
    from umcl import registry
    from umcl.model.folder import ModelLayoutError

    if not Path(candidate_metrics).is_file():
        raise MissingInputError(
            f"{candidate_metrics}: no candidate metrics; run `umcl evaluate` first"
        )
    measured = json.loads(Path(candidate_metrics).read_text())
    candidate = gated_metrics(measured)
    champion = registry.champion()
    champion_report = None
    if champion is not None:
        try:
            scores = gated_metrics(
                rescore(
                    champion.path, pl.read_parquet(triplets_path), cache_dir, locator_dir, settings
                )
            )
        except ModelLayoutError as exc:  # a champion this version cannot load: say so, in gate.json
            log.warning(
                "champion %s cannot be re-scored, no-regression check skipped: %s",
                champion.tag,
                exc,
            )
            champion_report = {"tag": champion.tag, "metrics": None, "not_rescored": str(exc)}
        else:
            champion_report = {"tag": champion.tag, "metrics": scores}
    checks = decide(
        candidate,
        settings,
        champion_report["metrics"] if champion_report else None,
        unmeasurable(measured),
    )
    for check in checks:
        if check.skipped:
            log.warning("gate: %s skipped: %s (gate.unmeasurable: skip)", check.name, check.skipped)
    passed = all(c.passed for c in checks)
    report = {
        "passed": passed,
        "candidate": {"metrics": candidate, "source": str(candidate_metrics)},
        "champion": champion_report,
        "checks": [asdict(c) for c in checks],
        "max_regression": settings.gate.max_regression,
    }
    write_json(out, report)
    if verdict is not None:  # a number `dvc exp show` can put beside the AUROC
        write_json(verdict, {"passed": int(passed)}, indent=None)
    if not passed:
        failed = "; ".join(_describe(c) for c in checks if not c.passed)
        kept = f"champion {champion.tag} stays" if champion else "no champion is set"
        raise GateFailed(f"candidate refused ({failed}); {kept}. Details in {out}")
    return report
