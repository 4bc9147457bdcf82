"""One module per `umcl` command, each owning its arguments (`add_arguments`) and its work
(`run`); `umcl/cli.py` only dispatches to them. A pipeline stage's paths have no defaults: they
come from its command line in `dvc.yaml`, the one place that names them, and a stage depends on
its own module's imports, not on the other commands'."""
