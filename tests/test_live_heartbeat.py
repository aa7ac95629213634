"""WebSocket heartbeats from the hub's one timer (server/realtime/heartbeat.py): pings every
interval, spread over it; a client that answers nothing is cut off, one that answers stays."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from aiohttp import WSMsgType

from server.app import create_app
from server.realtime.heartbeat import Heartbeat
from server.realtime.keys import HUB
from tests.support.conditions import eventually
from tests.support.settings import replace_settings

pytestmark = pytest.mark.every_loop  # tests/conftest.py: asyncio's loop and uvloop's


async def next_frame(ws, wait: float = 10.0):
    return await ws.receive(timeout=wait)


async def test_an_idle_client_that_answers_pings_stays_connected(aiohttp_client, settings):
    client = await aiohttp_client(create_app(replace_settings(settings, stream_heartbeat=0.2)))
    async with client.ws_connect("/api/ws", autoping=False) as ws:
        for _ in range(5):  # five pings: a second interval without a pong would have closed it
            msg = await next_frame(ws)
            assert msg.type == WSMsgType.PING, (msg.type, msg.data)
            await ws.pong(msg.data)
        await ws.send_json({"op": "ping"})  # still served
        while (msg := await next_frame(ws)).type == WSMsgType.PING:
            await ws.pong(msg.data)
        assert msg.type == WSMsgType.TEXT and msg.json() == {"type": "pong"}


async def test_a_client_that_answers_nothing_is_cut_off(aiohttp_client, settings):
    app = create_app(replace_settings(settings, stream_heartbeat=0.2))
    client = await aiohttp_client(app)
    async with client.ws_connect("/api/ws", autoping=False) as ws:
        assert (await next_frame(ws)).type == WSMsgType.PING
        while (msg := await next_frame(ws)).type == WSMsgType.PING:
            pass  # a second ping may come before the cut; neither is answered
        assert msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSE, WSMsgType.ERROR), (msg.type, msg.data)

    async def gone() -> bool:
        return app[HUB].open_connections()["websocket"] == 0 and len(app[HUB].heartbeat) == 0

    await eventually(gone, what="the session to be unregistered")


async def test_any_message_is_a_sign_of_life(aiohttp_client, settings):
    """A client that never pongs but sends its own pings (ops) each interval is kept."""
    client = await aiohttp_client(create_app(replace_settings(settings, stream_heartbeat=0.3)))
    async with client.ws_connect("/api/ws", autoping=False) as ws:
        pongs = 0
        while pongs < 4:  # four op replies, with a server ping in between every time
            await ws.send_json({"op": "ping"})
            msg = await next_frame(ws)
            if msg.type == WSMsgType.TEXT:
                assert msg.json() == {"type": "pong"}
                pongs += 1
                await next_frame_of_type(ws, WSMsgType.PING)
            else:
                assert msg.type == WSMsgType.PING, (msg.type, msg.data)
        assert not ws.closed


async def next_frame_of_type(ws, kind: WSMsgType):
    while (msg := await next_frame(ws)).type != kind:
        assert msg.type in (WSMsgType.PING, WSMsgType.TEXT), (msg.type, msg.data)
    return msg


class Recorder:
    def __init__(self, beats: list[tuple[int, float]], name: int) -> None:
        self.beats = beats
        self.name = name

    def beat(self) -> None:
        self.beats.append((self.name, asyncio.get_running_loop().time()))


async def test_beats_come_once_per_interval_each_spread_over_the_interval():
    heartbeat = Heartbeat(0.6, groups=3)
    beats: list[tuple[int, float]] = []
    sessions = [Recorder(beats, n) for n in range(9)]
    for session in sessions:
        heartbeat.add(session)
        await asyncio.sleep(0.07)  # joining over most of an interval: they fall into different groups
    start = asyncio.get_running_loop().time()
    try:
        await eventually(lambda: _async(len(beats) >= 27), what="three rounds of beats", timeout=30)
        heartbeat.discard(sessions[0])
        assert len(heartbeat) == 8
    finally:
        heartbeat.close()
    for session in sessions:
        times = [t for name, t in beats if name == session.name]
        assert len(times) >= 2
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(0.45 < gap < 1.5 for gap in gaps), (session.name, gaps)  # once per interval
    # Spread: the first round came in more than one tick (not all nine at once).
    first_round = sorted(t for _, t in beats if t >= start)[:9]
    assert len({round(t, 2) for t in first_round}) >= 2


async def _async(value: bool) -> bool:
    return value
