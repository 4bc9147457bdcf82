"""Flow `umcl-retrain`: the scheduled entry point. Retrains only when something changed.

"Changed" is DVC's answer: `dvc status` lists a stage whose raw data, params or code differ
from `dvc.lock`. Because `package` is the last stage, an up-to-date pipeline means the
champion was built from the current data and params (its metadata records both); then the
flow reports "nothing new" and does nothing. `force` runs every stage again; `pull` first
fetches the DVC-tracked data from the remote. `reason` says who asked: the `on-drift`
deployment passes the drift the monitor found (`flows/monitor.py`), and the run's log and
artifact record it, including when there was nothing new to retrain on.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.tasks import exponential_backoff

from flows.pipeline import pipeline
from umcl.dvcops import dvc, out_of_date

NOTHING_NEW = "nothing new"


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=10))
def pull(project: str) -> None:
    dvc(Path(project), "pull", stage="pull")


@task
def changes(project: str) -> dict[str, list]:
    return out_of_date(Path(project))


@task
def current_champion(project: str) -> dict | None:
    """The store's champion (tag, data version, params digest), as `umcl models champion` says."""
    result = subprocess.run(
        ["umcl", "models", "champion"], cwd=project, capture_output=True, text=True
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


@flow(name="umcl-retrain")
def retrain(
    project: str = ".", force: bool = False, pull_data: bool = False, reason: str | None = None
) -> str:
    """Run the pipeline when data, params or code changed since the champion (or when forced);
    `reason`: why this run was started (recorded with what it did)."""
    log = get_run_logger()
    asked = f"Asked: {reason}\n\n" if reason else ""
    if reason:  # recorded before anything can fail
        log.info("started because %s", reason)
        create_markdown_artifact(key="umcl-retrain", markdown=f"## Retrain\n\n{asked}(running)")
    if pull_data:
        pull(project)
    changed = changes(project)
    champion = current_champion(project)
    if not changed and champion is not None and not force:
        message = (
            f"{NOTHING_NEW}: data, params and code are as when {champion['tag']} was built "
            f"(raw data {champion.get('data_version', {}).get('raw_data', '?')})"
        )
        if reason:
            message += (
                "; retraining on the same data gives the same model: add newly labelled studies"
            )
        log.info(message)
        create_markdown_artifact(key="umcl-retrain", markdown=f"## Retrain\n\n{asked}{message}")
        return NOTHING_NEW
    if force:
        why = "forced"
    elif champion is None:
        why = "no champion in the model store"
    else:
        why = f"changed: {', '.join(changed)}"
    log.info("retraining (%s)", why)
    # An up-to-date pipeline with an empty store (a new machine): decide and package again.
    ran = pipeline(
        project, force=force, force_stages=["gate", "package"] if champion is None else None
    )
    create_markdown_artifact(
        key="umcl-retrain",
        markdown=f"## Retrain\n\n{asked}Ran the pipeline ({why}); stages run: {', '.join(s for s, r in ran.items() if r) or 'none'}",
    )
    return f"retrained ({why})"


if __name__ == "__main__":
    retrain()
