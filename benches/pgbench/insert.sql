-- One webhook delivery row per transaction, like ingest: a unique delivery id and the same
-- ~28 KiB JSON payload (loaded once into pgbench_payload by run.sh), validated as json.
INSERT INTO pgbench_scratch (delivery_id, event_type, action, source, payload, headers, processed, created_at, updated_at)
SELECT gen_random_uuid()::text, 'pull_request', 'closed', 'github', p.payload::json,
       '[["x-github-event","pull_request"]]'::jsonb, false, now(), now()
FROM pgbench_payload p;
