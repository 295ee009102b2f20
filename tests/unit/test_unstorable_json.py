"""JSON that no warehouse stores as read: lone surrogate escapes are read, then made storable with NUL."""

from __future__ import annotations

import json

import orjson
import pytest

from pipelines import json_io
from pipelines.ingest.quarantine import storable

R = "\ufffd"


@pytest.mark.parametrize(("text", "value"), [
    (b'["\\ud800"]', ["\ud800"]),
    (b'["a\\uDC00b"]', ["a\udc00b"]),  # hex digits in upper case are JSON too
    (b'{"\\udbff": "\\ud83d\\ude00"}', {"\udbff": "😀"}),  # a lone one in a key; a pair is one character
    (b'["\\ud83d\\ud83d\\uDE00", 12345678901234567890]', ["\ud83d😀", 12345678901234567890]),
])
def test_lone_surrogate_escapes_are_read_as_their_code_points(text, value):
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)
    assert json_io.may_hold_nul_or_surrogates(text)
    assert json_io.loads(text) == value == json.loads(text)
    assert json_io.loads(text.decode(), wide_ints=False) == value


def test_only_nul_and_surrogate_escapes_are_found_and_bad_json_still_raises():
    assert not json_io.may_hold_nul_or_surrogates(b'["\\u00e9 \\ud7ff \\ue000 \\u0001 \\\\ud", "\xf0\x9f\x98\x80"]')
    assert json_io.may_hold_nul_or_surrogates(b'["a\\u0000"]') and json_io.may_hold_nul_or_surrogates(b'["\\uDBFF"]')
    with pytest.raises(ValueError):
        json_io.loads(b'{"a": "\\ud800"')  # not JSON, surrogate or not
    with pytest.raises(ValueError):
        json_io.loads(b'{"a": tru}')


def test_storable_replaces_lone_surrogates_and_removes_nul_in_keys_and_values():
    value = {"name": "a\ud800b\udc00", "k\x00ey": ["x\x00", "😀", "\ud83d😀", 7, None], "\udfff": {"é": "ok"}}
    assert storable(value) == (
        {"name": f"a{R}b{R}", "key": ["x", "😀", f"{R}😀", 7, None], R: {"é": "ok"}}, 2, 4)


def test_storable_returns_clean_values_themselves():
    value = {"a": ["😀 é", 1.5, {"b": None}], "c": "\ufffd"}
    found, removed, replaced = storable(value)
    assert found is value and (removed, replaced) == (0, 0)
    assert storable({"d": "\\u0000 as text"}) == ({"d": "\\u0000 as text"}, 0, 0)  # walked, unchanged
    wide = {"a": 10**30, "b": ["x\x00"]}  # orjson does not write the number: walked
    assert storable(wide) == ({"a": 10**30, "b": ["x"]}, 1, 0)


def test_storable_counts_each_nul_character_as_the_arrow_path_does():
    assert storable({"a\x00\x00": "b\x00\x00\x00c"}) == ({"a": "bc"}, 5, 0)
