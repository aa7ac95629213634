"""The SSRF guard with COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE off: literal private IPs, names that
resolve to private addresses, the address actually connected to, and the dispatcher refusing
to send to such targets even when they are already in the database. Each refusal has a control
with the guard lifted, so the test fails if the guard stops guarding."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from server.app import create_app
from server.webhooks.rules.address_guard import BlockedAddressError, GuardedConnector, make_connector
from server.webhooks.rules.public_addresses import is_public_address
from server.webhooks.rules.signing import new_secret
from tests.support.conditions import eventually
from tests.support.settings import replace_settings
from tests.support.webhook_receivers import Receiver, start_receiver
from tests.support.webhooks import FAST, attempts_of, deliveries_of, finish_batch, rows


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("93.184.215.14", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::127.0.0.1", False),
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
        ("not an address", False),
    ],
)
def test_public_addresses(address, public):
    assert is_public_address(address) is public


class EverythingIsHere(AbstractResolver):
    """A resolver that answers every name with loopback: a DNS name pointing at a private
    address, the case the guard must catch (there is no real DNS in CI)."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


async def post_through(connector: aiohttp.TCPConnector, url: str) -> int:
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(url, data=b"{}") as resp:
            return resp.status


@pytest.fixture
async def receiver(aiohttp_server) -> Receiver:  # type: ignore[no-untyped-def]
    return await start_receiver(aiohttp_server)


async def test_a_literal_loopback_address_is_refused_before_connecting(receiver):
    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        await post_through(make_connector(allow_private=False, limit=1), receiver.url)
    assert isinstance(caught.value.__cause__, BlockedAddressError)
    assert receiver.received == []
    # Control: the same request with the guard lifted arrives.
    assert await post_through(make_connector(allow_private=True, limit=1), receiver.url) == 200
    assert len(receiver.received) == 1


async def test_a_name_resolving_to_a_private_address_is_refused(receiver):
    port = receiver.url.split(":")[2].split("/")[0]
    url = f"http://hooks.example.com:{port}/hook"
    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        await post_through(make_connector(allow_private=False, limit=1, resolver=EverythingIsHere()), url)
    assert "non-public" in str(caught.value.__cause__)
    assert receiver.received == []
    assert await post_through(make_connector(allow_private=True, limit=1, resolver=EverythingIsHere()), url) == 200


class ResolverCheckSkipped(GuardedConnector):
    """As if resolution had been fooled (DNS rebinding between check and connect): only the
    check of the connected socket's peer address is left to stop the request."""

    def check_resolved(self, host: str, addresses: list[str]) -> None:
        pass


async def test_the_address_actually_connected_to_is_checked(receiver):
    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        await post_through(ResolverCheckSkipped(limit=1), receiver.url)
    assert "connected to non-public address" in str(caught.value.__cause__)
    assert receiver.received == []


async def test_the_dispatcher_refuses_private_targets_already_in_the_database(aiohttp_client, settings, receiver, db):
    hub = await aiohttp_client(create_app(replace_settings(settings, **{**FAST, "webhook_allow_private": False})))
    port = receiver.url.split(":")[2].split("/")[0]
    targets = [
        f"http://127.0.0.1:{port}/hook",  # not https
        f"https://127.0.0.1:{port}/hook",  # literal loopback
        f"https://localhost:{port}/hook",  # a name for loopback
        f"https://[::ffff:127.0.0.1]:{port}/hook",  # IPv4-mapped loopback
    ]
    ids = []
    for url in targets:  # as if registered before the rules, or by hand
        (row,) = rows(
            db,
            "INSERT INTO webhooks (url, events, secret) VALUES (%s, '{batch.completed}', %s) RETURNING webhook_id",
            url,
            new_secret(),
        )
        ids.append(row["webhook_id"])
    await finish_batch(hub)

    async def each_refused_twice() -> bool:
        attempts = [attempts_of(db, d["delivery_id"]) for i in ids for d in deliveries_of(db, i)]
        return len(attempts) == len(ids) and all(len(a) >= 2 for a in attempts)

    await eventually(each_refused_twice, what="every private target refused on two attempts")
    for webhook_id in ids:
        (delivery,) = deliveries_of(db, webhook_id)
        for attempt in attempts_of(db, delivery["delivery_id"]):
            assert attempt["error"].startswith("refused: "), attempt
            assert attempt["response_status"] is None
    assert receiver.received == []
