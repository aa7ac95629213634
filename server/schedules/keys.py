"""Schedules' application keys: the clock every schedule decision reads (tests inject one),
this process's scheduler when it fires schedules, and the schedules the collectors file
declares."""

from __future__ import annotations

from aiohttp import web

from server.schedules.definition import ScheduleDefinition
from server.schedules.scheduler import Clock, Scheduler

SCHEDULE_CLOCK: web.AppKey[Clock] = web.AppKey("schedule_clock")
SCHEDULER: web.AppKey[Scheduler] = web.AppKey("scheduler")
DECLARED_SCHEDULES: web.AppKey[tuple[ScheduleDefinition, ...]] = web.AppKey("declared_schedules")
