"""The server the packet properties run against (tests/fuzzkit.py): built once per session."""

from __future__ import annotations

import pytest

from tests import fuzzkit


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    server = fuzzkit.build_server(tmp_path_factory.mktemp("fuzz"))
    yield server
    server.close()
