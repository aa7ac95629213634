-- API keys (issue 5). Only a SHA-256 of each key is stored: keys are 256-bit random strings,
-- so a fast hash is enough (no password to brute-force) and a stolen table grants nothing.
-- key_id is the public part of the key (chk_<key_id>_<secret>): it finds the row, then the
-- hashes are compared in constant time in Python.
CREATE TABLE api_keys (
    key_id      text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{12}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role        text NOT NULL CHECK (role IN ('read', 'trigger', 'admin')),
    key_hash    text NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
-- A name is how people refer to a key; two live keys with one name would be ambiguous.
CREATE UNIQUE INDEX api_keys_live_name_idx ON api_keys (name) WHERE revoked_at IS NULL;
