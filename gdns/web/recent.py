"""Shares of recent answers per member, from the cumulative pool-answer counters.

The answer path only counts (gdns.server.stats); this keeps marks of those totals taken by
`tick()` and reports what was answered since the newest mark at least one window old, so
the figures cover between one window and one window plus a tick interval.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping

WINDOW = 60.0  # seconds


class RecentAnswers:
    def __init__(self, totals: Callable[[], Mapping[str, int]], window: float = WINDOW):
        self.totals = totals  # () -> {member key: answers given since start}
        self.window = window
        self.marks: deque[tuple[float, Counter[str]]] = deque()

    def tick(self, now: float | None = None) -> None:
        """Take a mark (call every few seconds); marks older than needed are dropped."""
        now = time.monotonic() if now is None else now
        self.marks.append((now, Counter(self.totals())))
        while len(self.marks) > 1 and now - self.marks[1][0] >= self.window:
            self.marks.popleft()

    def counts(self, now: float | None = None) -> Counter[str]:
        now = time.monotonic() if now is None else now
        current = Counter(self.totals())
        base = None
        for taken, totals in self.marks:  # the newest mark at least a window old
            if now - taken < self.window:
                break
            base = totals
        if base is None:  # no mark a window old yet: everything since start
            return current
        current.subtract(base)
        return +current
