"""Cron expressions and time zones without a database: which fire times a schedule has,
minute by minute across daylight-saving changes, and what a bad expression is told."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

import pytest

from server.errors import ValidationError
from server.schedules import cron

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
SPRING_FORWARD = dt.date(2026, 3, 8)  # 02:00 EST -> 03:00 EDT: 02:xx does not exist
FALL_BACK = dt.date(2026, 11, 1)  # 02:00 EDT -> 01:00 EST: 01:xx happens twice


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), NEW_YORK).astimezone(dt.UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), NEW_YORK).astimezone(dt.UTC)
    return start, end


def fires_during(expression: str, day: dt.date) -> list[dt.datetime]:
    """Walk the day one real minute at a time, as a scheduler would, asking at each minute for
    the next fire time after the previous minute: every due time met, each exactly once."""
    start, end = day_bounds(day)
    seen: list[dt.datetime] = []
    minute = start
    while minute < end:
        upcoming = cron.fire_times(expression, "America/New_York", minute - dt.timedelta(minutes=1), 1)[0]
        if upcoming <= minute and upcoming not in seen:
            seen.append(upcoming)
        minute += dt.timedelta(minutes=1)
    return seen


def local(moment: dt.datetime) -> str:
    return moment.astimezone(NEW_YORK).strftime("%H:%M%z")


@pytest.mark.parametrize(("day", "minutes"), [(SPRING_FORWARD, 23 * 60), (FALL_BACK, 25 * 60)])
def test_every_minute_fires_once_per_real_minute_across_a_dst_change(day: dt.date, minutes: int) -> None:
    fired = fires_during("* * * * *", day)
    assert len(fired) == minutes == len(set(fired))
    assert all(b - a == dt.timedelta(minutes=1) for a, b in itertools.pairwise(fired))


@pytest.mark.parametrize(
    ("expression", "day", "expected"),
    [
        ("30 2 * * *", SPRING_FORWARD, ["03:00-0400"]),  # 02:30 does not exist: once, right after the jump
        ("30 1 * * *", FALL_BACK, ["01:30-0400"]),  # 01:30 happens twice: once, the first time
        ("0 2 * * *", FALL_BACK, ["02:00-0500"]),
        ("30 2 * * *", FALL_BACK, ["02:30-0500"]),
        ("@daily", SPRING_FORWARD, ["00:00-0500"]),
        ("@daily", FALL_BACK, ["00:00-0400"]),
    ],
)
def test_a_wall_clock_time_fires_once_on_a_dst_day(expression: str, day: dt.date, expected: list[str]) -> None:
    assert [local(t) for t in fires_during(expression, day)] == expected


@pytest.mark.parametrize(
    ("expression", "day", "count"),
    [("0 * * * *", SPRING_FORWARD, 23), ("0 * * * *", FALL_BACK, 25), ("*/15 * * * *", FALL_BACK, 100)],
)
def test_interval_expressions_count_real_time(expression: str, day: dt.date, count: int) -> None:
    fired = fires_during(expression, day)
    assert len(fired) == len(set(fired)) == count


def test_fire_times_are_strictly_after_and_in_utc() -> None:
    after = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    times = cron.fire_times("0 9 * * 1-5", "UTC", after, 5)
    assert [t.isoformat() for t in times] == [
        "2026-01-06T09:00:00+00:00",
        "2026-01-07T09:00:00+00:00",
        "2026-01-08T09:00:00+00:00",
        "2026-01-09T09:00:00+00:00",
        "2026-01-12T09:00:00+00:00",
    ]
    paris = cron.fire_times("0 9 * * *", "Europe/Paris", after, 1)
    assert paris == [dt.datetime(2026, 1, 6, 8, 0, tzinfo=dt.UTC)]


def test_a_start_inside_the_repeated_hour_never_goes_back() -> None:
    second_pass = dt.datetime(2026, 11, 1, 1, 40, tzinfo=NEW_YORK, fold=1)  # 01:40 EST
    upcoming = cron.fire_times("45 1 * * *", "America/New_York", second_pass, 1)[0]
    # 01:45 fired on the first pass (EDT); the wall clock shows it again, but it is not due again.
    assert upcoming == dt.datetime(2026, 11, 2, 1, 45, tzinfo=NEW_YORK)


def test_due_between_counts_and_finds_the_latest() -> None:
    first = dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)
    count, latest, capped = cron.due_between("*/5 * * * *", "UTC", first, first + dt.timedelta(minutes=12))
    assert (count, latest, capped) == (3, first + dt.timedelta(minutes=10), False)
    count, latest, capped = cron.due_between("* * * * *", "UTC", first, first + dt.timedelta(days=30))
    assert (count, latest, capped) == (cron.MAX_COUNTED, first + dt.timedelta(days=30), True)


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("61 * * * *", "cron field 1 (minute) is invalid: '61'"),
        ("* 24 * * *", "cron field 2 (hour) is invalid: '24'"),
        ("* * 32 * *", "cron field 3 (day-of-month) is invalid: '32'"),
        ("* * * 13 *", "cron field 4 (month) is invalid: '13'"),
        ("* * * * MOON", "cron field 5 (day-of-week) is invalid: 'MOON'"),
        ("*/0 * * * *", "cron field 1 (minute) is invalid: '*/0'"),
        ("5-1 * * * *", "cron field 1 (minute) is invalid: '5-1'"),
        ("* * * *", "five fields"),
        ("0 * * * * *", "five fields"),
        ("@often", "shorthand '@often' is unknown"),
        ("", "non-empty string"),
        ("0 0 30 2 *", "cron field 3 (day-of-month)"),
        ("0 0 * * 1#6", "cron field 5 (day-of-week)"),
    ],
)
def test_a_bad_expression_is_told_which_field(expression: str, complaint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        cron.check_cron(expression)
    assert complaint in caught.value.message


def test_expressions_are_stored_normalised() -> None:
    assert cron.check_cron("  */5   *  * * mon-fri ") == "*/5 * * * mon-fri"
    assert cron.check_cron("@DAILY") == "@daily"
    assert cron.expand("@hourly") == "0 * * * *"


@pytest.mark.parametrize("name", ["Mars/Olympus", "utc ", "America/New York", "../etc/passwd", "", 5, None])
def test_unknown_time_zones_are_refused(name: object) -> None:
    with pytest.raises(ValidationError) as caught:
        cron.check_timezone(name)
    assert "time zone" in caught.value.message


def test_known_time_zones_pass() -> None:
    for name in ("UTC", "America/New_York", "Europe/Paris", "Asia/Kolkata"):
        assert cron.check_timezone(name) == name
