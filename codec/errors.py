"""The one exception every decoder in ``codec`` raises for bad bytes."""

from __future__ import annotations


class BitstreamError(ValueError):
    """Malformed, truncated, corrupted or unsupported coded data (packet, key frame, container).

    A subclass of ValueError so callers that validate generic input can catch both at once.
    """
