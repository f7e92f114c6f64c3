"""atheris harness: query bytes through gdns's Handler (fast and full path, UDP and TCP,
rate limited or not), every reply held to the rules of tests/fuzzkit.py.

The first input byte picks the handler, the transport and the client; the rest is the query.
With its top two bits set the rest is instead a TCP byte stream (length-prefixed queries),
fed to the real TCPProtocol in pieces. Half of the mutations are DNS-aware (fuzzkit.mutate:
counts, labels, pointers, OPT and ECS fields), half are libFuzzer's own.

    python tests/fuzz/fuzz_query.py /tmp/query-corpus tests/fuzz/corpus/query -max_total_time=600

(docs/fuzzing.md has the details: a long run, and what to do with a crash file.)
"""

from __future__ import annotations

import logging
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's gdns, not an installed one

import atheris  # noqa: E402

with atheris.instrument_imports(include=["gdns", "dnslib"]):
    from tests import fuzzkit

logging.getLogger("gdns").propagate = False  # internal errors are caught by the oracle
logging.getLogger("gdns.rrl").setLevel(logging.ERROR)  # "table full" is expected here
SERVER: fuzzkit.Server | None = None


def test_one_input(data: bytes) -> None:
    if len(data) < 1:
        return
    control, body = data[0], data[1:]
    client = fuzzkit.CLIENTS[(control >> 3) % len(fuzzkit.CLIENTS)]
    if control & 0xC0 == 0xC0:
        fuzzkit.check_tcp_stream(SERVER, body, control & 0x7, client)
        return
    transport = "tcp" if control & 0x4 else "udp"
    fuzzkit.check_query(SERVER, body, transport, client, (control & 0x3) % 3)


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if not data or rng.random() < 0.5:
        return atheris.Mutate(data, max_size)
    control, body = data[:1], data[1:]
    if rng.random() < 0.05:
        body = rng.choice(fuzzkit.SEEDS)
    if rng.random() < 0.1:
        control = bytes([rng.randrange(256)])
    return (control + fuzzkit.mutate(body, fuzzkit.RandomChooser(rng)))[:max_size]


def main() -> None:
    global SERVER
    SERVER = fuzzkit.build_server()
    atheris.Setup(sys.argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
