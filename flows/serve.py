"""`python -m flows.serve`: one machine, no work pool — the nightly retrain and the daily drift
monitor on cron schedules, the retrain that a drift event triggers, the sweep on demand and,
with --score-source, hourly scoring of new files, served by this process until it is stopped
(Ctrl+C).

    python -m flows.serve [--project .] [--cron "0 2 * * *"] [--monitor-cron "0 1 * * *"]
                          [--score-source data/incoming] [--score-cron "15 * * * *"]
    prefect deployment run umcl-retrain/nightly          # trigger now, from another shell
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from prefect import serve
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from flows.monitor import monitor
from flows.retrain import retrain
from flows.score import score
from flows.sweep import sweep

DRIFT_TRIGGERS = "prefect.yaml"  # the on-drift deployment's trigger is written once, there


def drift_triggers(prefect_yaml: Path) -> list[DeploymentEventTrigger]:
    """The `on-drift` deployment's triggers as prefect.yaml declares them."""
    spec = yaml.safe_load(prefect_yaml.read_text())
    (deployment,) = [d for d in spec["deployments"] if d["name"] == "on-drift"]
    return [DeploymentEventTrigger.model_validate(t) for t in deployment["triggers"]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--project", default=".", help="the DVC project (default: here)")
    parser.add_argument(
        "--cron", default="0 2 * * *", help="retrain schedule (default: 02:00 daily)"
    )
    parser.add_argument(
        "--monitor-cron", default="0 1 * * *", help="drift monitor schedule (default: 01:00 daily)"
    )
    parser.add_argument(
        "--score-source", help="score new files of this folder or CSV (default: no scoring)"
    )
    parser.add_argument(
        "--score-cron", default="15 * * * *", help="scoring schedule (default: hourly at :15)"
    )
    args = parser.parse_args()
    project = str(Path(args.project).resolve())
    scoring = []
    if args.score_source:
        parameters = {"project": project, "source": args.score_source}
        # concurrency_limit: a back-fill longer than the interval makes the next run wait.
        deployment = score.to_deployment(
            name="score", cron=args.score_cron, parameters=parameters, concurrency_limit=1
        )
        scoring.append(deployment)
    serve(
        retrain.to_deployment(name="nightly", cron=args.cron, parameters={"project": project}),
        # One machine: new data land in data/raw directly; there is no remote to pull from.
        retrain.to_deployment(
            name="on-drift",
            parameters={"project": project},
            triggers=drift_triggers(Path(__file__).parent.parent / DRIFT_TRIGGERS),
        ),
        monitor.to_deployment(
            name="monitor", cron=args.monitor_cron, parameters={"project": project}
        ),
        sweep.to_deployment(name="sweep", parameters={"project": project}),
        *scoring,
    )


if __name__ == "__main__":
    main()
