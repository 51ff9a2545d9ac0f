"""What the embedded stack raises when it cannot start or stop."""

from __future__ import annotations


class EmbeddedError(RuntimeError):
    """The embedded stack could not be started or stopped; the message says why and what to do."""
