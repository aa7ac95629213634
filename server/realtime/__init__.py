"""Live push (issue 3): PostgreSQL LISTEN/NOTIFY -> one hub per process -> SSE, WebSocket and
long-poll clients. See docs/LIVE_PUSH.md for the protocols.

    listener.py       the one LISTEN connection; fences; reconnect with backoff
    notify.py         what a NOTIFY says; newest seq per batch; job wake-ups (runner, webhooks)
    cache.py          the hot-state cache: last snapshot per batch, LRU
    tracker.py        keeping the cache exact: re-reads, fences, resync after a reconnect
    state.py          reading a batch and its jobs from the tables as events
    events.py         events, encoded once
    hub.py            subscriptions and the fanout of new states to them
    subscriptions.py  who follows what; open connections
    subscriber.py     one connection's bounded, conflating outbox and its direct-write path
    sse.py ws.py polling.py   the transports
    setup.py          the hub's lifetime in the app, shutdown, routes
"""
