"""Job logs: what a collector printed, kept bounded and clean (ARCHITECTURE rule 13). The
modules, by what they hold:

writer.py   the runner's side: redacted, cut, capped, written in batches
store.py    the stored lines
routes.py   ``GET /api/collectors/runs/job/{id}/logs``
tail.py     live: one read per new batch of lines, shared by every follower
stream.py   ``GET .../logs/events``: the log as Server-Sent Events
"""
