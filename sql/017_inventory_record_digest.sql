-- What inventory_devices.record_hash is a hash of, since the vendor collectors skip the
-- normalization of unchanged devices (collectors/inventory_records.py, record_digest): the
-- device's JSON text as the vendor sent it, what else it is normalized with (NinjaOne: its
-- organization's name) and the source of the code that normalizes and writes it, so that a new
-- version of that code writes every record again. Records written by other callers of the
-- writer keep the hash of their normalized JSON (sql/012_data_growth.sql). NULL still means
-- "write the record in full next time". Nothing changes in the table: this is its description.
COMMENT ON COLUMN inventory_devices.record_hash IS
    'BLAKE2b-128 of the record as last written: for a vendor collector, of the vendor''s JSON text, its'
    ' normalization context and the normalizing code (collectors/inventory_records.py, record_digest);'
    ' NULL: write the record in full next time';
