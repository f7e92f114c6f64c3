"""The fast path end to end: the real server on loopback, dnspython over UDP and TCP.

Every query is sent twice: the first is answered by the full path (which fills the fast
path's table), the second by the fast path; the two replies must be the same message. Run
with each way of serving UDP (a thread per socket, the default; or the event loop) and each
event loop (uvloop, asyncio), and the query counters in /metrics must count every query.
"""

from __future__ import annotations

import urllib.request

import dns.edns
import dns.message
import dns.query
import pytest

from tests.conftest import wait_for

QUESTIONS = [
    ("www.gslb.example.com.", "A"),
    ("WwW.GsLb.ExAmPlE.CoM.", "AAAA"),
    ("docs.gslb.example.com.", "A"),
    ("nope.gslb.example.com.", "A"),
    ("gslb.example.com.", "MX"),
    ("x.sub.gslb.example.com.", "A"),
    ("a.static.gslb.example.com.", "A"),
    ("app.gslb.example.com.", "A"),  # pools, sticky and not
    ("api.gslb.example.com.", "AAAA"),
    ("geo.gslb.example.com.", "A"),
    ("edge.gslb.example.com.", "A"),
    ("maintenance.gslb.example.com.", "A"),
]


def _metric(server, prefix: str) -> float:
    with urllib.request.urlopen(server.web + "/metrics", timeout=5) as response:
        text = response.read().decode()
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def _queries_total(server) -> float:
    return _metric(server, "gdns_dns_queries_total{")


@pytest.mark.parametrize(
    "mode",
    [[], ["--udp-on-loop"], ["--event-loop", "asyncio"], ["--event-loop", "asyncio", "--udp-on-loop"]],
    ids=["thread-uvloop", "loop-uvloop", "thread-asyncio", "loop-asyncio"],
)
def test_second_answers_equal_the_first(start_server, zone_dir, mode):
    server = start_server(zone_dir, *mode)
    sent = 0
    for name, qtype in QUESTIONS:
        for tcp in (False, True):
            for edns in (None, 0):
                options = [dns.edns.ECSOption("198.51.100.0", 24)] if edns == 0 and qtype == "A" else None
                replies = []
                for _ in range(2):
                    message = dns.message.make_query(name, qtype, use_edns=edns, options=options)
                    replies.append(server.query(name, qtype, tcp=tcp, message=message))
                    sent += 1
                first, second = replies
                assert first.rcode() == second.rcode()
                assert first.flags == second.flags
                assert first.question == second.question
                assert str(first.question[0].name) == name  # the client's spelling comes back
                assert first.answer == second.answer and first.authority == second.authority
                assert first.additional == second.additional and first.options == second.options
    assert wait_for(lambda: _queries_total(server) == sent, timeout=5), (_queries_total(server), sent)
    # The full path answers each question once per EDNS form (UDP and TCP share the answers
    # it keeps), and the pool with no member up every time (when_all_down); the fast path
    # answers every other repeat.
    full = _metric(server, "gdns_dns_full_path_queries_total ")
    assert len(QUESTIONS) * 2 <= full <= sent // 2 + 4, (full, sent)
