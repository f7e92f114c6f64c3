"""The one duration syntax (gdns/zone/duration.py) shared by TTLs and check timings."""

from __future__ import annotations

from fractions import Fraction

import pytest

from gdns.zone.duration import check_seconds, parse_duration, ttl_seconds


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("0", 0),
        ("300", 300),
        ("0.5", Fraction(1, 2)),
        ("500ms", Fraction(1, 2)),
        ("1.5s", Fraction(3, 2)),
        ("5m", 300),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("1d12h", 129600),
        ("2w", 1209600),
        ("1w1d1h1m1s1ms", 604800 + 86400 + 3600 + 60 + 1 + Fraction(1, 1000)),
    ],
)
def test_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "ms", "5 s", " 5s", "5S", "1m30", "1.s", ".5s", "-1s", "1y"])
def test_not_a_duration(text):
    with pytest.raises(ValueError, match=r"is not a duration \(e\.g\. 300, 30s, 5m, 1h30m, 1d, 500ms\)"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["30m1h", "5m5m", "1s1m", "500ms1s"])
def test_units_largest_first_once(text):
    with pytest.raises(ValueError, match="give each unit once, largest first"):
        parse_duration(text)


def test_ttls_are_whole_seconds():
    assert ttl_seconds("1h30m") == 5400 and type(ttl_seconds("1h30m")) is int
    assert ttl_seconds("2000ms") == 2
    assert ttl_seconds(300.0) == 300
    assert ttl_seconds(300) == 300  # ints and other types are left to the model
    for value in ("1.5s", "500ms", 1.5):
        with pytest.raises(ValueError, match="is not a whole number of seconds"):
            ttl_seconds(value)


def test_check_timings_may_be_fractions():
    assert check_seconds("500ms") == 0.5
    assert check_seconds("1s250ms") == 1.25
    assert check_seconds(2) == 2.0 and type(check_seconds(2)) is float
    assert check_seconds(True) is True  # left to the model, which rejects it
