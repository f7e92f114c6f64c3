"""Operator overrides (force up, force down, drain), kept in a JSON state file so they
survive a restart. An override beats the zone file's status and the probes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger("gdns.overrides")
STATES = ("up", "down", "drain")


class OverrideError(Exception):
    pass


class Overrides:
    def __init__(self, path: str | None = None):
        self.path = path
        self.table: dict[str, dict] = {}  # member key -> {"state": ..., "since": unix time}
        if path and Path(path).exists():
            self.table = self._read(path)

    @staticmethod
    def _read(path: str) -> dict[str, dict]:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OverrideError(f"state file {path}: cannot be read ({exc})") from None
        table = data.get("overrides") if isinstance(data, dict) else None
        if not isinstance(table, dict):
            raise OverrideError(f'state file {path}: expected {{"overrides": {{...}}}}')
        good = {}
        for key, entry in table.items():
            if isinstance(entry, dict) and entry.get("state") in STATES:
                since = entry.get("since")
                # A hand-edited entry with a bad time still holds; only its "since" is lost.
                ok = isinstance(since, int | float) and not isinstance(since, bool) and since == since
                good[key] = {"state": entry["state"], "since": float(since) if ok else 0.0}
            else:
                log.warning("state file %s: ignoring the override of %s: %r", path, key, entry)
        return good

    def get(self, key: str) -> str | None:
        entry = self.table.get(key)
        return entry["state"] if entry else None

    def set(self, key: str, state: str) -> dict:
        if state not in STATES:
            raise OverrideError(f"state must be one of {', '.join(STATES)}, got {state!r}")
        before = dict(self.table)
        self.table[key] = {"state": state, "since": time.time()}
        self._save(before)
        log.warning("override: %s forced %s", key, state)
        return self.table[key]

    def clear(self, key: str) -> bool:
        if key not in self.table:
            return False
        before = dict(self.table)
        del self.table[key]
        self._save(before)
        log.warning("override: %s cleared", key)
        return True

    def _save(self, before: dict) -> None:
        """Write atomically (temporary file + rename); on failure keep the old table."""
        if not self.path:
            return
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".gdns-state-", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump({"overrides": self.table}, f, indent=2, sort_keys=True)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:  # a full disk, a read-only or vanished folder, no permission
            self.table = before
            message = f"state file {self.path}: cannot be written ({exc.strerror or exc})"
            log.error("%s; the overrides are unchanged", message)
            raise OverrideError(message) from None
