"""Property tests (hypothesis) for the zone loader: generated zone documents, edited zone
files and arbitrary text through yamlsafe.load + compile_zone (as gdns reads a file: with
and without streaming) give a Zone or problems that each name the file, line, column and
path, never an exception; and a generated zone that compiles answers queries for its names
by the rules of tests/fuzzkit.py."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gdns.zone import loader
from tests import fuzzkit
from tests.fuzzkit import DrawChooser, check_zone_text, examples


@pytest.fixture(autouse=True)
def _no_trim(monkeypatch):
    monkeypatch.setattr(loader, "give_back", lambda: None)  # malloc_trim per load: slow here


@pytest.fixture(scope="module")
def geo(tmp_path_factory):
    return fuzzkit.geo_database(tmp_path_factory.mktemp("geo"))


@settings(max_examples=examples(200))
@given(data=st.data(), geoip=st.booleans(), unicode=st.booleans())
def test_generated_documents(geo, data, geoip, unicode):
    chooser = DrawChooser(data.draw)
    text = yaml.safe_dump(fuzzkit.zone_document(chooser), sort_keys=False, allow_unicode=unicode)
    check_zone_text(text, chooser, geoip=geoip, server_geo=geo if geoip else None)


@settings(max_examples=examples(150))
@given(which=st.integers(0, len(fuzzkit.ZONE_TEXTS) - 1), data=st.data(), geoip=st.booleans())
def test_edited_zone_files(geo, which, data, geoip):
    chooser = DrawChooser(data.draw)
    text = fuzzkit.mutate_text(fuzzkit.ZONE_TEXTS[which], chooser)
    check_zone_text(text, chooser, geoip=geoip, server_geo=geo if geoip else None)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(fuzzkit.STRINGS),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
sections = st.fixed_dictionaries(
    {},
    optional={
        "origin": st.sampled_from(["example.com.", "example.com", "."]) | values,
        "ttl": values,
        "soa": st.fixed_dictionaries({"mname": values, "rname": values}, optional={"serial": values})
        | values,
        "ns": values,
        "records": st.dictionaries(
            st.sampled_from(["@", "www", "*", "a.b", "x."]) | st.text(max_size=10),
            st.dictionaries(st.sampled_from(fuzzkit.RTYPES) | st.text(max_size=5), values, max_size=3)
            | values,
            max_size=4,
        ),
        "pools": st.dictionaries(st.text(max_size=8), values, max_size=3),
        "checks": st.dictionaries(st.text(max_size=8), values, max_size=3),
    },
)


@settings(max_examples=examples(200))
@given(doc=sections | values)
def test_documents_of_any_shape(doc):
    check_zone_text(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=examples(200))
@given(
    text=st.text(max_size=300) | st.lists(st.sampled_from(fuzzkit._YAML_BITS + fuzzkit.STRINGS)).map(" ".join)
)
def test_any_text(text):
    check_zone_text(text)
