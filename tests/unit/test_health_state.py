"""gdns.health.state.TargetState: the first result decides, then rise/fall hysteresis with
exact counts, and a smoothed round-trip time of successful probes."""

from __future__ import annotations

import pytest

from gdns.health.state import RTT_WEIGHT, TargetState


def feed(state: TargetState, results: str, start: float = 100.0) -> list[bool]:
    """Record "+" (success) and "-" (failure) results one second apart; return `changed` for each."""
    return [
        state.record(r == "+", "ok" if r == "+" else "status 503", 0.01 if r == "+" else None, start + i)
        for i, r in enumerate(results)
    ]


def test_unprobed():
    state = TargetState(2, 3)
    assert (state.up, state.rtt, state.last_ok, state.last_reason) == (None, None, None, "not probed yet")


@pytest.mark.parametrize("first", ["+", "-"])
def test_first_result_decides_at_once(first):
    state = TargetState(rise=5, fall=5)
    assert feed(state, first) == [True]
    assert state.up is (first == "+")
    assert state.since == 100.0 and state.last_time == 100.0


@pytest.mark.parametrize("rise", [1, 2, 3, 5])
def test_rise_needs_exactly_rise_successes_in_a_row(rise):
    state = TargetState(rise=rise, fall=2)
    feed(state, "-")
    assert state.up is False
    changed = feed(state, "+" * rise, start=200.0)
    assert changed == [False] * (rise - 1) + [True]
    assert state.up is True and state.since == 200.0 + rise - 1
    assert state.successes == rise and state.failures == 0


@pytest.mark.parametrize("fall", [1, 2, 3, 5])
def test_fall_needs_exactly_fall_failures_in_a_row(fall):
    state = TargetState(rise=2, fall=fall)
    feed(state, "+")
    changed = feed(state, "-" * fall, start=200.0)
    assert changed == [False] * (fall - 1) + [True]
    assert state.up is False and state.since == 200.0 + fall - 1
    assert state.failures == fall and state.successes == 0


def test_a_success_in_between_restarts_the_fall_count():
    state = TargetState(rise=2, fall=3)
    feed(state, "+")
    assert not any(feed(state, "--+--+--"))
    assert state.up is True
    assert feed(state, "-") == [True]
    assert state.up is False


def test_a_failure_in_between_restarts_the_rise_count():
    state = TargetState(rise=3, fall=2)
    feed(state, "-")
    assert not any(feed(state, "++-++-++"))
    assert state.up is False
    assert feed(state, "+") == [True]
    assert state.up is True


def test_no_change_is_reported_while_steady():
    state = TargetState(rise=2, fall=2)
    assert feed(state, "+++++") == [True, False, False, False, False]
    assert feed(state, "--") == [False, True]
    assert feed(state, "---") == [False, False, False]


def test_last_result_is_kept_with_its_reason():
    state = TargetState(rise=2, fall=3)
    feed(state, "+-")
    assert state.up is True  # one failure is not enough to go down ...
    assert (state.last_ok, state.last_reason, state.last_time) == (
        False,
        "status 503",
        101.0,
    )  # ... but shows


def test_rtt_moving_average():
    state = TargetState(rise=1, fall=2)
    state.record(True, "status 200", 0.100, 1.0)
    assert state.rtt == pytest.approx(0.100)  # the first measurement is taken as is
    state.record(True, "status 200", 0.200, 2.0)
    expected = (1 - RTT_WEIGHT) * 0.100 + RTT_WEIGHT * 0.200
    assert state.rtt == pytest.approx(expected)
    state.record(False, "timeout after 1s", None, 3.0)
    assert state.rtt == pytest.approx(expected)  # failures do not count (while still up)
    state.record(True, "status 200", 0.050, 4.0)
    expected = (1 - RTT_WEIGHT) * expected + RTT_WEIGHT * 0.050
    assert state.rtt == pytest.approx(expected)
    assert RTT_WEIGHT == 0.3


def test_rtt_converges_to_a_new_level():
    state = TargetState(rise=1, fall=1)
    for i in range(30):
        state.record(True, "status 200", 0.010, float(i))
    for i in range(30):
        state.record(True, "status 200", 0.110, 30.0 + i)
    assert state.rtt == pytest.approx(0.110, abs=0.001)


def test_no_rtt_before_a_success():
    state = TargetState(rise=1, fall=1)
    feed(state, "---")
    assert state.rtt is None


def test_rtt_is_forgotten_when_the_target_goes_down():
    """The latency strategy ranks a recovered target on fresh samples, not on pre-outage ones."""
    state = TargetState(rise=2, fall=2)
    for i in range(10):
        state.record(True, "status 200", 0.010, float(i))
    assert state.rtt == pytest.approx(0.010)
    state.record(False, "timeout after 1s", None, 10.0)
    assert state.rtt == pytest.approx(0.010)  # one failure: still up, still measured
    assert state.record(False, "timeout after 1s", None, 11.0) is True
    assert state.up is False and state.rtt is None
    state.record(True, "status 200", 0.200, 12.0)
    assert state.rtt == pytest.approx(0.200)  # the first sample after the outage, taken as is
    assert state.record(True, "status 200", 0.300, 13.0) is True
    assert state.up is True
    assert state.rtt == pytest.approx((1 - RTT_WEIGHT) * 0.200 + RTT_WEIGHT * 0.300)


def test_rtt_on_recovery_holds_only_the_successes_that_brought_it_back():
    state = TargetState(rise=3, fall=1)
    feed(state, "-")
    state.record(True, "status 200", 0.500, 1.0)  # a lucky success while down ...
    state.record(False, "timeout after 1s", None, 2.0)  # ... then a failure: forgotten
    assert state.rtt is None
    for i in range(3):
        state.record(True, "status 200", 0.020, 3.0 + i)
    assert state.up is True and state.rtt == pytest.approx(0.020)
