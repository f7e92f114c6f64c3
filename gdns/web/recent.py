"""Shares of recent answers per member: counts over the current and the previous window."""

from __future__ import annotations

import time
from collections import Counter

WINDOW = 60.0  # seconds


class RecentAnswers:
    def __init__(self, window: float = WINDOW):
        self.window = window
        self.current: Counter[str] = Counter()
        self.previous: Counter[str] = Counter()
        self.started = time.monotonic()

    def add(self, member_key: str) -> None:
        now = time.monotonic()
        if now - self.started >= self.window:
            # One window passed: the current becomes the previous; two or more: both expire.
            self.previous = self.current if now - self.started < 2 * self.window else Counter()
            self.current = Counter()
            self.started = now
        self.current[member_key] += 1

    def counts(self) -> Counter[str]:
        return self.previous + self.current
