"""The errors a user can fix. The CLI prints any `UMCLError` as one line and exits 1; any other
exception is a bug and keeps its traceback.

Each error class of the project that a user can fix derives from `UMCLError` (and from the
builtin its callers catch: a bad params file is still a `ValueError`); the two below are for the
rest: input or settings that cannot work, and an input that is not there yet.
"""

from __future__ import annotations


class UMCLError(Exception):
    """Something the user can fix: a params file, an input, a missing prerequisite. The message
    says what and how."""


class InputError(UMCLError, ValueError):
    """Input or settings that cannot work (a column that is not there, a pooling a backbone has
    no output for, a split too small for the batch)."""


class MissingInputError(UMCLError, FileNotFoundError):
    """An input that is not there yet: a stage that has not run, a model directory that is not
    one."""
