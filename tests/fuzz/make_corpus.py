"""Write the seed corpora of the atheris harnesses (tests/fuzz/corpus/): a few dozen real
queries and zone files, each in the harness's input format. Deterministic; run it again
after changing tests/fuzzkit.py's corpus or the example zones:

    python tests/fuzz/make_corpus.py
"""

from __future__ import annotations

import random
import shutil
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests import fuzzkit  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus"
QUERIES = 40  # spread over fuzzkit.SEEDS (pools in every form, static names, CHAOS ...)
HAND_BUILT = 13  # SEEDS ends with these: other opcodes, question counts, odd records


def main() -> None:
    rng = random.Random(1)
    query = CORPUS / "query"
    zone = CORPUS / "zone"
    for folder in (query, zone):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    seeds = fuzzkit.SEEDS
    spread = [seeds[i * (len(seeds) - HAND_BUILT) // QUERIES] for i in range(QUERIES)]
    for i, wire in enumerate(spread + seeds[-HAND_BUILT:]):
        control = rng.randrange(0xC0)  # handler, transport, client; not a TCP stream
        (query / f"q{i:03d}").write_bytes(bytes([control]) + wire)
    for i in range(4):  # TCP streams: a few framed queries, the last one cut short
        picked = rng.sample(seeds, 3)
        stream = b"".join(struct.pack("!H", len(w)) + w for w in picked)
        (query / f"tcp{i}").write_bytes(bytes([0xC0 | rng.randrange(64)]) + stream[: -rng.randrange(1, 8)])
    for path in fuzzkit.ZONE_FILES:
        text = path.read_text().encode()
        (zone / path.stem).write_bytes(b"\x02" + text)  # with GeoIP (the pools zone needs it)
    small = (
        "origin: example.com.\nsoa: {mname: ns1.example.com., rname: h.example.com.}\n"
        "ns: [ns1.example.net.]\nrecords:\n  www: {A: 192.0.2.1}\n"
    )
    (zone / "small").write_bytes(b"\x00" + small.encode())
    pools = small + "pools:\n  app:\n    members: [{address: 192.0.2.2}, {address: '2001:db8::2'}]\n"
    (zone / "small-pool").write_bytes(b"\x00" + pools.encode())
    for i in range(6):  # generated documents (fuzzkit.zone_document), by seed
        (zone / f"generated{i}").write_bytes(bytes([0xF0 | (i & 3)]) + rng.randbytes(8))


if __name__ == "__main__":
    main()
