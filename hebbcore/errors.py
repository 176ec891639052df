"""Errors that reach the user as one line (the CLI prints them without a traceback)."""

from __future__ import annotations


class HebbcoreError(Exception):
    """Base class of every error hebbcore reports to a user.

    ``str(err)`` is a complete, single-line message; the CLI prints it and exits
    with :attr:`exit_code`.
    """

    exit_code = 1


class SpecError(HebbcoreError):
    """A run spec is invalid. Carries every problem found, not only the first."""

    exit_code = 2

    def __init__(self, problems: list[str], source: str = "spec"):
        self.problems = list(problems)
        self.source = source
        if len(self.problems) == 1:
            msg = f"{source}: {self.problems[0]}"
        else:
            msg = f"{source}: {len(self.problems)} problems: " + "; ".join(self.problems)
        super().__init__(msg)


class PluginError(HebbcoreError):
    """A plugin is broken: duplicate names, a misspelled hook, a bad return value."""

    exit_code = 2


class DataError(HebbcoreError):
    """A data file is missing, truncated or of the wrong shape."""


class BackendUnavailable(HebbcoreError):
    """The requested array backend (or its device) cannot be used on this machine."""


class TrainingDiverged(HebbcoreError):
    """NaN or inf appeared in weights or activations."""
