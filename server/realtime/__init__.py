"""Live push (issue 3): PostgreSQL LISTEN/NOTIFY -> one hub per process -> SSE, WebSocket and
long-poll clients. See docs/LIVE_PUSH.md for the protocols.

    listener.py       the one LISTEN connection; fences; reconnect with backoff
    notify.py         what a NOTIFY says; newest seq per batch; job wake-ups (runner, webhooks)
    cache.py          the hot-state cache: last snapshot per batch, LRU
    tracker.py        keeping the cache exact: re-reads, fences, resync after a reconnect
    sources.py        what the hub reads batches and log lines through (runs and job logs fill it in)
    events.py         events, encoded once
    hub.py            subscriptions and the fanout of new states to them
    subscriptions.py  who follows what; open connections
    subscriber.py     one connection's bounded, conflating outbox and its direct-write path
    sse.py ws.py polling.py   the transports
    log_tail.py       job logs, live: one read per new batch of lines, shared by every follower
    setup.py          the hub's lifetime in the app, shutdown, routes
    keys.py openapi.py   the hub's application key; the live paths of the OpenAPI document
"""
