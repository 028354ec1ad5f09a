"""The bounded JSON reader: what it reads, and each refusal with its reason."""

from __future__ import annotations

import pytest

from codec.boundedjson import JsonRefused, load_bounded_json


def test_reads_json_within_its_bounds() -> None:
    assert load_bounded_json(b'{"a": [1, -2.5, null, "x"]}', 2, 3) == {"a": [1, -2.5, None, "x"]}
    assert load_bounded_json("[[]]", 2, 1) == [[]]
    assert load_bounded_json("-999", 0, 3) == -999


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[[]]]", "not JSON: nested deeper than 2 levels"),
        ("[" * 100_000, "not JSON: nested deeper than 2 levels"),
        ("1234", "not JSON: integer of 4 digits"),
        ("9" * 5000, "not JSON: integer of 5000 digits"),
        ("[NaN]", "not JSON: NaN is not a number"),
        ("-Infinity", "not JSON: -Infinity is not a number"),
        ("1e999", "not JSON: 1e999 is out of range"),
        (b"\xff", "not JSON: not UTF-8"),
        ("{", "not JSON: Expecting property name"),
    ],
)
def test_refuses_with_a_reason(text: str | bytes, message: str) -> None:
    with pytest.raises(JsonRefused, match=message):
        load_bounded_json(text, max_depth=2, max_int_digits=3)
    assert issubclass(JsonRefused, ValueError)
