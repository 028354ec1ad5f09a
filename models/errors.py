"""Turning library exceptions into one-line reasons for our error messages."""

from __future__ import annotations

__all__ = ["short_reason"]


def short_reason(error: BaseException) -> str:
    """The first line of ``error``'s message (torch's can run to a page), or its type name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
