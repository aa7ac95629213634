"""A tail's followers (server/realtime/log_tail.py) when one comes while a page is being read:
it gets every item after its own position, none skipped, whatever the others had."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from server.realtime.log_tail import VARIANCE_FRAMING, VARIANCES_KEY, LogBatch, LogFollower, LogTails
from server.realtime.sources import LogPage
from tests.support.conditions import eventually

ITEMS = {1: b'{"seq": 1}', 2: b'{"seq": 2}'}


class HeldSource:
    """Items 1 and 2, with the open counts as the header; a read from ``hold_after`` waits until
    released, so that a follower can come while it is under way."""

    def __init__(self, hold_after: int) -> None:
        self.hold_after = hold_after
        self.release = asyncio.Event()
        self.reading = asyncio.Event()
        self.reads: list[int] = []

    async def read_log(self, pool: Any, key: str, after: int, limit: int) -> LogPage | None:
        self.reads.append(after)
        if after == self.hold_after:
            self.reading.set()
            await self.release.wait()
        numbers = [n for n in sorted(ITEMS) if n > after][:limit]
        return LogPage("open", numbers, [ITEMS[n] for n in numbers], header=json.dumps({"open": 2}).encode())


def follower(position: int, got: list[int]) -> LogFollower:
    def deliver(batch: LogBatch, start: int) -> None:
        got.extend(batch.numbers[start:])

    return LogFollower(VARIANCES_KEY, position, deliver=deliver, finish=lambda batch: None, gone=lambda: None)


async def test_a_follower_that_comes_during_a_read_from_further_back_misses_nothing() -> None:
    source = HeldSource(hold_after=2)
    tails = LogTails(None, source, VARIANCE_FRAMING)  # type: ignore[arg-type]
    ahead: list[int] = []
    behind: list[int] = []
    tails.follow(follower(2, ahead))  # has had both items: its read finds nothing new
    await asyncio.wait_for(source.reading.wait(), 10)
    late = follower(1, behind)  # resumes after item 1, while that read is under way
    tails.follow(late)
    source.release.set()

    async def caught_up() -> bool:
        return behind == [2]

    await eventually(caught_up, timeout=10, what="the late follower to get item 2")
    assert ahead == [] and late.position == 2
    assert source.reads[:2] == [2, 1]  # read again from the late follower's position
    await tails.close()
