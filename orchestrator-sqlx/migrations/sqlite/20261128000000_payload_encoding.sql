-- How `payload` holds the delivery body: NULL = the JSON text as received (every row written
-- before this column existed); 'zstd' = a BLOB holding one zstd frame of the bytes as received.
-- The store decompresses on read; see orchestrator-sqlx/src/sqlite/payload.rs.
ALTER TABLE webhook_events ADD COLUMN payload_encoding TEXT;
