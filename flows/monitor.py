"""Flow `umcl-monitor`: judge the last window of the service's records against the served
model's reference (`umcl drift`), publish the report as an artifact, and emit
`umcl.drift.detected` when the window drifted. The `on-drift` deployment of the retrain flow
(`prefect.yaml`, `flows/serve.py`) is triggered by that event and records it as its reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from umcl.config import load_settings
from umcl.monitor.report import drift_report, drifted, markdown, moment, write_report
from umcl.monitor.served import store_folder

DRIFT_EVENT = "umcl.drift.detected"
ARTIFACT_KEY = "umcl-drift"


@task
def judge(project: str, since: str, until: str | None, model: str | None) -> dict:
    root = Path(project).resolve()
    settings = load_settings(root / "params.yaml").monitor
    end = moment(until) if until else datetime.now(UTC)
    report = drift_report(store_folder(settings, root), settings, moment(since, end), end, model)
    write_report(report, root / "metrics/drift.json", root / "plots/drift")
    return report


def announce_drift(report: dict) -> None:
    """`umcl.drift.detected` with what an automation needs: the model, the window, why."""
    emit_event(
        event=DRIFT_EVENT,
        resource={"prefect.resource.id": f"umcl.model.{report['model']}",
                  "prefect.resource.name": report["model"]},
        payload={"model": report["model"], "since": report["since"], "until": report["until"],
                 "images": report["images"], "reasons": report["reasons"],
                 "input_p_value": report.get("input", {}).get("p_value")},
    )  # fmt: skip


@flow(name="umcl-monitor")
def monitor(
    project: str = ".", since: str = "24h", until: str | None = None, model: str | None = None
) -> str:
    """Drift of [since, until) (default: the last 24 hours) for `model` (default: the champion);
    returns the verdict."""
    report = judge(project, since, until, model)
    log = get_run_logger()
    log.info("drift: %s for %s over %d images%s", report["verdict"], report["model"],
             report["images"], f" ({'; '.join(report['reasons'])})" if report["reasons"] else "")  # fmt: skip
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=markdown(report),
                             description="UMCL drift report")  # fmt: skip
    if drifted(report):
        announce_drift(report)
    return report["verdict"]


if __name__ == "__main__":
    monitor()
