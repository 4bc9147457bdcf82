"""UMCL: unified medical contrastive learning for chest X-rays, from raw data to a served model.

`umcl.load(source)` gives a Predictor for a model directory or a model store tag
(umcl/inference.py). Importing `umcl` stays cheap: torch and the model load only on that call.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from umcl.imaging.images import DecodeLimits
    from umcl.inference import Predictor

__version__ = "0.1.0"
__all__ = ["__version__", "load"]


def load(
    source: str | Path, device: str | torch.device = "cpu", limits: DecodeLimits | None = None
) -> Predictor:
    """A Predictor for `source`: a model directory, "umcl:<version>" or "umcl:champion" (the
    model store at $BENTOML_HOME). `limits`: the decode limits (default: from the environment,
    as the service reads them)."""
    from umcl.inference import load as load_predictor

    return load_predictor(source, device, limits)
