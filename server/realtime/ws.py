"""WebSocket ``/api/ws``: several subscriptions over one connection (protocol in
docs/LIVE_PUSH.md).

Client -> server: ``{"op": "subscribe"|"unsubscribe", "batch_id"|"job_id"|"collectors": ...,
"since": <seq>}``, ``{"op": "subscribe", "logs": <job id>, "after": <line>}`` (a job's log)
and ``{"op": "ping"}``. Server -> client: ``subscribed`` / ``unsubscribed``
acknowledgements, ``pong``, state messages ``{"type": "batch"|"job", "seq": N, "data": <GET
JSON>}``, log lines ``{"type": "logs", "job_id": ..., "lines": [...]}`` then ``{"type":
"logs_end", "job_id": ..., "status": ...}``, and ``{"type": "error", "error": "..."}``. A
client that keeps sending malformed messages is closed with 1008; one that cannot keep up,
with 1008 and a reason saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from server.api.roles import requires
from server.api.validation import check_batch_id, check_collector_names, check_job_id
from server.compat import WebSocketServedAfterItsHandler
from server.errors import ApiError, NotFoundError, ValidationError
from server.keys import REGISTRY, SETTINGS
from server.observability.access_log import request_id_of
from server.observability.metrics import SLOW_SUBSCRIBERS_DROPPED
from server.realtime.events import Control, Event
from server.realtime.fanout import Wire
from server.realtime.heartbeat import PING_FRAME
from server.realtime.hub import Hub
from server.realtime.keys import HUB
from server.realtime.log_tail import VARIANCES_KEY, LogFollower
from server.realtime.subscriber import Subscriber, wire_of
from server.realtime.subscriptions import Subscription
from server.realtime.ws_tails import TailFollows

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

TARGETS = ("batch_id", "job_id", "collectors", "logs", "variances")
FIELDS = {"subscribe": {"op", "since", "after", *TARGETS}, "unsubscribe": {"op", *TARGETS}, "ping": {"op"}}
MAX_SEQ = 10**18
MAX_LINE = 10**15


class BadMessage(Exception):
    """A message the protocol does not allow; counts towards the 1008 close."""


def _topic(kind: str, target: str) -> str | frozenset[str]:
    """What the hub follows for a target as the protocol names it (collectors: a set of names)."""
    return frozenset(target.split(",")) if kind == "collectors" else target


class Session(WebSocketServedAfterItsHandler, TailFollows):
    """One WebSocket connection: the response aiohttp serves, its subscriptions and its outbox.

    The handler returns the session as soon as the upgrade is done, and ``serve`` serves the
    connection until it ends, after the handler has returned (server/compat.py). Served so, an
    idle connection holds no frame of the handler or of the middleware chain, only what it
    needs (docs/LIVE_PUSH.md, memory per connection). The access log line is therefore written
    at the upgrade; the session's own log lines carry its request id.
    """

    __slots__ = (
        "bad_messages",
        "heard",
        "hub",
        "log_follows",
        "registry",
        "request_id",
        "settings",
        "subscriber",
        "subscriptions",
        "variance_follow",
        "wire",
        "writer",
    )  # slots: set before the base's attributes, they cost no instance dict entry

    def __init__(self, hub: Hub, registry: dict[str, Any], settings: Any, request_id: str) -> None:
        self.hub = hub
        self.registry = registry
        self.settings = settings
        self.request_id = request_id
        self.subscriber = Subscriber(settings.stream_outbox_limit, "WebSocket", "websocket")
        self.subscriptions: list[Subscription] = []  # a handful at most: a list is the smallest
        self.log_follows: dict[str, LogFollower] | None = None  # only once a log is followed
        self.variance_follow: LogFollower | None = None  # only while the variances are followed
        self.bad_messages = 0
        # The client sent something since the last ping (True), or not (False), or not even when
        # let off once because this server had stalled (None): realtime/heartbeat.py.
        self.heard: bool | None = True
        self.wire: Wire | None = None  # the connection's transport, once upgraded
        self.writer: asyncio.Task[None] | None = None  # only while there is something to send
        self.subscriber.write_when_queued(self.start_writer)
        # Pings come from the hub's one heartbeat timer, and pings and pongs reach this
        # session's loop: both are signs of life.
        super().__init__(
            autoping=False,
            max_msg_size=settings.ws_max_message_bytes,
            compress=settings.ws_compression,
        )

    def reply(self, message: dict[str, Any], *, first: bool = False) -> None:
        self.subscriber.send_control(Control.of(message), first=first)

    async def handle(self, msg: Any) -> None:
        try:
            if msg.type == WSMsgType.BINARY:
                raise BadMessage("messages must be JSON text frames, not binary")
            await self.handle_text(msg.data)
        except BadMessage as exc:
            self.bad_messages += 1
            self.reply({"type": "error", "error": str(exc)})
            if self.bad_messages >= self.settings.ws_max_bad_messages:
                self.subscriber.close("too many malformed messages", WSCloseCode.POLICY_VIOLATION, drain=True)

    async def handle_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            raise BadMessage("malformed JSON: every message must be a JSON object") from None
        if not isinstance(message, dict):
            raise BadMessage("every message must be a JSON object with an 'op'")
        op = message.get("op")
        if op not in FIELDS:
            shown = json.dumps(op)[:40] if op is not None else "missing"
            raise BadMessage(f"unknown op {shown}; ops are subscribe, unsubscribe, ping")
        unknown = sorted(set(message) - FIELDS[op])
        if unknown:
            raise BadMessage(f"unknown field(s) for {op}: {', '.join(repr(k[:40]) for k in unknown)}")
        if op == "ping":
            self.reply({"type": "pong"})
            return
        kind, target, echo = self.target_of(message)
        if "after" in message and kind != "logs":
            raise BadMessage("after goes with logs (a line number); batch, job, collectors and variances take since")
        if kind == "variances":
            if op == "subscribe":
                await self.follow_variances(echo, self.since_of(message))
            else:
                self.unfollow_variances(echo)
        elif kind == "logs":
            if "since" in message:
                raise BadMessage("a logs subscription resumes with after (a line number), not since")
            if op == "subscribe":
                self.follow_logs(target, echo, self.after_of(message))
            else:
                self.unfollow_logs(target, echo)
        elif op == "subscribe":
            await self.subscribe(kind, target, echo, self.since_of(message))
        else:
            self.unsubscribe(kind, target, echo)

    def target_of(self, message: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        given = [t for t in TARGETS if t in message]
        if len(given) != 1:
            raise BadMessage("give exactly one of batch_id, job_id, collectors, logs or variances")
        field = given[0]
        value = message[field]
        if field == "variances":
            if value is not True:
                raise BadMessage("variances must be true (the variances' changes, one stream)")
            return "variances", VARIANCES_KEY, {"variances": True}
        try:
            if field == "collectors":
                if not isinstance(value, list) or not value:
                    raise ValidationError("collectors must be a non-empty list of collector names")
                names = sorted(check_collector_names(value, self.registry))
                return "collectors", ",".join(names), {"collectors": names}
            if not isinstance(value, str):
                raise ValidationError(f"{field} must be a string")
            checked = check_batch_id(value) if field == "batch_id" else check_job_id(value)
        except ValidationError as exc:
            raise BadMessage(exc.message) from None
        return field.removesuffix("_id"), checked, {field: checked}

    @staticmethod
    def after_of(message: dict[str, Any]) -> int:
        after = message.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < MAX_LINE:
            raise BadMessage("after must be a log line number: a non-negative integer")
        return after

    @staticmethod
    def since_of(message: dict[str, Any]) -> int | None:
        since = message.get("since")
        if since is None:
            return None
        if isinstance(since, bool) or not isinstance(since, int) or not 0 <= since < MAX_SEQ:
            raise BadMessage("since must be a seq: a non-negative integer")
        return since

    def _prune(self) -> None:
        self.subscriptions[:] = [sub for sub in self.subscriptions if not sub.ended]

    def _pop_subscription(self, kind: str, topic: str | frozenset[str]) -> Subscription | None:
        for i, sub in enumerate(self.subscriptions):
            if sub.kind == kind and sub.target == topic:
                return self.subscriptions.pop(i)
        return None

    async def subscribe(self, kind: str, target: str, echo: dict[str, Any], since: int | None) -> None:
        self._prune()
        topic = _topic(kind, target)
        old = self._pop_subscription(kind, topic)
        if old is not None:
            self.hub.unsubscribe(old)  # subscribing again restarts it (e.g. with a new since)
        if self.refused_at_limit(len(self.subscriptions), echo):
            return
        self.subscriber.hold()
        try:
            sub = await self.hub.follow(self.subscriber, kind, topic, since)
        except NotFoundError as exc:
            self.reply({"type": "error", "error": exc.message, "status": 404, **echo})
            return
        except ApiError as exc:
            self.reply({"type": "error", "error": exc.message, "status": exc.status, **echo})
            return
        finally:
            self.subscriber.release()
        self.subscriptions.append(sub)
        # The acknowledgement goes ahead of the states queued while the outbox was held.
        self.reply({"type": "subscribed", **echo}, first=True)

    def unsubscribe(self, kind: str, target: str, shown: dict[str, Any]) -> None:
        sub = self._pop_subscription(kind, _topic(kind, target))
        if sub is None:
            self.reply({"type": "error", "error": "not subscribed to that", **shown})
            return
        self.hub.unsubscribe(sub)
        self.reply({"type": "unsubscribed", **shown})

    def start_writer(self) -> None:
        """Something is queued (or the connection is to be closed): send it from a task of its
        own, unless one runs. A connection that keeps up has no writer task at all: the hub
        writes its events to the socket directly."""
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self.write_loop(), name="websocket writer")

    async def write_loop(self) -> None:
        """Send the outbox, one message at a time, until it is empty; a client that accepts
        nothing for ``stream_send_timeout`` seconds is cut off. Closes the socket once the
        subscriber is closed."""
        try:
            await self._write_loop()
        finally:
            if self.writer is asyncio.current_task():
                self.writer = None  # a finished task is memory too

    async def _write_loop(self) -> None:
        timeout = self.settings.stream_send_timeout
        subscriber = self.subscriber
        while (item := subscriber.take()) is not None:
            if subscriber.write_taken(item):
                continue  # the socket had room again: written at once, like the fast path
            data = item.ws_message() if isinstance(item, Event) else item.data
            try:
                async with asyncio.timeout(timeout):  # not wait_for: no task per message
                    await self.send_frame(data, WSMsgType.TEXT)
            except TimeoutError:
                log.warning(
                    "WebSocket client accepted nothing for %gs; disconnected",
                    timeout,
                    extra={"request_id": self.request_id},
                )
                SLOW_SUBSCRIBERS_DROPPED.labels("websocket").inc()
                self.subscriber.close(f"too slow: nothing accepted for {timeout:g}s", WSCloseCode.POLICY_VIOLATION)
                if self.wire is not None:
                    self.wire.abort()
                return
            except (ConnectionError, RuntimeError):
                return
        if not self.subscriber.closed:
            return  # sent everything: the next message queued starts a writer again
        reason = self.subscriber.close_reason or "closed"
        code = self.subscriber.close_code or WSCloseCode.OK
        log.info("WebSocket closed by the server (%s): %s", code, reason, extra={"request_id": self.request_id})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.close(code=code, message=reason.encode()[:120]), 2.0)

    async def serve(self) -> None:
        """After the handler: serve the connection until it ends, then close."""
        if self.closed:  # closed before it was served: nothing to serve
            await self.finish()
            return
        self.headers.clear()  # sent with the upgrade and never read again: not kept for the connection's life
        hub = self.hub
        subscriber = self.subscriber
        hub.connect(subscriber)
        hub.heartbeat.add(self)
        try:
            # The client's messages, until it leaves or this side closes. (Inline rather than a
            # method of its own: a frame less held by every idle connection.)
            async for msg in self:
                self.heard = True
                if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                    await self.handle(msg)
                elif msg.type is WSMsgType.PING:
                    await self.pong(msg.data)
                del msg  # an idle connection keeps no message
                if subscriber.closed:
                    break
            if subscriber.closed:  # let the writer send what explains the close
                self.start_writer()  # one that already ran to the end is not running any more
                writer = self.writer
                assert writer is not None
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(writer), self.settings.stream_send_timeout + 3)
        finally:
            self._end()
            hub.heartbeat.discard(self)
            hub.disconnect(subscriber)
            writer = self.writer
            if writer is not None and not writer.done():
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer
            with contextlib.suppress(Exception):
                await self.finish()

    def beat(self) -> None:
        """The hub's heartbeat: ping, unless the last ping went unanswered (and nothing else
        came since), which cuts the client off; once in a row, a client is let off instead when
        this server stalled over the interval (realtime/heartbeat.py)."""
        wire = self.wire
        if wire is None or wire.is_closing():
            return
        heard = self.heard
        if not heard:
            if heard is False and self.hub.heartbeat.stalled:
                self.heard = None  # let off once: this server could not run to read the answer
                return
            log.info(
                "WebSocket client answered no ping for %gs; disconnected",
                self.hub.heartbeat.interval,
                extra={"request_id": self.request_id},
            )
            wire.abort()
            return
        self.heard = False
        wire.write(PING_FRAME)  # whole frames only ever go to the socket: this cannot split one

    def _end(self) -> None:
        """Unsubscribe from everything (the connection is over)."""
        for sub in self.subscriptions:
            self.hub.unsubscribe(sub)
        self.subscriptions.clear()
        self.end_tails()


@routes.get("/api/ws")
@requires("read")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Upgrade, then return the session: aiohttp serves it once this has returned (see Session)."""
    hub = request.app[HUB]
    if hub.closing:
        raise ApiError("Server is shutting down; try again", status=503)
    session = Session(hub, request.app[REGISTRY], request.app[SETTINGS], request_id_of(request))
    try:
        await session.prepare(request)
    except ConnectionError:  # the client left during the upgrade: nobody to answer
        raise asyncio.CancelledError from None
    transport = request.transport
    session.wire = wire_of(transport)  # asyncio's transports and uvloop's alike
    if not session.compress:  # compressed frames differ per connection: no shared bytes
        session.subscriber.write_directly(transport)
    return session
