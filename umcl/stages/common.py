"""What every command shares: the settings file it reads."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from umcl.config import Settings

DEFAULT_PARAMS = Path("params.yaml")
LOCATOR_HELP = "image key → file table written by validate (as sensitive as the raw data)"


def settings(args: argparse.Namespace) -> Settings:
    """The settings of `--params`, checked (`umcl/config/`)."""
    from umcl.config import load_settings

    return load_settings(args.params)
