"""Per-target health state with hysteresis: `rise` successes in a row to go up, `fall`
failures in a row to go down. The first result decides the starting state, so the first
answers follow a real probe instead of a guess."""

from __future__ import annotations

from dataclasses import dataclass

RTT_WEIGHT = 0.3  # exponential moving average: how much one new round-trip time counts


@dataclass(slots=True)
class TargetState:
    rise: int
    fall: int
    up: bool | None = None  # None until the first result
    since: float = 0.0  # when `up` last changed
    successes: int = 0  # in a row
    failures: int = 0  # in a row
    last_ok: bool | None = None
    last_reason: str = "not probed yet"
    last_time: float = 0.0
    rtt: float | None = None  # smoothed RTT of successful probes since the last outage, seconds

    def record(self, ok: bool, reason: str, rtt: float | None, now: float) -> bool:
        """Add one probe result; return True when up/down changed."""
        self.last_ok, self.last_reason, self.last_time = ok, reason, now
        if ok:
            self.successes += 1
            self.failures = 0
            if rtt is not None:
                self.rtt = rtt if self.rtt is None else (1 - RTT_WEIGHT) * self.rtt + RTT_WEIGHT * rtt
        else:
            self.failures += 1
            self.successes = 0
            if self.up is False:
                # While down, the average holds only the successes in a row since the last
                # failure: the ones that bring the target back up (see below).
                self.rtt = None
        if self.up is None:
            self.up, self.since = ok, now
            return True
        if not self.up and self.successes >= self.rise:
            self.up, self.since = True, now
            return True
        if self.up and self.failures >= self.fall:
            # Forget the RTT of before the outage: a target that comes back (often on another
            # host, path or load) is ranked on the probes since, not on a stale average.
            self.up, self.since, self.rtt = False, now, None
            return True
        return False
