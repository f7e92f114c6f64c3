"""Regressions for bugs found in review, each shown first by a reproduction."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

import dns.message
import dns.rcode
import pytest
from aiohttp.test_utils import TestServer

from gdns.answer.engine import Engine
from gdns.server.handler import Handler
from gdns.web import metrics
from gdns.web.app import make_app
from gdns.zone.loader import load_folder

DATA = Path(__file__).resolve().parent.parent / "data"


def _responses(handler, rcode: str) -> float:
    for family in metrics.QueryCollector(handler.stats.export).collect():
        for sample in family.samples:
            if sample.name == "gdns_dns_responses_total" and sample.labels.get("rcode") == rcode:
                return sample.value
    return 0.0


def test_badvers_replies_are_counted_as_badvers_not_noerror(tmp_path):
    shutil.copy(DATA / "test.example.yaml", tmp_path)
    handler = Handler(Engine(load_folder(tmp_path)))
    wire = dns.message.make_query("host.test.example.", "A", use_edns=1).to_wire()
    before_badvers, before_noerror = _responses(handler, "BADVERS"), _responses(handler, "NOERROR")
    reply = handler(wire, "udp", ("127.0.0.1", 5353))
    assert dns.message.from_wire(reply).rcode() == dns.rcode.BADVERS
    assert _responses(handler, "BADVERS") == before_badvers + 1
    assert _responses(handler, "NOERROR") == before_noerror


class _State:
    engine = None
    monitor = None
    reloader = None
    ready = True
    not_ready_reason = ""


@pytest.mark.filterwarnings("ignore:It is recommended to use web.AppKey")
def test_a_non_utf8_authorization_header_is_401_not_500():
    async def main() -> bytes:
        server = TestServer(make_app(_State(), "secret"), host="127.0.0.1")
        await server.start_server()
        try:
            body = b'{"member": "x", "state": "down"}'
            request = (
                b"POST /api/v1/overrides HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % len(body)
            ) + body

            def send() -> bytes:
                with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                    sock.sendall(request)
                    return sock.recv(200)

            return await asyncio.get_running_loop().run_in_executor(None, send)
        finally:
            await server.close()

    status_line = asyncio.run(main()).split(b"\r\n", 1)[0]
    assert b" 401 " in status_line, status_line
