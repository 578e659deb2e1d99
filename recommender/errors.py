"""Errors that name what was wrong, so the CLI and the API can report them without a traceback."""

from __future__ import annotations


class TrustRecError(Exception):
    """Base class: a problem the user can fix, reported as a message, never as a traceback."""


class DataError(TrustRecError, ValueError):
    """Bad input data: names the file, the line and the field where known."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message, self.file, self.line, self.field = message, file, line, field
        where = ", ".join(
            part for part in (
                file and f"file {file}",
                line is not None and f"line {line}",
                field and f"field {field!r}",
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class ArtifactError(TrustRecError):
    """An artifact that is missing, truncated, foreign or of a newer format."""
