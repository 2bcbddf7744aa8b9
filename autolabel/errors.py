"""Errors that carry a hint for the user. The CLI prints them as `error: …` / `hint: …`."""

from __future__ import annotations


class AutolabelError(Exception):
    """Base error: `message` says what is wrong, `hint` says how to fix it. `exit_code` for the CLI."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(AutolabelError):
    """Bad input from the user (ontology, arguments, paths). Nothing has been written."""

    exit_code = 2


class OntologyError(UsageError):
    """The ontology YAML is invalid."""


class ModelLoadError(UsageError):
    """A model id or path could not be loaded."""


class RunStoreError(UsageError):
    """The output directory holds an incompatible or broken run."""


class MissingDependencyError(UsageError):
    """An optional dependency is not installed."""


class ImageError(AutolabelError):
    """One image could not be read; the run skips it and records the reason."""


class NonFiniteError(AutolabelError):
    """A model produced inf/NaN (half-precision overflow): the run stops, it is not one bad image."""


def shown(value: object) -> str:
    """A value as a message shows it: its repr, bounded (a YAML alias bomb or a 10 MB string stays a
    short line)."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother, r.maxlist, r.maxdict, r.maxtuple, r.maxset = 2, 60, 60, 4, 4, 4, 4
    return r.repr(value)


def joined(problems: list[str], most: int = 20) -> str:
    """Problems one per line (the first `most`, then how many more)."""
    head = problems[:most] + ([f"… and {len(problems) - most} more"] if len(problems) > most else [])
    return head[0] + "".join(f"\n  {p}" for p in head[1:])
