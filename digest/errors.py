"""One shallow exception tree; each error can carry a hint for the user."""

from __future__ import annotations


class DigestError(Exception):
    """Root of every error digest raises on purpose."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n  hint: {self.hint}" if self.hint else base


class ConfigError(DigestError):
    """A configuration value is missing or wrong."""


class SourceError(DigestError):
    """A source could not be read or parsed."""


class RenderError(DigestError):
    """A template could not be found or rendered."""


class DeliveryError(DigestError):
    """An edition could not be written or sent."""
