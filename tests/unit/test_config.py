import os
import textwrap

import pytest
from pydantic import ValidationError

from edge_ext.config import ConfigInvalid, load_config, parse_config

MINIMAL = """\
listen: {host: 127.0.0.1, port: 10000}
providers:
  - name: openai-main
    kind: openai
    base_url: http://127.0.0.1:18080     # https://api.openai.com in real use
    api_key_env: OPENAI_API_KEY
    models: [gpt-4o-mini]
"""


def test_minimal_config_from_the_issue_works_as_is():
    config = parse_config(MINIMAL)
    provider = config.providers[0]
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 10000)
    assert provider.cluster == "provider_openai-main"
    assert (provider.host, provider.port, provider.tls) == ("127.0.0.1", 18080, False)
    assert config.processor.worker_count() >= 1
    assert config.metrics.port == 9464


def test_config_is_frozen():
    config = parse_config(MINIMAL)
    with pytest.raises(ValidationError, match="frozen"):
        config.listen.port = 1  # type: ignore[misc]


BAD = [
    pytest.param(MINIMAL + "colour: blue\n", "colour", 8, "unknown key", id="unknown-top-level-key"),
    pytest.param(MINIMAL.replace("    models:", "    modles:"), "providers.0.modles", 7, "unknown key", id="typo-in-provider-key"),
    pytest.param(MINIMAL.replace("kind: openai", "kind: gemini"), "providers.0.kind", 4, "Input should be", id="unknown-provider-kind"),
    pytest.param(MINIMAL.replace("http://127.0.0.1:18080", "ftp://x"), "providers.0.base_url", 5, "http", id="non-http-base-url"),
    pytest.param(MINIMAL.replace("port: 10000", "port: 70000"), "listen.port", 1, "less than or equal", id="port-out-of-range"),
    pytest.param(MINIMAL.replace("name: openai-main", "name: Open AI"), "providers.0.name", 3, "pattern", id="provider-name-not-dns-safe"),
    pytest.param(MINIMAL + "processor: {address: 'nowhere'}\n", "processor.address", 8, "unix:/DIR or HOST:PORT", id="bad-processor-address"),
    pytest.param(MINIMAL + "routing: {max_attempts: 0}\n", "routing.max_attempts", 8, "greater than or equal", id="no-attempt-at-all"),
    pytest.param(MINIMAL + "routing: {max_attempts: 9}\n", "routing.max_attempts", 8, "less than or equal", id="too-many-attempts"),
]


@pytest.mark.parametrize("text, path, line, message", BAD)
def test_bad_config_names_the_key_and_line(text, path, line, message):
    with pytest.raises(ConfigInvalid) as info:
        parse_config(text, "edge.yaml")
    problems = info.value.problems
    assert any(p.path == path and p.line == line and message in p.message for p in problems), problems


def test_yaml_syntax_error_reports_line():
    with pytest.raises(ConfigInvalid) as info:
        parse_config("listen: {host: [\n", "edge.yaml")
    assert info.value.problems[0].line is not None


def test_budgets_without_accounting_rejected():
    budgets = "budgets: {limits: [{scope: tenant, id: t, period: daily, limit_usd: 1}]}\n"
    with pytest.raises(ConfigInvalid, match="need accounting.enabled"):
        parse_config(MINIMAL + budgets + "accounting: {enabled: false}\n")
    assert parse_config(MINIMAL + budgets).budgets.limits


def test_duplicate_provider_names_rejected():
    text = MINIMAL + textwrap.indent(MINIMAL.split("providers:\n", 1)[1], "")
    with pytest.raises(ConfigInvalid, match="unique"):
        parse_config(text)


@pytest.mark.parametrize(
    "address, index, expected",
    [
        ("unix:/run/edge-ext", 2, "unix:/run/edge-ext/worker-2.sock"),
        ("127.0.0.1:50051", 0, "127.0.0.1:50051"),
        ("127.0.0.1:50051", 3, "127.0.0.1:50054"),
    ],
    ids=["unix-socket-per-worker", "tcp-first-worker", "tcp-port-per-worker"],
)
def test_worker_addresses(address, index, expected):
    config = parse_config(MINIMAL + f"processor: {{address: '{address}', allow_plaintext_tcp: true}}\n")
    assert config.processor.worker_address(index) == expected


MTLS = "{ca_file: /ca, server_cert_file: /s.crt, server_key_file: /s.key, client_cert_file: /c.crt, client_key_file: /c.key}"


@pytest.mark.parametrize("processor, ok", [
    ("{address: '127.0.0.1:50051'}", False),
    ("{address: '0.0.0.0:50051'}", False),
    (f"{{address: '0.0.0.0:50051', mtls: {MTLS}}}", True),
    ("{address: '0.0.0.0:50051', allow_plaintext_tcp: true}", True),
    ("{address: 'unix:/run/edge-ext'}", True),
], ids=["loopback-tcp-plaintext-refused", "any-tcp-plaintext-refused", "tcp-with-mtls", "tcp-plaintext-said-explicitly",
        "unix-socket"])
def test_a_tcp_processor_needs_mutual_tls(processor, ok):
    text = MINIMAL + f"processor: {processor}\n"
    if ok:
        parse_config(text)
    else:
        with pytest.raises(ConfigInvalid, match="TCP without mtls"):
            parse_config(text)


def test_each_config_file_gets_its_own_state_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    for path in (one, two):
        path.write_text(MINIMAL)
    first, second = load_config(one).processor, load_config(two).processor
    assert first.directory != second.directory
    assert first.directory.startswith(str(tmp_path / "state" / "edge-ext" / "one-"))
    assert first.socket_address == f"unix:{first.directory}"
    assert load_config(one).processor.directory == first.directory  # the same file: the same instance
    # A unix: address names the instance's directory itself.
    (tmp_path / "three.yaml").write_text(MINIMAL + "processor: {address: 'unix:/run/x'}\n")
    assert load_config(tmp_path / "three.yaml").processor.directory == "/run/x"


@pytest.mark.parametrize("setup, message", [
    (lambda d: d.mkdir(mode=0o755), "mode 0755"),
    (lambda d: d.symlink_to(d.parent), "not a directory"),
], ids=["world-readable", "symlink"])
def test_a_state_directory_open_to_others_is_refused(tmp_path, setup, message):
    from edge_ext.config.instance import UnsafeStateDir, ensure_private_dir

    target = tmp_path / "state"
    setup(target)
    if not target.is_symlink():
        target.chmod(0o755)  # whatever the umask made of it
    with pytest.raises(UnsafeStateDir, match=message):
        ensure_private_dir(target)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_state_directory_of_another_user_is_refused(tmp_path):
    from edge_ext.config.instance import UnsafeStateDir, ensure_private_dir

    target = tmp_path / "state"
    target.mkdir(mode=0o700)
    os.chown(target, 12345, 12345)  # as root here; a second user in real life
    with pytest.raises(UnsafeStateDir, match="owned by uid 12345"):
        ensure_private_dir(target)


def test_a_new_state_directory_is_made_private(tmp_path):
    import stat

    from edge_ext.config.instance import ensure_private_dir

    path = ensure_private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_provider_key_from_env_and_file(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert parse_config(MINIMAL).providers[0].read_key() == "sk-env"
    key = tmp_path / "key"
    key.write_text("sk-file\n")
    config = parse_config(MINIMAL.replace("api_key_env: OPENAI_API_KEY", f"api_key_file: {key}"))
    assert config.providers[0].read_key() == "sk-file"


def test_demo_plan_points_keyless_providers_at_the_mock_and_says_so(tmp_path, monkeypatch):
    from edge_ext import edge

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    plan = edge.demo_plan(load_config(edge.DEFAULT_CONFIG), tmp_path)
    assert plan.banner.startswith("edge-ext: DEMO MODE") and "OPENAI_API_KEY" in plan.banner
    assert all(p.base_url == edge.DEMO_MOCK_URL for p in plan.config.providers)
    assert plan.mocks == (("127.0.0.1", 18080),)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    partial = edge.demo_plan(load_config(edge.DEFAULT_CONFIG), tmp_path)
    assert "ANTHROPIC_API_KEY" in partial.banner and "OPENAI_API_KEY" not in partial.banner
    assert {p.name: p.base_url == edge.DEMO_MOCK_URL for p in partial.config.providers} == {"openai": False, "anthropic": True}
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-real")
    real = edge.demo_plan(load_config(edge.DEFAULT_CONFIG), tmp_path)
    assert real.banner is None and real.mocks == ()
