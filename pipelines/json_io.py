"""JSON in and out at C speed (orjson), exact for whole numbers of any size.

orjson reads a whole number beyond 64 bits as a float and refuses to write one; the standard library
keeps such numbers exact. They matter: Stripe's contract quarantines them (they must reach it as
whole numbers), and the sandbox serves them to test that. So a text with a run of 19 or more digits
(every whole number beyond 64 bits has one) is read by the standard library, and a value orjson
cannot write is written by it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Every digit as "0" (a "0" then came from a digit): a run of 19 digits is 19 zeros. A scan ten times
# faster than a regular expression's, and the page is scanned whole.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * 19


def may_hold_wide_ints(data: bytes) -> bool:
    """Whether a JSON text has a run of 19 or more digits: without one, none of its whole numbers is
    beyond 64 bits (the widest 64-bit number has 19 digits, and every number of 18 fits)."""
    return _LONG_RUN in data.translate(_DIGITS_AS_ZERO)


def loads(data: bytes | str, *, wide_ints: bool | None = None) -> Any:
    """The value of a JSON text; raises ValueError (orjson's or json's) when it is not JSON.
    `wide_ints`: `may_hold_wide_ints(data)` when the caller has it already (None: scanned here)."""
    if isinstance(data, str):
        data = data.encode()
    if may_hold_wide_ints(data) if wide_ints is None else wide_ints:
        return json.loads(data)
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: a whole number beyond 64 bits, a key that is not text
        return json.dumps(value, separators=(",", ":")).encode()
