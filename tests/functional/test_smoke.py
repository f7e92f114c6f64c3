"""The quick start from the README works: the example zones answer over UDP and TCP."""

import dns.flags
import dns.rcode


def test_example_zone_answers_over_udp_and_tcp(example_server):
    for tcp in (False, True):
        reply = example_server.query("www.gslb.example.com", "A", tcp=tcp)
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.flags & dns.flags.AA
        addresses = sorted(rr.address for rr in reply.answer[0])
        assert addresses == ["192.0.2.10", "192.0.2.11"]
