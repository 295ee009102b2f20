"""JSON in and out at C speed (orjson), exact for whole numbers of any size, and for every valid text.

orjson reads a whole number beyond 64 bits as a float and refuses to write one; the standard library
keeps such numbers exact. They matter: Stripe's contract quarantines them (they must reach it as
whole numbers), and the sandbox serves them to test that. So a text with a run of 19 or more digits
(every whole number beyond 64 bits has one) is read by the standard library, and a value orjson
cannot write is written by it.

orjson also refuses a lone surrogate escape (`"\\ud800"` without its low half): valid JSON, but no
Unicode character. The standard library reads it as that code point; a text orjson refused that holds
such an escape is read again by it (only then: a text orjson reads costs nothing more), and the
ingest replaces the code point before any writer sees it (quarantine.storable).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Every digit as "0" (a "0" then came from a digit): a run of 19 digits is 19 zeros. A scan ten times
# faster than a regular expression's, and the page is scanned whole.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * 19
# The escape of a NUL character or of a surrogate (high D800-DBFF, low DC00-DFFF). A JSON text holds
# neither unescaped, and its `\u` is always lower case.
_NUL_OR_SURROGATE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])")


def may_hold_wide_ints(data: bytes) -> bool:
    """Whether a JSON text has a run of 19 or more digits: without one, none of its whole numbers is
    beyond 64 bits (the widest 64-bit number has 19 digits, and every number of 18 fits)."""
    return _LONG_RUN in data.translate(_DIGITS_AS_ZERO)


def may_hold_nul_or_surrogates(data: bytes) -> bool:
    """Whether a JSON text escapes a NUL character or a surrogate: without such an escape, none of its
    strings holds a NUL or a lone surrogate (a pair, an escaped character beyond U+FFFF, finds one too).
    One scan, twice as fast as a search for the NUL escape alone."""
    return _NUL_OR_SURROGATE_ESCAPE.search(data) is not None


def loads(data: bytes | str, *, wide_ints: bool | None = None) -> Any:
    """The value of a JSON text; raises ValueError (orjson's or json's) when it is not JSON. A lone
    surrogate escape is read as its code point. `wide_ints`: `may_hold_wide_ints(data)` when the
    caller has it already (None: scanned here)."""
    if wide_ints is None:
        wide_ints = may_hold_wide_ints(data.encode() if isinstance(data, str) else data)
    if wide_ints:
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        if not may_hold_nul_or_surrogates(data.encode() if isinstance(data, str) else data):
            raise
        return json.loads(data)


def dumps(value: Any, *, line: bool = False) -> bytes:
    """Compact JSON, UTF-8; `line`: ending with a newline (a JSON Lines line)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE if line else None)
    except TypeError:  # orjson.JSONEncodeError: a whole number beyond 64 bits, a key that is not text,
        # a lone surrogate (the standard library writes its escape)
        return json.dumps(value, separators=(",", ":")).encode() + (b"\n" if line else b"")
