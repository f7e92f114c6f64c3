"""atheris harness: zone file text through gdns's loader (yamlsafe.load + compile_zone, with
and without streaming), then, for a zone that compiles, queries for its names through a
Handler; see tests/fuzzkit.py for the rules held.

The first input byte picks the mode: below 0xF0 the rest is the file's text (UTF-8); from
0xF0 the rest seeds fuzzkit.zone_document, a generator of zone documents with mistakes of
every kind, dumped as YAML. Half of the mutations edit the text as people break zone files
(fuzzkit.mutate_text), half are libFuzzer's own.

    python tests/fuzz/fuzz_zone.py /tmp/zone-corpus tests/fuzz/corpus/zone -max_total_time=600
"""

from __future__ import annotations

import hashlib
import logging
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import atheris  # noqa: E402

with atheris.instrument_imports(include=["gdns", "dnslib", "yaml"]):
    import yaml

    import gdns.zone.loader
    from tests import fuzzkit

gdns.zone.loader.give_back = lambda: None  # malloc_trim after every load: slow, and no help here
logging.getLogger("gdns").propagate = False
GEO = None


def test_one_input(data: bytes) -> None:
    if len(data) < 1:
        return
    rng = random.Random(hashlib.blake2b(data, digest_size=8).digest())
    chooser = fuzzkit.RandomChooser(rng)
    if data[0] >= 0xF0:
        doc = fuzzkit.zone_document(fuzzkit.RandomChooser(random.Random(data[1:])))
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=bool(data[0] & 1))
    else:
        try:
            text = data[1:].decode("utf-8")
        except UnicodeDecodeError:
            return  # the loader reports it before parsing (tests/unit/test_zone_loader.py)
    geoip = bool(data[0] & 2)
    fuzzkit.check_zone_text(text, chooser, geoip=geoip, server_geo=GEO if geoip else None)


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if not data or data[0] >= 0xF0 or rng.random() < 0.5:
        return atheris.Mutate(data, max_size)
    try:
        text = data[1:].decode("utf-8")
    except UnicodeDecodeError:
        return atheris.Mutate(data, max_size)
    if rng.random() < 0.05:
        text = rng.choice(fuzzkit.ZONE_TEXTS)
    text = fuzzkit.mutate_text(text, fuzzkit.RandomChooser(rng))
    return (data[:1] + text.encode("utf-8"))[:max_size]


def main() -> None:
    global GEO
    GEO = fuzzkit.geo_database()
    atheris.Setup(sys.argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
