"""WebSocket heartbeats from the hub's one timer (server/realtime/heartbeat.py): pings every
interval, spread over it; a client that answers nothing is cut off, one that answers stays."""

from __future__ import annotations

import asyncio
import dataclasses
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


INTERVAL = 0.6
GROUPS = 3
STEP = INTERVAL / GROUPS  # one group served per step
EPSILON = 1e-6  # the due times are sums of floats


@dataclasses.dataclass(frozen=True)
class Beat:
    session: int
    tick: int  # Heartbeat.ticks: the tick numbered t serves group (t - 1) % GROUPS
    due: float  # when that tick was due: the time the spread decided
    ran: float  # when it ran (from when its tick came): later when the loop was busy or the process waited for a CPU


class Recorder:
    def __init__(self, heartbeat: Heartbeat, beats: list[Beat], name: int) -> None:
        self.heartbeat = heartbeat
        self.beats = beats
        self.name = name

    def beat(self) -> None:
        heartbeat = self.heartbeat
        self.beats.append(Beat(self.name, heartbeat.ticks, heartbeat.due, asyncio.get_running_loop().time()))


async def test_beats_come_once_per_interval_each_spread_over_the_interval():
    """Checked on what the heartbeat decided (which tick beats whom, and when each tick was due),
    not on when its ticks ran: a tick that runs late does not move the next one (Heartbeat._tick
    keeps the beat on time), so the times they ran measured the machine's load as well (two
    beats 0.4499 s apart, against a bound of 0.45, at a load average of 19: the first one's tick
    had run 0.15 s late). A tick's lateness may delay the next one only past a whole step."""
    heartbeat = Heartbeat(INTERVAL, groups=GROUPS)
    beats: list[Beat] = []
    sessions: list[Recorder] = []
    joined: dict[int, int] = {}  # session -> ticks served when it joined
    # Three sessions join after a tick until every group has some, however late the ticks come
    # under load: one that joins after t ticks is in the group served last, (t - 1) % GROUPS
    # (Heartbeat.add), and is beaten one interval later, at tick t + GROUPS.
    filled: set[int] = set()
    while len(filled) < GROUPS:
        await eventually(
            lambda: _async((heartbeat.ticks - 1) % GROUPS not in filled),
            what="a tick before an empty group",
            interval=0.01,
        )
        filled.add((heartbeat.ticks - 1) % GROUPS)
        for _ in range(3):
            session = Recorder(heartbeat, beats, len(sessions))
            sessions.append(session)
            joined[session.name] = heartbeat.ticks
            heartbeat.add(session)
    try:
        await eventually(
            lambda: _async(all(sum(b.session == s.name for b in beats) >= 3 for s in sessions)),
            what="three beats of every session",
            timeout=30,
        )
        # The loop stalls for two intervals: the ticks missed meanwhile are not caught up on.
        stalled_from = time.monotonic()  # the clock of loop.time() on both loops
        time.sleep(2 * INTERVAL)  # noqa: ASYNC251  (the point: the whole loop stalls)
        stalled_until = time.monotonic()
        after = heartbeat.ticks + GROUPS
        await eventually(lambda: _async(heartbeat.ticks > after), what="a round after the stall", timeout=30)
        heartbeat.discard(sessions[0])
        assert len(heartbeat) == len(sessions) - 1
    finally:
        heartbeat.close()
    # Once per interval, every interval: a session is beaten every GROUPS ticks from one interval
    # after it joined (so with the sessions of its group only: spread), none skipped...
    for session in sessions:
        ticks = [b.tick for b in beats if b.session == session.name]
        first = joined[session.name] + GROUPS
        assert ticks == list(range(first, first + GROUPS * len(ticks), GROUPS)), (session.name, joined, ticks)
        dues = [b.due for b in beats if b.session == session.name]
        assert all(b - a >= INTERVAL - EPSILON for a, b in itertools.pairwise(dues)), (session.name, dues)
    # ...and the ticks come one step apart (the interval spread over its groups): never sooner,
    # and later only after a tick that itself ran over a step late (no catching up).
    due = {b.tick: b.due for b in beats}
    ran = {t: min(b.ran for b in beats if b.tick == t) for t in due}
    settled = [t for t in sorted(due) if t > max(joined.values())]  # every group has sessions by then
    assert len(settled) >= 2 * GROUPS, sorted(due)
    for t in settled[:-1]:
        assert t + 1 in due, (t, sorted(due))  # every tick beat some
        assert due[t + 1] - due[t] >= STEP - EPSILON, (t, due[t], due[t + 1])
        assert due[t + 1] <= max(due[t] + STEP, ran[t]) + EPSILON, (t, due[t], ran[t], due[t + 1])
    # Over the stall, only the tick pending when it began was due (uvloop's clock counts whole
    # milliseconds); catching up, the ticks after it would have kept their times in it.
    missed = [t for t in due if stalled_from + 0.01 < due[t] < stalled_until - 0.01]
    assert len(missed) <= 1, (stalled_from, stalled_until, {t: due[t] for t in missed})


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
