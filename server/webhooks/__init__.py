"""Signed webhooks on batch completion, delivered durably (issue 4).

``rules/`` holds the rules (what a receiver may be, which addresses it may have, how a body is
signed, the receivers the settings declare), in a package of its own because the settings
check them; ``outbox`` is the SQL side of deliveries; ``payload`` and ``representation`` their
JSON; ``dispatcher`` sends them; ``routes`` is the admin API; ``openapi`` its part of the
document; ``setup`` wires it into the app.
"""
