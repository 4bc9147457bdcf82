"""`python -m flows.serve`: one machine, no work pool — the nightly retrain on a cron schedule and
the sweep on demand, served by this process until it is stopped (Ctrl+C).

    python -m flows.serve [--project .] [--cron "0 2 * * *"]
    prefect deployment run umcl-retrain/nightly          # trigger now, from another shell
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import serve

from flows.retrain import retrain
from flows.sweep import sweep


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--project", default=".", help="the DVC project (default: here)")
    parser.add_argument(
        "--cron", default="0 2 * * *", help="retrain schedule (default: 02:00 daily)"
    )
    args = parser.parse_args()
    project = str(Path(args.project).resolve())
    serve(
        retrain.to_deployment(name="nightly", cron=args.cron, parameters={"project": project}),
        sweep.to_deployment(name="sweep", parameters={"project": project}),
    )


if __name__ == "__main__":
    main()
