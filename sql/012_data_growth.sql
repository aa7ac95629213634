-- Data growth: what lets the inventory writes stay fast as accounts grow.
--
-- inventory_devices.record_hash: a hash of the device record as the collector last wrote it
-- (collectors/inventory_store.py: the normalized record's JSON, BLAKE2b, 16 bytes). A run that
-- meets the same record again only moves the device's last_seen_* columns; it does not send,
-- parse or rewrite the record. NULL means "write the record in full next time": rows written
-- before this migration, and rows whose columns were changed by anything but a page write
-- (the hardware-details update clears it when it changes a row).
-- inventory_devices.record_written_at: when the record's columns were last written in full
-- (NULL before this migration). last_seen_at still moves on every run that sees the device.
-- Both are additive: every existing column keeps its meaning.
ALTER TABLE inventory_devices
    ADD COLUMN record_hash bytea,
    ADD COLUMN record_written_at timestamptz;
