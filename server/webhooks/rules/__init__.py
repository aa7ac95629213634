"""The webhook rules, below the settings (docs/ARCHITECTURE.md, the layers): what a receiver
may be (``receivers``), which addresses a delivery may reach (``address_guard``), how a body
is signed and what a secret looks like (``signing``), and the receivers declared in
``COLLECTOR_HUB_WEBHOOKS`` (``config``), which ``server/settings.py`` checks at start."""
