"""Runs: batches and their jobs, from the trigger to the history (docs/ARCHITECTURE.md). The
modules, by what they hold:

    store.py            every read and write of batches and jobs (rows out, never JSON)
    queue.py            claiming jobs; the watchdog's queries
    history.py          history and batch listings with keyset cursors
    rerun.py            a re-run: a new batch naming the one it re-runs
    stats.py runners.py statistics; runner heartbeats and unclaimable jobs
    representation.py   batches and jobs as the contract's JSON
    routes.py           trigger, read (from the live-push cache), cancel, report progress
    history_routes.py rerun_routes.py stats_routes.py collector_filter.py   the other routes
    live.py             batches as events for live push (its BatchSource)
    openapi.py openapi_operations.py   their part of the OpenAPI document
"""
