"""The ``python -m edge_ext.mock`` process: banner line, serving, clean exit.

End-to-end tests start the mock as a separate process next to Envoy, so the
banner format (parsed for the URL) and SIGTERM handling are part of its
interface.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time

import aiohttp
import pytest

from edge_ext.mock import main

BANNER = re.compile(
    r"^edge-ext mock provider '(?P<name>[^']+)' listening on (?P<url>http://127\.0\.0\.1:\d+) "
    r"\(OpenAI /v1/chat/completions and /v1/embeddings, Anthropic /v1/messages\)$"
)


async def _start(*args: str, env: dict[str, str] | None = None) -> tuple[asyncio.subprocess.Process, re.Match]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_ext.mock", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    match = BANNER.match(line.decode().strip())
    if match is None:
        proc.kill()
        await proc.wait()
        pytest.fail(f"unexpected banner: {line!r}")
    return proc, match


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
async def test_cli_serves_until_signal_and_exits_zero(sig):
    proc, banner = await _start("--name", "cli-mock", "--openai-key", "sk-cli", "--latency-ms", "5")
    try:
        assert banner["name"] == "cli-mock"
        async with aiohttp.ClientSession(base_url=banner["url"]) as session:
            async with session.get("/_mock/health") as r:
                assert r.status == 200 and r.headers["x-mock-provider"] == "cli-mock"
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            async with session.post("/v1/chat/completions", json=body) as r:
                assert r.status == 401
            async with session.post("/v1/chat/completions", json=body,
                                    headers={"Authorization": "Bearer sk-cli"}) as r:
                assert r.status == 200
        started = time.monotonic()
        proc.send_signal(sig)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_reads_keys_from_environment():
    proc, banner = await _start(env={"EDGE_EXT_MOCK_ANTHROPIC_KEY": "sk-ant-env", "EDGE_EXT_MOCK_NAME": "envy"})
    try:
        assert banner["name"] == "envy"
        body = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession(base_url=banner["url"]) as session:
            for key, status in (("wrong", 401), ("sk-ant-env", 200)):
                async with session.post("/v1/messages", json=body,
                                        headers={"x-api-key": key, "anthropic-version": "2023-06-01"}) as r:
                    assert r.status == status
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    "argv",
    [pytest.param(["--port", "70000"], id="port-out-of-range"),
     pytest.param(["--latency-ms", "-1"], id="negative-latency"),
     pytest.param(["--name", ""], id="empty-name")],
)
def test_cli_rejects_invalid_settings(argv, capsys):
    assert main(argv) == 2
    assert "edge-ext mock provider:" in capsys.readouterr().err
