"""Every command the README shows (its code blocks, inline code and command table) and the
shell blocks of docs/*.md: each `edge-ext` command parses with the real CLI, each `python -m`
module exists and takes the options shown, and the ones that need no running edge are run,
bounded in time, on the example config."""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys

import pytest

from edge_ext.cli import build_parser
from tests.support import ROOT, free_port, http, wait_until

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE_CONFIG = str(ROOT / "envoy" / "example-config.yaml")
# Istio routes providers by DNS name: its example config has no loopback provider.
ISTIO_CONFIG = str(ROOT / "istio" / "example-config.yaml")
# Placeholders of the command table, and the file names of the docs' examples.
PLACEHOLDERS = {"F": EXAMPLE_CONFIG, "FILE": EXAMPLE_CONFIG, "edge-ext.yaml": EXAMPLE_CONFIG, "P": "openai-main",
                "OUT": "{tmp}/out.yaml", "DIR": "{tmp}/out"}


def _shell_lines(path):
    for block in re.finditer(r"^```(?:sh|bash)\n(.*?)^```", path.read_text(), re.S | re.M):
        for line in block.group(1).replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|;", line.split(" #")[0]):
                if part.strip():
                    yield part.strip()


def _readme_inline():
    """Inline code that names an edge-ext command (the table's first column and the prose)."""
    for span in re.findall(r"`((?:\.venv/bin/)?edge-ext [^`]+)`", (ROOT / "README.md").read_text()):
        yield span.replace("\\|", "|")


def _expand(command):
    """`a|b|c` alternatives each; `[--opt X]` with the option (the form that must parse)."""
    words = command.replace("[", "").replace("]", "").split()
    choices = [word.split("|") if "|" in word else [word] for word in words]
    return [" ".join(c) for c in itertools.product(*choices)]


def documented():
    seen = {}
    sources = [(path.name, line) for path in DOCS for line in _shell_lines(path)]
    sources += [("README.md", span) for span in _readme_inline()]
    for where, command in sources:
        words = command.split()
        if words[0].endswith("edge-ext") or (len(words) > 2 and words[0].endswith("python") and words[1] == "-m"):
            for one in _expand(command):
                seen.setdefault(one, where)
    return sorted(seen.items())


COMMANDS = documented()


def _argv(command, tmp_path):
    argv = []
    for word in shlex.split(command)[1:]:
        if argv[-1:] == ["--port"] and word == "P":
            word = "18080"
        argv.append(PLACEHOLDERS.get(word, word).format(tmp=tmp_path))
    if argv[:3] == ["render", "--target", "istio"]:
        argv = [ISTIO_CONFIG if w == EXAMPLE_CONFIG else w for w in argv]
    return argv


def test_the_docs_show_the_commands_users_need():
    names = {c.split()[1] for c, _ in COMMANDS if c.split()[0].endswith("edge-ext")}
    assert names >= {"up", "serve", "check-config", "envoy-config", "render", "mock-provider", "admin"}, names
    assert "edge-ext mock-provider --port 18080" in dict(COMMANDS)


@pytest.mark.parametrize("command", [c for c, _ in COMMANDS if c.split()[0].endswith("edge-ext")])
def test_each_documented_edge_ext_command_parses(command, tmp_path):
    args = build_parser().parse_args(_argv(command, tmp_path))
    assert callable(args.func)


@pytest.mark.parametrize("command", [c for c, _ in COMMANDS if not c.split()[0].endswith("edge-ext")])
def test_each_documented_python_module_takes_the_options_shown(command):
    words = shlex.split(command)
    module = words[2]
    out = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for option in (w for w in words[3:] if w.startswith("--")):
        assert option in out.stdout, f"{module} --help does not list {option}"


RUNNABLE = [c for c, _ in COMMANDS if c.split()[0].endswith("edge-ext") and c.split()[1] in ("check-config", "envoy-config", "render")]


@pytest.mark.parametrize("command", RUNNABLE)
def test_documented_commands_that_need_no_running_edge_succeed(command, tmp_path):
    out = subprocess.run([sys.executable, "-m", "edge_ext.cli", *_argv(command, tmp_path)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_readmes_mock_provider_command_serves(tmp_path):
    (command,) = [c for c, _ in COMMANDS if c.split()[1:2] == ["mock-provider"] and "18080" in c]
    # The documented command, on a free port: 18080 may be another edge's demo mock on this machine.
    argv = [w.replace("18080", str(port := free_port())) for w in _argv(command, tmp_path)]
    proc = subprocess.Popen([sys.executable, "-m", "edge_ext.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/_mock/health", timeout=1)[0] == 200, timeout=30, what="mock up")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert f"listening on http://127.0.0.1:{port}" in out
