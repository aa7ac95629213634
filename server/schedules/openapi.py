"""The schedules part of the OpenAPI document (server/service/openapi_document.py merges it in)."""

from __future__ import annotations

from collectors.contract import SCHEDULE_FIRE_OUTCOMES
from server.openapi.components import (
    ADMIN,
    BAD_BODY,
    SERVER_ERROR,
    Names,
    Part,
    Schema,
    closed_object,
    error,
    json_response,
    nullable,
    operation,
    ref,
)
from server.schedules.cron import MAX_CRON_CHARS, MAX_TIMEZONE_CHARS
from server.schedules.definition import CATCH_UP_POLICIES, MAX_COLLECTORS, NAME, OVERLAP_POLICIES, SCHEDULE_ID
from server.schedules.representation import NEXT_FIRE_TIMES


def schedule_schemas(names: Names) -> dict[str, Schema]:
    collector_names = names.collectors
    timestamp = ref("Timestamp")
    fields: dict[str, Schema] = {
        "name": {"type": "string", "pattern": NAME.pattern, "description": "Unique; the file's table key."},
        "collectors": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_COLLECTORS,
            "uniqueItems": True,
            "items": {"type": "string", "enum": collector_names},
        },
        "priority": ref("Priority"),
        "cron": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CRON_CHARS,
            "description": "Five fields (minute hour day-of-month month day-of-week) or @yearly, @annually,"
            " @monthly, @weekly, @daily, @midnight, @hourly.",
            "examples": ["0 2 * * *", "*/15 * * * 1-5", "@daily"],
        },
        "timezone": {
            "type": "string",
            "maxLength": MAX_TIMEZONE_CHARS,
            "description": "IANA time zone name; the cron expression is read on its clock.",
            "examples": ["UTC", "America/New_York"],
        },
        "enabled": {"type": "boolean"},
        "overlap": {
            "type": "string",
            "enum": list(OVERLAP_POLICIES),
            "description": "skip: no new batch while this schedule's previous batch is queued or running.",
        },
        "catch_up": {
            "type": "string",
            "enum": list(CATCH_UP_POLICIES),
            "description": "After downtime, none skips the missed due times; latest fires the most recent once.",
        },
    }
    defaults = {"timezone": "UTC", "priority": "normal", "enabled": True, "overlap": "skip", "catch_up": "none"}
    optional = tuple(defaults)
    return {
        "ScheduleId": {"type": "string", "pattern": SCHEDULE_ID.pattern, "examples": ["sch_3f2a9c0d1b7e4a55"]},
        "BatchSchedule": closed_object(
            {
                "schedule_id": ref("ScheduleId"),
                "name": {"type": "string"},
                "due_at": {**nullable(timestamp), "description": "The due time it fired for; null for run now."},
            }
        ),
        "Schedule": closed_object(
            {
                "schedule_id": ref("ScheduleId"),
                **fields,
                "source": {
                    "type": "string",
                    "enum": ["api", "file"],
                    "description": "file: declared in the collectors file; the API may only pause and resume it.",
                },
                "next_fire_times": {
                    "type": "array",
                    "maxItems": NEXT_FIRE_TIMES,
                    "items": timestamp,
                    "description": "The next due times, pending one first; empty while paused.",
                },
                "last_batch": nullable(
                    closed_object(
                        {
                            "batch_id": ref("BatchId"),
                            "status": ref("Status"),
                            "due_at": nullable(timestamp),
                            "started_at": timestamp,
                            "ended_at": nullable(timestamp),
                        }
                    )
                ),
                "last_fire": nullable(
                    closed_object(
                        {
                            "due_at": timestamp,
                            "outcome": {"type": "string", "enum": list(SCHEDULE_FIRE_OUTCOMES)},
                            "batch_id": nullable(ref("BatchId")),
                            "detail": {**nullable({"type": "string"}), "description": "Why it was skipped."},
                            "recorded_at": timestamp,
                        }
                    )
                ),
                "created_at": timestamp,
                "updated_at": timestamp,
            }
        ),
        "ScheduleList": closed_object({"schedules": {"type": "array", "items": ref("Schedule")}}),
        "ScheduleCreateRequest": closed_object(
            {k: {**v, "default": defaults[k]} if k in defaults else v for k, v in fields.items()}, optional=optional
        ),
        "ScheduleUpdateRequest": {**closed_object(fields, optional=tuple(fields)), "minProperties": 1},
    }


def schedule_paths(names: Names) -> dict[str, Schema]:
    schedule_id = {"name": "schedule_id", "in": "path", "required": True, "schema": ref("ScheduleId")}
    bad_id = error("Malformed schedule id ('sch_' and 16 hex digits).")
    missing = error("No schedule with this id.")
    optional_empty = {"required": False, "content": {"application/json": {"schema": ref("EmptyRequest")}}}

    def body(name: str) -> Schema:
        return {"required": True, "content": {"application/json": {"schema": ref(name)}}}

    bad_fields = "bad JSON, unknown field, invalid cron (the message names the field), unknown time zone or collector"
    return {
        "/api/schedules": {
            "get": operation(
                "listSchedules",
                "Every schedule, by name, with its next fire times and last batch. Needs the read role.",
                {"200": json_response("Schedules.", "ScheduleList"), "500": SERVER_ERROR},
            ),
            "post": operation(
                "createSchedule",
                "Create a schedule; its first due time is the first after now. " + ADMIN,
                {
                    "201": json_response("The schedule.", "Schedule"),
                    **BAD_BODY,
                    "400": error(f"Missing field, {bad_fields}, empty collector list."),
                    "409": error("A schedule with this name exists, or there are already 1000 schedules."),
                    "500": SERVER_ERROR,
                },
                requestBody=body("ScheduleCreateRequest"),
            ),
        },
        "/api/schedules/{schedule_id}": {
            "get": operation(
                "getSchedule",
                "One schedule. Needs the read role.",
                {"200": json_response("The schedule.", "Schedule"), "400": bad_id, "404": missing, "500": SERVER_ERROR},
                parameters=[schedule_id],
            ),
            "patch": operation(
                "updateSchedule",
                "Change fields. A new cron or time zone, or a resume, counts from now; other changes apply to"
                " the pending due time. " + ADMIN,
                {
                    "200": json_response("The schedule after the change.", "Schedule"),
                    **BAD_BODY,
                    "400": error(f"Malformed id, {bad_fields}, or nothing to change."),
                    "404": missing,
                    "409": error("The name is taken, or the schedule is declared in the collectors file."),
                    "500": SERVER_ERROR,
                },
                parameters=[schedule_id],
                requestBody=body("ScheduleUpdateRequest"),
            ),
            "delete": operation(
                "deleteSchedule",
                "Delete a schedule; its batches keep naming it. " + ADMIN,
                {
                    "204": {"description": "Deleted."},
                    "400": bad_id,
                    "404": missing,
                    "409": error("The schedule is declared in the collectors file; remove it there."),
                    "500": SERVER_ERROR,
                },
                parameters=[schedule_id],
            ),
        },
        "/api/schedules/{schedule_id}/trigger": {
            "post": operation(
                "triggerSchedule",
                "Run now: a batch of the schedule's collectors that records the schedule (no due time). " + ADMIN,
                {
                    "201": json_response("The new batch.", "CreatedBatch"),
                    "400": error("Malformed schedule id, or a non-empty body."),
                    "404": missing,
                    "409": error(
                        "Overlap skip and the schedule's previous batch is still active, or it names"
                        " a collector this server does not know."
                    ),
                    "500": SERVER_ERROR,
                },
                parameters=[schedule_id],
                requestBody=optional_empty,
            )
        },
    }


PART = Part(schemas=schedule_schemas, paths=schedule_paths)
