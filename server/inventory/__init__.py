"""The device inventory: what the vendor collectors found, read through /api/inventory/
(routes.py, store.py)."""
