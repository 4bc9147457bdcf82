"""Prefect flows around the DVC pipeline: `pipeline`, `retrain` (scheduled), `sweep`, and
`python -m flows.serve` to run them on a schedule from one machine. Wiring only: the work is
in `umcl` and DVC."""
