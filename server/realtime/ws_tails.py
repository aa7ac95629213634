"""The WebSocket session's numbered streams (server/realtime/log_tail.py): a job's log and
the variances' changes. A mixin of ``Session`` (server/realtime/ws.py), which holds the state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.errors import ApiError
from server.realtime.events import Control
from server.realtime.log_tail import VARIANCES_KEY, LogBatch, LogFollower

if TYPE_CHECKING:
    from server.realtime.hub import Hub
    from server.realtime.subscriber import Subscriber
    from server.realtime.subscriptions import Subscription


class TailFollows:
    """Follows of tails over one WebSocket; the attributes are ``Session``'s slots (a
    WebSocket response has an instance dict anyway, so the mixin declares none)."""

    log_follows: dict[str, LogFollower] | None
    variance_follow: LogFollower | None

    hub: Hub
    settings: Any
    subscriber: Subscriber
    subscriptions: list[Subscription]

    if TYPE_CHECKING:

        def reply(self, message: dict[str, Any], *, first: bool = False) -> None: ...

    def follow_logs(self, job_id: str, echo: dict[str, Any], after: int) -> None:
        """A job's log: the stored lines after ``after``, then new ones, then ``logs_end``. An
        unknown job answers an error (its log tail finds no job)."""
        follows = self.log_follows
        if follows is None:
            follows = self.log_follows = {}
        old = follows.pop(job_id, None)
        if old is not None:
            self.hub.log_tails.unfollow(old)
        if self.refused_at_limit(len(self.subscriptions) + len(follows), echo):
            return
        self.reply({"type": "subscribed", **echo})

        def finish(batch: LogBatch) -> None:
            follows.pop(job_id, None)
            self.reply({"type": "logs_end", **batch.end_message()})

        def gone() -> None:
            follows.pop(job_id, None)
            self.reply({"type": "error", "error": "Job not found", "status": 404, **echo})

        follower = LogFollower(
            job_id,
            after,
            deliver=lambda batch, start: self.subscriber.send_control(Control(batch.ws(start))),
            finish=finish,
            gone=gone,
        )
        follows[job_id] = follower
        self.hub.log_tails.follow(follower)

    async def follow_variances(self, echo: dict[str, Any], since: int | None) -> None:
        """The variances' changes after ``since`` (without it, from now), each page headed by
        the open counts; the first page comes at once, with the counts even if nothing changed."""
        if self.variance_follow is not None:
            self.hub.variance_tail.unfollow(self.variance_follow)
            self.variance_follow = None
        source = self.hub.variance_source
        if source is None:
            self.reply({"type": "error", "error": "this server pushes no variances", "status": 404, **echo})
            return
        if self.refused_at_limit(len(self.subscriptions) + len(self.log_follows or ()), echo):
            return
        self.subscriber.hold()
        try:
            position = since if since is not None else await self.hub.latest_variance_seq(source)
        except ApiError as exc:
            self.reply({"type": "error", "error": exc.message, "status": exc.status, **echo})
            return
        finally:
            self.subscriber.release()
        self.reply({"type": "subscribed", **echo}, first=True)
        follower = LogFollower(
            VARIANCES_KEY,
            position,
            deliver=lambda batch, start: self.subscriber.send_control(Control(batch.ws(start))),
            finish=lambda batch: None,  # the variances never end
            gone=lambda: None,
        )
        self.variance_follow = follower
        self.hub.variance_tail.follow(follower)

    def unfollow_variances(self, echo: dict[str, Any]) -> None:
        follower, self.variance_follow = self.variance_follow, None
        if follower is None:
            self.reply({"type": "error", "error": "not subscribed to that", **echo})
            return
        self.hub.variance_tail.unfollow(follower)
        self.reply({"type": "unsubscribed", **echo})

    def unfollow_logs(self, job_id: str, echo: dict[str, Any]) -> None:
        follower = self.log_follows.pop(job_id, None) if self.log_follows else None
        if follower is None:
            self.reply({"type": "error", "error": "not subscribed to that", **echo})
            return
        self.hub.log_tails.unfollow(follower)
        self.reply({"type": "unsubscribed", **echo})

    def refused_at_limit(self, held: int, echo: dict[str, Any]) -> bool:
        """With ``held`` subscriptions already, refuse one more at the connection's limit."""
        limit = self.settings.ws_max_subscriptions
        if held < limit:
            return False
        self.reply({"type": "error", "error": f"subscription limit reached ({limit} per connection)", **echo})
        return True

    def end_tails(self) -> None:
        """The connection is over: follow nothing more."""
        for follower in (self.log_follows or {}).values():
            self.hub.log_tails.unfollow(follower)
        self.log_follows = None
        if self.variance_follow is not None:
            self.hub.variance_tail.unfollow(self.variance_follow)
            self.variance_follow = None
