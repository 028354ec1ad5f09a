"""``json.loads`` for input from outside (files, data channels, signalling bodies).

Nesting depth and integer length are bounded and NaN/Infinity refused, so hostile input is
refused with a reason (JsonRefused, a ValueError, message "not JSON: ...") instead of raising
RecursionError or Python's bare 4,300-digit ValueError deep in ``json``.
"""

from __future__ import annotations

import json
import math
from typing import Any


class JsonRefused(ValueError):
    """Input that is not JSON, or is JSON beyond the reader's bounds."""


def load_bounded_json(text: str | bytes, max_depth: int, max_int_digits: int) -> Any:
    """The parsed value; JsonRefused for bad syntax or encoding, nesting deeper than
    ``max_depth``, integers longer than ``max_int_digits`` digits, NaN or Infinity."""

    def bounded_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_int_digits:
            raise JsonRefused(f"not JSON: integer of {len(digits)} digits")
        return int(digits)

    try:
        value = json.loads(
            text, parse_int=bounded_int, parse_float=_finite_float, parse_constant=_no_constant
        )
    except RecursionError as exc:
        raise JsonRefused(f"not JSON: nested deeper than {max_depth} levels") from exc
    except UnicodeDecodeError as exc:
        raise JsonRefused(f"not JSON: not UTF-8 ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise JsonRefused(f"not JSON: {exc.msg}") from exc
    if _depth(value) > max_depth:
        raise JsonRefused(f"not JSON: nested deeper than {max_depth} levels")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"not JSON: {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise JsonRefused(f"not JSON: {name} is not a number")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item)
    return deepest
