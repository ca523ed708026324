"""Fixtures for every test directory: the private Redis servers (tests/redis_server.py)."""

import pytest

from tests.redis_server import RedisServer, RedisVectorServer


@pytest.fixture
def redis_server():
    """A redis-server of the test's own: stop, pause or restart it at will."""
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def _session_redis():
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def shared_redis(_session_redis):
    """The session's redis-server, empty at the start of the test; never stop it."""
    _session_redis.flush()
    return _session_redis


@pytest.fixture(scope="session")
def vector_redis():
    """The session's Redis with vector search (RediSearch loaded); tests keep to key prefixes of
    their own instead of emptying it."""
    server = RedisVectorServer()
    server.start()
    yield server
    server.cleanup()
