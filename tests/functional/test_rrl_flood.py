"""Response rate limiting end to end: the real server on loopback with a low limit, flooded
over UDP from 127.0.0.1 while a client in another /24 (127.0.1.1) asks too.

The flood is bounded in count and time; outcomes are counted per query ID (answered, slipped:
TC=1 with no records, or no reply at all) and asserted with tolerances, not exact counts.
"""

from __future__ import annotations

import select
import socket
import time
import urllib.request

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import EXAMPLE_ZONES, GdnsServer, wait_for

NAME = "www.gslb.example.com."
RATE = 10
FLOOD = 400
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy


def _metric(server, prefix: str) -> float:
    with OPENER.open(server.web + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def _can_bind(address: str) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False


def _drain(sock: socket.socket, replies: dict, wait: float = 0.0) -> None:
    while select.select([sock], [], [], wait)[0]:
        data = sock.recv(4096)
        message = dns.message.from_wire(data)
        replies[message.id] = message
        wait = 0.0


def flood(server, count: int = FLOOD, source: str = "127.0.0.1", between=None, every: int = 40) -> dict:
    """Send `count` queries for NAME from one UDP socket in bursts of 20 (reading the replies
    in between), calling `between()` every `every` queries; then wait for stragglers (at most
    2 s, 0.3 s of quiet).
    Returns {query id: reply} for the replies that came."""
    wires = []
    for i in range(count):
        message = dns.message.make_query(NAME, "A")
        message.id = i
        wires.append(message.to_wire())
    replies: dict[int, dns.message.Message] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        deadline = time.monotonic() + 10
        for i, wire in enumerate(wires):
            sock.sendto(wire, server.addresses[0])
            if i % 20 == 19:  # in bursts of 20, so the replies never overflow our receive buffer
                _drain(sock, replies, 0.005)
            if between is not None and i % every == 0:
                between()
            assert time.monotonic() < deadline, "the flood took too long"
        end = time.monotonic() + 2
        while len(replies) < count and time.monotonic() < end:
            before = len(replies)
            _drain(sock, replies, 0.3)
            if len(replies) == before:
                break
    return replies


def outcome(replies: dict, count: int = FLOOD) -> tuple[int, int, int]:
    """(answered, slipped, silent)."""
    answered = sum(1 for r in replies.values() if r.answer and not r.flags & dns.flags.TC)
    slipped = 0
    for reply in replies.values():
        if reply.flags & dns.flags.TC:
            assert not reply.answer and not reply.authority and not reply.additional
            assert reply.rcode() == dns.rcode.NOERROR and str(reply.question[0].name) == NAME
            slipped += 1
    assert answered + slipped == len(replies)
    return answered, slipped, count - len(replies)


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zones")
    for path in EXAMPLE_ZONES.glob("*.yaml"):
        (folder / path.name).write_bytes(path.read_bytes())
    server = GdnsServer(folder, "--rrl-responses-per-second", str(RATE), "--rrl-slip", "2")
    yield server
    server.stop()


@pytest.mark.skipif(not _can_bind("127.0.1.1"), reason="127.0.1.1 is not usable here")
def test_a_flood_is_limited_while_another_network_is_answered(limited):
    other: list[dns.message.Message] = []

    def ask_from_another_network():  # 127.0.1.1: another /24, its own account
        query = dns.message.make_query(NAME, "A")
        other.append(dns.query.udp(query, limited.host, port=limited.port, source="127.0.1.1", timeout=2))

    replies = flood(limited, between=ask_from_another_network)
    answered, slipped, silent = outcome(replies)
    # The burst of RATE (and a little credit earned while the flood ran), then nothing but slips.
    assert RATE <= answered <= RATE * 3, (answered, slipped, silent)
    limited_count = FLOOD - answered
    assert abs(slipped - limited_count / 2) <= limited_count * 0.1, (answered, slipped, silent)  # slip 2
    assert abs(silent - limited_count / 2) <= limited_count * 0.1, (answered, slipped, silent)
    # The other network was answered every time, in full.
    assert len(other) == FLOOD // 40
    assert all(r.answer and not r.flags & dns.flags.TC for r in other)

    # TCP proves the source address: not limited, even for the limited network.
    for _ in range(20):
        reply = limited.query(NAME, "A", tcp=True)
        assert reply.answer and not reply.flags & dns.flags.TC
    # ... while UDP from there still is (the window has not passed).
    assert outcome(flood(limited, 20))[0] == 0

    # The metrics count what was done; the log says so once, not per packet.
    assert wait_for(lambda: _metric(limited, 'gdns_rrl_responses_total{action="slipped"}') >= slipped)
    dropped = _metric(limited, 'gdns_rrl_responses_total{action="dropped"}')
    assert abs(dropped - silent) <= 25, (dropped, silent)
    assert _metric(limited, "gdns_rrl_table_entries ") >= 2  # the two networks
    assert _metric(limited, "gdns_dns_truncated_responses_total ") >= slipped
    lines = [line for line in limited.lines if "rate limiting UDP responses to" in line]
    assert len(lines) == 1 and "127.0.0.0/24" in lines[0] and f"{NAME} A" in lines[0], lines


def test_with_the_limit_off_a_flood_is_answered_in_full(start_server, zone_dir):
    server = start_server(zone_dir)
    answered, slipped, silent = outcome(flood(server))
    assert (answered, slipped, silent) == (FLOOD, 0, 0)
    assert _metric(server, "gdns_rrl_responses_total") == 0


def test_exempt_networks_and_workers(start_server, zone_dir):
    # Each worker limits on its own; a flood from one socket (one source port) lands on one.
    server = start_server(
        zone_dir, "--workers", "2", "--rrl-responses-per-second", str(RATE), "--rrl-slip", "0"
    )
    answered, slipped, silent = outcome(flood(server, 200), 200)
    assert RATE <= answered <= RATE * 3 and slipped == 0, (answered, slipped, silent)
    # Workers report their counts to the instance (once a second), as they do their queries.
    assert wait_for(lambda: _metric(server, 'gdns_rrl_responses_total{action="dropped"}') >= silent - 5)
    assert _metric(server, "gdns_rrl_table_entries ") >= 1

    exempt = start_server(zone_dir, "--rrl-responses-per-second", "1", "--rrl-exempt", "127.0.0.1/32")
    assert outcome(flood(exempt, 100), 100) == (100, 0, 0)
