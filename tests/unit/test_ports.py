"""The ports an edge binds, checked before anything starts (edge_ext.ports)."""

import socket

import pytest

from edge_ext import ports
from edge_ext.config import parse_config

BASE = """\
listen: {host: 127.0.0.1, port: 10000}
metrics: {host: 127.0.0.1, port: 9464}
providers: [{name: p, kind: openai, base_url: "http://127.0.0.1:18080", models: [m]}]
"""


def config(extra=""):
    return parse_config(BASE + extra)


@pytest.mark.parametrize("extra, with_envoy, expected", [
    pytest.param("", True, ["listen.port", "metrics.port"], id="up-defaults-admin-on-a-unix-socket"),
    pytest.param("envoy: {admin: {port: 9901}}\n", True, ["listen.port", "envoy.admin.port", "metrics.port"], id="up-tcp-admin"),
    pytest.param("envoy: {admin: {port: 0}}\n", True, ["listen.port", "metrics.port"], id="up-admin-any-port-not-checked"),
    pytest.param("metrics: {enabled: false}\n", True, ["listen.port"], id="up-metrics-off"),
    pytest.param("", False, ["metrics.port"], id="serve-has-no-listener"),
    pytest.param("processor: {address: '127.0.0.1:50051', workers: 2, allow_plaintext_tcp: true}\n", False,
                 ["metrics.port", "processor.address (worker 0)", "processor.address (worker 1)"], id="serve-tcp-workers"),
])
def test_planned_ports_name_the_setting_each_comes_from(extra, with_envoy, expected):
    planned = ports.planned(config(extra), with_envoy=with_envoy)
    assert [what for what, _, _ in planned] == expected


def test_tcp_workers_take_consecutive_ports_and_mocks_are_listed():
    planned = ports.planned(config("processor: {address: '127.0.0.1:50051', workers: 2, allow_plaintext_tcp: true}\n"),
                            with_envoy=False, mocks=(("127.0.0.1", 18080),))
    assert [(host, port) for _, host, port in planned][1:] == [("127.0.0.1", 50051), ("127.0.0.1", 50052), ("127.0.0.1", 18080)]


@pytest.fixture
def taken():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_listening_port_is_reported_as_in_use_with_its_setting(taken):
    assert ports.problems([("metrics.port", "127.0.0.1", taken)]) == [f"127.0.0.1:{taken} (metrics.port) is already in use"]


def test_the_wildcard_address_is_in_use_when_loopback_holds_the_port(taken):
    assert ports.problems([("listen.port", "0.0.0.0", taken)]) == [f"0.0.0.0:{taken} (listen.port) is already in use"]


def test_a_free_port_and_a_bound_but_not_listening_port_pass():
    # A socket in TIME_WAIT or bound without listening is what Envoy's SO_REUSEADDR bind accepts.
    with socket.socket() as idle:
        idle.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        idle.bind(("127.0.0.1", 0))
        assert ports.problems([("listen.port", "127.0.0.1", idle.getsockname()[1])]) == []


def test_two_settings_on_one_port_are_reported():
    found = ports.problems([("listen.port", "127.0.0.1", 1), ("metrics.port", "127.0.0.1", 1)])
    assert found[-1] == "127.0.0.1:1 (metrics.port) is also used by another setting"


def test_an_address_not_on_this_machine_cannot_be_bound():
    (problem,) = ports.problems([("listen.port", "192.0.2.1", 10000)])  # TEST-NET-1
    assert problem.startswith("192.0.2.1:10000 (listen.port) cannot be bound: ")
