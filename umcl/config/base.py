"""What every settings module builds on: the error a params file that cannot be used raises, the
strict base of every block (an unknown key is an error), and the value types that blocks of both
sides use (`umcl/config/data.py`, `umcl/config/model.py`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from umcl.errors import UMCLError

SourceKind = Literal["image_text", "image_label", "text_label"]
UncertaintyPolicy = Literal["zeros", "ones", "ignore"]


class ConfigError(UMCLError, ValueError):
    """A params file that cannot be used; the message names every offending key path."""


class Strict(BaseModel):
    """Base for every settings block: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
