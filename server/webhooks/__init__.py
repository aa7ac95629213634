"""Signed webhooks on batch completion, delivered durably (issue 4).

``receivers`` and ``signing`` hold the rules (what a receiver may be, how a body is signed);
``outbox`` is the SQL side of deliveries; ``dispatcher`` sends them; ``address_guard`` keeps
requests away from private networks; ``routes`` is the admin API; ``setup`` wires it into the
app. This file imports nothing so that ``server.settings`` can use ``config`` without cycles.
"""
