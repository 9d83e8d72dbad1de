"""Bearer-token auth, the loopback-only default, and secrets kept out of logs."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from redis.asyncio import Redis
from test_http_support import api_client, error_of, make_broker

from engine.http.server import is_loopback, start_http

TOKEN = "s3cret-token-value"


async def test_token_required_everywhere_but_healthz(redis: Redis, prefix: str) -> None:
    async with api_client(make_broker(redis, prefix), token=TOKEN) as api:
        for headers in [
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN}x"},
        ]:
            for method, path in [
                ("GET", "/v1/queues"),
                ("POST", "/v1/tasks"),
                ("GET", "/metrics"),
                ("GET", "/readyz"),
                ("GET", "/nope"),
                ("GET", "/v1/openapi.json"),
            ]:
                resp = await api.request(method, path, headers=headers)
                assert await error_of(resp) == (401, "unauthorized"), (headers, path)
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await api.get("/healthz")).status == 200
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert (await api.get("/v1/queues", headers=good)).status == 200
        assert (await api.get("/readyz", headers=good)).status == 200
        resp = await api.post("/v1/tasks", json={"name": "x"}, headers=good)
        assert resp.status == 201
        lower = {"Authorization": f"bearer {TOKEN}"}  # the scheme is case-insensitive
        assert (await api.get("/v1/queues", headers=lower)).status == 200


def test_loopback_detection() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "10.0.0.1", "example.com", "192.168.1.2"):
        assert not is_loopback(host), host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
async def test_public_bind_without_token_is_refused(redis: Redis, prefix: str, host: str) -> None:
    with pytest.raises(ValueError, match="without a token"):
        await start_http(make_broker(redis, prefix), host, 0)
    with pytest.raises(ValueError, match="without a token"):
        await start_http(make_broker(redis, prefix), host, 0, token="")


async def test_start_http_serves_and_stops(
    redis: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        runner = await start_http(make_broker(redis, prefix), "127.0.0.1", 0, token=TOKEN)
        try:
            (address,) = runner.addresses
            host, port = address[0], address[1]
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://{host}:{port}/v1/queues") as r:
                    assert r.status == 401
                hdr = {"Authorization": f"Bearer {TOKEN}"}
                async with s.post(
                    f"http://{host}:{port}/v1/tasks", json={"name": "x"}, headers=hdr
                ) as r:
                    assert r.status == 201
        finally:
            await runner.cleanup()
    assert "HTTP API on http://127.0.0.1" in caplog.text
    assert TOKEN not in caplog.text


async def test_public_bind_with_token_is_allowed(redis: Redis, prefix: str) -> None:
    runner = await start_http(make_broker(redis, prefix), "0.0.0.0", 0, token=TOKEN)
    await runner.cleanup()


async def test_secrets_are_scrubbed_from_logged_errors(
    redis: Redis,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A traceback that happens to contain the token is logged with it masked."""
    from engine import queues as queue_ops

    async def leak(_broker: object) -> None:
        raise RuntimeError(f"oops {TOKEN}")

    monkeypatch.setattr(queue_ops, "all_queue_stats", leak)
    async with api_client(make_broker(redis, prefix), token=TOKEN) as api:
        with caplog.at_level(logging.ERROR, logger="spool.http"):
            resp = await api.get("/v1/queues", headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 500
        assert TOKEN not in await resp.text()
    assert "oops ***" in caplog.text and TOKEN not in caplog.text
