"""The fanout's fast path keeps every invariant (docs/ARCHITECTURE.md, rules 5 and 6): a client
that keeps up gets the shared frame written to its socket at once; one that is behind is
conflated (never out of order, never without its terminal state), bounded, and counted.

Subscribers here write to real loopback sockets; the hub's fanout is driven with snapshots
(what the state tracker hands it after a read). Every test runs on asyncio's event loop and on
uvloop's, whose transport is no ``asyncio.Transport`` subclass and must get the fast path too."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest

from server.observability.metrics import sample_value
from server.realtime import hub as hub_module
from server.realtime.cache import BatchEntry
from server.realtime.events import BatchSnapshot, Control, Event
from server.realtime.fanout import DIRECT_WRITE_LIMIT, Wire
from server.realtime.hub import Hub
from server.realtime.subscriber import Subscriber, wire_of
from server.realtime.subscriptions import Subscription
from tests.support.runs import trigger

pytestmark = pytest.mark.every_loop  # tests/conftest.py: asyncio's loop and uvloop's


class Socket:
    """A loopback TCP connection: ``transport`` is the server side, ``reader`` the client's."""

    def __init__(self, transport: Wire, reader: asyncio.StreamReader) -> None:
        self.transport = transport
        self.reader = reader
        self.received = b""

    async def read_until(self, needle: bytes) -> bytes:
        while needle not in self.received:
            self.received += await asyncio.wait_for(self.reader.read(65536), 15)
        return self.received


class Sockets:
    def __init__(self) -> None:
        self.made: list[tuple[Socket, asyncio.StreamWriter]] = []
        self.accepted: asyncio.Queue[Wire] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def connect(self) -> Socket:
        if self.server is None:
            accepted = self.accepted

            class Accept(asyncio.Protocol):
                def connection_made(self, transport: asyncio.BaseTransport) -> None:
                    wire = wire_of(transport)  # uvloop's transport is no asyncio.Transport
                    assert wire is not None, f"{type(transport)} lacks asyncio's write-transport interface"
                    accepted.put_nowait(wire)

            self.server = await asyncio.get_running_loop().create_server(Accept, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = Socket(await self.accepted.get(), reader)
        self.made.append((sock, writer))
        return sock


@pytest.fixture
async def sockets() -> AsyncIterator[Sockets]:
    made = Sockets()
    yield made
    for sock, writer in made.made:
        sock.transport.abort()
        writer.close()
    if made.server is not None:
        made.server.close()
        await made.server.wait_closed()


def event(seq: int, status: str = "running", object_id: str = "bc_00000001", kind: str = "batch") -> Event:
    body = {"batch_id": object_id, "status": status, "seq_in_body": seq}
    return Event(kind, object_id, seq, json.dumps(body).encode(), status, "demo" if kind == "job" else None)


def snapshot(seq: int, status: str = "running") -> BatchSnapshot:
    return BatchSnapshot("bc_00000001", seq, event(seq, status), {})


async def test_a_client_that_keeps_up_gets_the_shared_frame_at_once_and_is_counted(sockets):
    sock = await sockets.connect()
    subscriber = Subscriber(10, "test", "websocket")
    subscriber.write_directly(sock.transport)
    before = sample_value("collector_hub_events_delivered_total", {"transport": "websocket"})
    first = event(1)
    subscriber.offer(first)
    assert subscriber.pending == 0  # written, not queued
    assert sample_value("collector_hub_events_delivered_total", {"transport": "websocket"}) == before + 1
    assert (await sock.read_until(first.ws_message())).endswith(first.ws_frame())


async def test_frames_sent_in_part_arrive_whole_and_in_order(sockets):
    """The fast path writes through the transport: what the kernel does not take stays in the
    transport's buffer, and later frames queue behind it."""
    sock = await sockets.connect()
    sock.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    subscriber = Subscriber(100, "test", "websocket")
    subscriber.write_directly(sock.transport)
    events = [
        Event("batch", f"bc_{n:08d}", n, json.dumps({"n": n, "pad": "x" * 20_000}).encode(), "running")
        for n in range(1, 13)
    ]
    for item in events:  # the client reads nothing meanwhile: the kernel fills, then the transport
        subscriber.offer(item)
    assert sock.transport.get_write_buffer_size() > 0  # some did not fit: the transport holds them
    sent = events[: len(events) - subscriber.pending]  # the rest queued for a writer (none here)
    assert 1 < len(sent) < len(events)
    expected = b"".join(item.ws_frame() for item in sent)
    assert (await sock.read_until(sent[-1].ws_message()))[: len(expected)] == expected


class Buffered:
    """A wire whose unsent bytes the test sets (a socket that fills and drains at will)."""

    def __init__(self, unsent: int) -> None:
        self.unsent = unsent
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def abort(self) -> None:
        raise AssertionError("nothing here aborts")


def test_any_transport_with_asyncios_write_interface_gets_the_fast_path():
    """Whatever its class: uvloop's transport subclasses nothing of asyncio's. An object without
    the interface is not written to; its events go through the connection's writer."""

    wire = Buffered(0)  # no asyncio class among its bases
    subscriber = Subscriber(10, "test", "websocket")
    subscriber.write_directly(wire)
    first = event(1)
    subscriber.offer(first)
    assert subscriber.pending == 0 and wire.written == [first.ws_frame()]

    class WritesOnly:
        def write(self, data: bytes) -> None:
            raise AssertionError("not a transport the fast path may use")

    assert wire_of(WritesOnly()) is None and wire_of(None) is None
    other = Subscriber(10, "test", "sse")
    other.write_directly(WritesOnly())
    other.offer(event(1))
    assert other.pending == 1  # queued for the writer


async def test_a_client_behind_is_conflated_in_order_and_keeps_the_terminal_state(sockets):
    sock = await sockets.connect()
    subscriber = Subscriber(10, "test", "websocket")
    subscriber.write_directly(sock.transport)
    subscriber.hold()  # behind: e.g. a subscribe in progress
    subscriber.offer(event(1))
    subscriber.offer(event(2, object_id="bc_00000002"))
    subscriber.offer(event(3))
    subscriber.offer(event(4, "completed"))
    assert subscriber.pending == 2  # one entry per object, each at its newest state
    subscriber.release()
    first, second = await subscriber.next(), await subscriber.next()
    assert isinstance(first, Event) and isinstance(second, Event)
    assert (first.object_id, first.seq, first.status) == ("bc_00000001", 4, "completed")  # in bc_1's place
    assert (second.object_id, second.seq) == ("bc_00000002", 2)
    # Caught up (the writer asks for more): the fast path is back.
    waiting = asyncio.ensure_future(subscriber.next())
    await asyncio.sleep(0)
    fifth = event(5, object_id="bc_00000003")
    subscriber.offer(fifth)
    assert subscriber.pending == 0 and not waiting.done()
    await sock.read_until(fifth.ws_message())
    waiting.cancel()


async def test_a_stream_that_ends_sends_its_terminal_state_through_its_writer(sockets):
    sock = await sockets.connect()
    subscriber = Subscriber(10, "test", "sse")
    subscriber.write_directly(sock.transport, terminal=False)
    subscriber.offer(event(1))
    assert subscriber.pending == 0
    subscriber.offer(event(2, "failed"))
    assert subscriber.pending == 1  # the writer sends it, then ends the stream
    item = await subscriber.next()
    assert isinstance(item, Event) and item.status == "failed"
    assert b"event: batch" in await sock.read_until(b"\n\n")


def test_the_writer_of_a_client_behind_writes_the_shared_frame_once_the_socket_has_room():
    """What a client that fell behind for a moment costs: once its socket has room again, the
    event its writer takes goes out as the shared frame, at once (docs/LIVE_PUSH.md)."""
    wire = Buffered(DIRECT_WRITE_LIMIT + 1)  # full: offers queue
    subscriber = Subscriber(10, "test", "websocket")
    subscriber.write_directly(wire)
    first, second = event(1), event(2, object_id="bc_00000002")
    subscriber.offer(first)
    assert subscriber.pending == 1 and wire.written == []
    assert subscriber.take() is first
    assert not subscriber.write_taken(first)  # still full: the writer sends it its own way
    wire.unsent = 0
    subscriber.offer(second)  # the writer holds an item: queued behind it, never ahead
    assert subscriber.pending == 1 and wire.written == []
    assert subscriber.take() is second and subscriber.write_taken(second)
    assert wire.written == [second.ws_frame()]  # the shared frame itself
    assert not subscriber.write_taken(Control.of({"type": "pong"}))  # a control message: its writer's way
    assert subscriber.take() is None  # caught up: the fast path is back
    third = event(3, object_id="bc_00000003")
    subscriber.offer(third)
    assert subscriber.pending == 0 and wire.written[-1] is third.ws_frame()

    sse = Subscriber(10, "test", "sse")
    sse.write_directly(Buffered(0), terminal=False)
    sse.hold()
    sse.offer(event(4, "failed"))
    sse.release()
    ended = sse.take()
    assert isinstance(ended, Event) and not sse.write_taken(ended)  # it ends the stream: the writer's way


def test_the_hot_path_is_open_exactly_while_the_client_keeps_up_and_remembers_nothing():
    """The fanout's loop (realtime/fanout.py) decides with one attribute of the subscription it
    iterates (the socket, or None) whether an event may skip every other check. Its subscriber
    keeps it, on itself and on each of its subscriptions: after each change of what it stands
    for (a queued control message, the writer sending, a follower of collectors, a close) an
    event goes where the guarantees say, and every copy agrees (docs/ARCHITECTURE.md, rule 6)."""
    wire = Buffered(0)
    subscriber = Subscriber(10, "test", "websocket")
    batch_topic = Subscription(subscriber, "batch", "bc_00000001")
    subscriber.add_topic(batch_topic)
    assert subscriber.direct is None and batch_topic.direct is None  # no socket yet
    subscriber.write_directly(wire)

    def offered_directly(item: Event) -> bool:
        written = len(wire.written)
        subscriber.offer(item)
        assert subscriber.direct is (wire if subscriber._offered is None and subscriber._keeps_up() else None)
        assert all(topic.direct is subscriber.direct for topic in subscriber._topics)
        return len(wire.written) == written + 1 and wire.written[-1] is item.ws_frame()

    assert offered_directly(event(1))
    assert batch_topic.direct is wire
    subscriber.send_control(Control.of({"type": "pong"}))
    assert subscriber.direct is None and batch_topic.direct is None
    assert not offered_directly(event(2, object_id="bc_00000002"))  # behind the control message
    assert isinstance(subscriber.take(), Control)
    assert not offered_directly(event(3, object_id="bc_00000003"))  # the writer is sending: behind it
    assert subscriber.take() is not None and subscriber.take() is not None and subscriber.take() is None
    assert subscriber.direct is wire and batch_topic.direct is wire  # caught up
    assert offered_directly(event(4))

    job_topic = Subscription(subscriber, "job", "de_00000001")
    job_topic.last_seq = 5
    subscriber.add_topic(job_topic)
    assert job_topic.direct is wire
    collectors = Subscription(subscriber, "collectors", frozenset({"demo"}))
    subscriber.add_topic(collectors)
    assert subscriber.direct is None and job_topic.direct is None  # each event is remembered first
    assert not offered_directly(event(5, object_id="de_00000001", kind="job"))  # offered by the job topic
    assert subscriber.pending == 0
    assert offered_directly(event(6, object_id="de_00000001", kind="job"))  # remembered, then written
    assert not offered_directly(event(6, object_id="de_00000001", kind="job"))
    subscriber.remove_topic(collectors)
    assert collectors.direct is None and job_topic.direct is wire
    assert offered_directly(event(7))

    subscriber.close("bye")
    assert subscriber.direct is None and batch_topic.direct is None
    assert not offered_directly(event(8)) and subscriber.pending == 0  # nothing after a close


async def test_one_fanout_counts_what_it_wrote_per_transport_and_queues_the_client_behind(sockets):
    """The fanout counts the events it writes once a fanout, for each transport; a follower
    whose socket holds more than DIRECT_WRITE_LIMIT gets the event queued instead, counted when
    its writer takes it (the /metrics figure stays exact)."""
    hub = Hub(None)  # type: ignore[arg-type]  # the fanout reads nothing
    subscribers = []
    for transport in ("websocket", "websocket", "sse", "sse", "sse"):
        subscriber = Subscriber(10, "test", transport)
        subscriber.write_directly((await sockets.connect()).transport)
        hub._subs.add(Subscription(subscriber, "batch", "bc_00000001"))
        subscribers.append(subscriber)
    behind = Subscriber(10, "test", "sse")
    behind.write_directly(Buffered(DIRECT_WRITE_LIMIT + 1))
    hub._subs.add(Subscription(behind, "batch", "bc_00000001"))

    def delivered() -> tuple[float, float]:
        return tuple(  # type: ignore[return-value]
            sample_value("collector_hub_events_delivered_total", {"transport": t}) for t in ("websocket", "sse")
        )

    before = delivered()
    hub._publish(BatchEntry(), None, snapshot(1))
    ws, sse = delivered()
    assert (ws - before[0], sse - before[1]) == (2, 3)
    assert behind.pending == 1 and all(subscriber.pending == 0 for subscriber in subscribers)
    assert isinstance(behind.take(), Event)
    assert delivered() == (ws, sse + 1)


async def test_a_client_that_reads_nothing_queues_then_is_cut_off_at_its_bound(sockets):
    sock = await sockets.connect()
    sock.transport.pause_reading()
    subscriber = Subscriber(3, "test", "sse")
    subscriber.write_directly(sock.transport)
    dropped = sample_value("collector_hub_slow_subscribers_dropped_total", {"transport": "sse"})
    big = Event("batch", "bc_00000009", 1, b'"' + b"x" * 60000 + b'"', "running")
    n = 0
    while subscriber.pending == 0:  # the kernel and the transport take data until they are full
        n += 1
        assert n < 10_000, "the socket never filled"
        subscriber.offer(Event("batch", "bc_00000009", n, big.data, "running"))
    assert sock.transport.get_write_buffer_size() > DIRECT_WRITE_LIMIT
    for k in range(3):
        subscriber.offer(event(n + 1 + k, object_id=f"bc_0000010{k}"))
    assert subscriber.closed and "too slow" in (subscriber.close_reason or "")
    assert sample_value("collector_hub_slow_subscribers_dropped_total", {"transport": "sse"}) == dropped + 1


async def test_a_sliced_fanout_reaches_everyone_in_order_and_lets_the_loop_run(sockets, monkeypatch):
    monkeypatch.setattr(hub_module, "FANOUT_SLICE", 2)
    hub = Hub(None)  # type: ignore[arg-type]  # the fanout reads nothing
    socks = [await sockets.connect() for _ in range(5)]
    for sock in socks:
        subscriber = Subscriber(10, "test", "websocket")
        subscriber.write_directly(sock.transport)
        hub._subs.add(Subscription(subscriber, "batch", "bc_00000001"))
    entry = BatchEntry()
    hub._publish(entry, None, snapshot(1))
    hub._publish(entry, snapshot(1), snapshot(2, "completed"))
    turns = 0
    while hub._fanouts:
        turns += 1
        await asyncio.sleep(0)
    assert turns >= 2  # the loop ran between slices
    assert "bc_00000001" not in hub._subs.by_batch  # every subscription ended with its terminal state
    for sock in socks:
        received = await sock.read_until(b'"completed"')
        assert received.index(b'"seq": 1') < received.index(b'"seq": 2')
        assert received.count(b'"type": "batch"') == 2


async def test_overlapping_topics_offer_a_job_state_once_and_never_an_older_one(sockets):
    hub = Hub(None)  # type: ignore[arg-type]
    sock = await sockets.connect()
    subscriber = Subscriber(10, "test", "websocket")
    subscriber.write_directly(sock.transport)
    job_topic = Subscription(subscriber, "job", "de_00000001")
    hub._subs.add(job_topic)
    hub._offer(job_topic, event(5, object_id="de_00000001", kind="job"))
    collectors = Subscription(subscriber, "collectors", frozenset({"demo"}))
    hub._subs.add(collectors)
    hub._offer(collectors, event(4, object_id="de_00000001", kind="job"))  # read before seq 5 went out
    hub._offer(collectors, event(6, object_id="de_00000001", kind="job"))
    hub._offer(job_topic, event(6, object_id="de_00000001", kind="job"))  # the same state, other topic
    hub.unsubscribe(collectors)
    hub._offer(job_topic, event(6, object_id="de_00000001", kind="job"))
    hub._offer(job_topic, event(7, object_id="de_00000001", kind="job"))
    received = await sock.read_until(b'"seq": 7')
    seqs = [int(part.split(b",", 1)[0]) for part in received.split(b'"seq": ')[1:]]
    assert seqs == [5, 6, 7]


async def test_delivered_metric_counts_exactly_what_clients_received(client):
    created = await trigger(client)
    batch_id, job_id = created["batch_id"], created["collectors"][0]["job_id"]
    clients = []
    for _ in range(3):
        ws = await client.ws_connect("/api/ws")
        await ws.send_json({"op": "subscribe", "batch_id": batch_id})
        while json.loads((await ws.receive(timeout=15)).data).get("type") != "batch":
            pass
        clients.append(ws)
    before = sample_value("collector_hub_events_delivered_total", {"transport": "websocket"})
    progress = {"status": "running", "progress_percent": 40, "message": "page 4"}
    assert (await client.post(f"/api/collectors/runs/job/{job_id}/progress", json=progress)).status == 200
    received = 0
    for ws in clients:
        while True:
            message = json.loads((await ws.receive(timeout=15)).data)
            received += message.get("type") == "batch"
            if message.get("type") == "batch" and message["data"]["progress_percent"] == 40:
                break
    # Counted as each is written, before the loop lets any client read.
    assert received >= 3
    assert sample_value("collector_hub_events_delivered_total", {"transport": "websocket"}) == before + received
    for ws in clients:
        await ws.close()


def test_a_connection_that_arrives_after_shutdown_began_is_closed_like_the_others():
    hub = Hub(None)  # type: ignore[arg-type]  # nothing is read
    before = Subscriber(10, "test", "websocket")
    hub.connect(before)
    hub.close()
    late = Subscriber(10, "test", "websocket")
    hub.connect(late)  # e.g. a WebSocket upgraded just before shutdown, served just after
    for subscriber in (before, late):
        assert subscriber.closed and subscriber.close_code == 1001
        assert subscriber.close_reason == "server shutting down; reconnect to resume"
