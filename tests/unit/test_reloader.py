"""ZoneReloader faults: an unexpected error in one reload is logged and polling goes on."""

from __future__ import annotations

import asyncio
import logging

from gdns.zone.reload import ZoneReloader
from tests.unit.test_zone_loader import write, zone_text


def test_an_unexpected_error_in_a_reload_does_not_stop_the_polling(tmp_path, caplog):
    write(tmp_path, "a.yaml", zone_text())
    applied = []

    def apply(zones):
        applied.append(zones)
        if len(applied) == 1:
            raise RuntimeError("a bug while applying")

    async def main():
        reloader = ZoneReloader(str(tmp_path), apply, interval=0.05)
        watcher = asyncio.get_running_loop().create_task(reloader.watch())
        try:
            for n, ttl in enumerate((301, 302), start=1):
                write(tmp_path, "a.yaml", zone_text(extra=f"ttl: {ttl}\n"))
                for _ in range(100):  # bounded: 5 s at most
                    if len(applied) >= n:
                        break
                    await asyncio.sleep(0.05)
            return reloader.last
        finally:
            watcher.cancel()

    with caplog.at_level(logging.ERROR, logger="gdns.reload"):
        last = asyncio.run(main())
    assert len(applied) == 2, caplog.text
    assert last.ok
    assert "zone reload failed unexpectedly; still serving the previous zones" in caplog.text
    assert "RuntimeError: a bug while applying" in caplog.text
