"""Job logs: what a collector printed, kept bounded and clean (ARCHITECTURE rule 13). The
modules, by what they hold:

    writer.py          the runner's side: redacted, cut, capped, written in batches
    store.py           the stored lines
    representation.py  a line's JSON
    routes.py          ``GET /api/collectors/runs/job/{id}/logs``
    stream.py          ``GET .../logs/events``: the log as Server-Sent Events
    live.py            lines for live push (its LogSource; the tail is server/realtime/log_tail.py)
    openapi.py         their part of the OpenAPI document
"""
