"""How many training processes the train stage starts, and the command that starts them.

`train.devices` > 1 (or `auto` on a machine with several GPUs) or `train.nodes` > 1: the stage
hands its own command line to PyTorch's elastic launcher (`torch.distributed.run`, i.e.
`torchrun`), which starts one worker per device and joins the nodes; each worker runs the same
`umcl train` with the torchrun environment set and trains as one rank. So `dvc repro`, `dvc exp
run`, `umcl preset` and the Prefect flows train on many GPUs without a command of their own.
Settings torchrun reads from its environment (`PET_NNODES`, `PET_RDZV_ENDPOINT`,
`PET_NODE_RANK`, …, e.g. set by a SLURM script) take precedence over `train.nodes` and
`train.rendezvous`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import torch

from umcl.config import TrainSettings
from umcl.errors import InputError

# Every rank of one run meets under this id (torchrun's --rdzv-id; PET_RDZV_ID overrides it).
RENDEZVOUS_ID = "umcl-train"


def inside_launcher(env: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is a worker that torchrun started (it trains, it launches nothing)."""
    return "LOCAL_RANK" in env and "WORLD_SIZE" in env


def processes_per_node(config: TrainSettings) -> int:
    """`train.devices` as a number: auto is one process per visible GPU, one on a CPU."""
    on_gpus = config.device != "cpu" and torch.cuda.is_available()
    if config.devices == "auto":
        return torch.cuda.device_count() if on_gpus else 1
    if on_gpus and config.devices > torch.cuda.device_count():
        raise InputError(
            f"train.devices is {config.devices}, but this node shows {torch.cuda.device_count()} "
            "GPUs: set it to at most that, or auto"
        )
    return config.devices


def launcher_command(
    config: TrainSettings, argv: list[str], env: Mapping[str, str] = os.environ
) -> list[str] | None:
    """The torchrun command line that runs `umcl <argv>` on every device and node, or None when
    this process is to train alone (one device, one node) or is itself a torchrun worker."""
    if inside_launcher(env):
        return None
    per_node = processes_per_node(config)
    multi_node = config.nodes > 1 or "PET_NNODES" in env
    if per_node == 1 and not multi_node:
        return None
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={per_node}"]
    if not multi_node:
        command.append("--standalone")  # a local rendezvous on a free port
    else:
        endpoint = config.rendezvous or env.get("PET_RDZV_ENDPOINT")
        if endpoint is None:
            raise InputError(
                f"train.nodes is {config.nodes}: the nodes need a meeting point; set "
                "train.rendezvous: HOST:PORT (a port on the first node that every node reaches), "
                "or PET_RDZV_ENDPOINT in each node's environment"
            )
        wanted = {
            "PET_NNODES": f"--nnodes={config.nodes}",
            "PET_RDZV_BACKEND": "--rdzv-backend=c10d",
            "PET_RDZV_ENDPOINT": f"--rdzv-endpoint={endpoint}",
            "PET_RDZV_ID": f"--rdzv-id={RENDEZVOUS_ID}",
        }
        command += [flag for name, flag in wanted.items() if name not in env]
    return [*command, "-m", "umcl.cli", *argv]
