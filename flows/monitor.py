"""Flow `umcl-monitor`: judge the last window of the service's records against the served
model's reference (`umcl drift`), publish the report as an artifact, and emit
`umcl.drift.detected` when the window drifted. The `on-drift` deployment of the retrain flow
(`prefect.yaml`, `flows/serve.py`) is triggered by that event and records it as its reason.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from umcl.monitor.report import drifted, markdown

DRIFT_EVENT = "umcl.drift.detected"
ARTIFACT_KEY = "umcl-drift"
REPORT, PLOTS = "metrics/drift.json", "plots/drift"


@task
def judge(project: str, since: str, until: str | None, model: str | None) -> dict:
    """`umcl drift` in the project (its own process, so that the project's model store and
    params are the ones read); its report."""
    root = Path(project).resolve()
    command = ["umcl", "drift", "--since", since, "--out", REPORT, "--plots", PLOTS]
    command += (["--until", until] if until else []) + (["--model", model] if model else [])
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"umcl drift exited with {result.returncode}")
    get_run_logger().info(result.stdout.strip())
    return json.loads((root / REPORT).read_text())


def announce_drift(report: dict) -> None:
    """`umcl.drift.detected` with what an automation needs: the model, the window, why."""
    emit_event(
        event=DRIFT_EVENT,
        resource={
            "prefect.resource.id": f"umcl.model.{report['model']}",
            "prefect.resource.name": report["model"],
        },
        payload={
            "model": report["model"],
            "since": report["since"],
            "until": report["until"],
            "images": report["images"],
            "reasons": report["reasons"],
            "input_p_value": report.get("input", {}).get("p_value"),
        },
    )


@flow(name="umcl-monitor")
def monitor(
    project: str = ".", since: str = "24h", until: str | None = None, model: str | None = None
) -> str:
    """Drift of [since, until) (default: the last 24 hours) for `model` (default: the champion);
    returns the verdict."""
    report = judge(project, since, until, model)
    create_markdown_artifact(
        key=ARTIFACT_KEY, markdown=markdown(report), description="UMCL drift report"
    )
    if drifted(report):
        announce_drift(report)
    return report["verdict"]


if __name__ == "__main__":
    monitor()
