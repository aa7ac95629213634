"""WebSocket heartbeats from the hub's one timer (server/realtime/heartbeat.py): pings every
interval, spread over it; a client that answers nothing is cut off, one that answers stays."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time

import pytest
from aiohttp import WSMsgType

from server.app import create_app
from server.realtime.heartbeat import SCHEDSTAT, Heartbeat, run_queue_wait
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


async def test_a_client_answering_while_the_server_stalls_stays_connected(aiohttp_client, settings):
    """The loop (the server's, which this client shares) stops for longer than an interval just
    after the client answered a ping: when it runs again, the next beat is due before the server
    has read the pong. The client is let off, and stays."""
    client = await aiohttp_client(create_app(replace_settings(settings, stream_heartbeat=0.2)))
    async with client.ws_connect("/api/ws", autoping=False) as ws:
        for round_ in range(4):
            msg = await next_frame(ws)
            assert msg.type == WSMsgType.PING, (round_, msg.type, msg.data)
            await ws.pong(msg.data)
            if round_ == 1:
                time.sleep(0.5)  # noqa: ASYNC251  (the point: the whole loop stalls; the pong is sent, not yet read)
        await ws.send_json({"op": "ping"})  # still served
        while (msg := await next_frame(ws)).type == WSMsgType.PING:
            await ws.pong(msg.data)
        assert msg.type == WSMsgType.TEXT and msg.json() == {"type": "pong"}


async def test_a_silent_client_is_let_off_once_only(aiohttp_client, settings):
    """Stalls after every ping: the silent client is let off once, then cut off all the same."""
    client = await aiohttp_client(create_app(replace_settings(settings, stream_heartbeat=0.2)))
    async with client.ws_connect("/api/ws", autoping=False) as ws:
        pings = 0
        while (msg := await next_frame(ws)).type == WSMsgType.PING:
            pings += 1
            time.sleep(0.5)  # noqa: ASYNC251  (the loop stalls: every round is one the server could not run in)
        assert msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSE, WSMsgType.ERROR), (msg.type, msg.data)
        assert pings == 1, pings  # no second ping: the one outstanding still counts


def test_the_run_queue_wait_of_a_thread_that_shares_its_cpu_grows() -> None:
    """run_queue_wait() reads real figures: pinned to one CPU beside a process that spins on it,
    this thread waits for the CPU while it is ready to run."""
    assert os.path.exists(SCHEDSTAT), "the suite runs on Linux, whose schedstat this reads"
    cpu = min(os.sched_getaffinity(0))
    before_affinity = os.sched_getaffinity(0)
    spinner = subprocess.Popen(
        [sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"]
    )
    os.sched_setaffinity(0, {cpu})
    try:
        start = run_queue_wait()
        spun = time.monotonic()
        while run_queue_wait() - start < 0.01:  # ready to run all along: it waits while the spinner runs
            assert time.monotonic() - spun < 30, "the run-queue wait never grew"
        assert run_queue_wait() >= start
    finally:
        os.sched_setaffinity(0, before_affinity)
        spinner.kill()
        spinner.wait()
