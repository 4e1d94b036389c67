-- pgbench baseline for the load benchmark: the rows one pull_request delivery writes (the event
-- with its 28 KiB payload and headers, and its pull_request_analysis task), in one statement and
-- one commit, as the server's ingest does. The 28 KiB payload is the pgbench variable `payload`
-- (an SQL literal, `-D payload=...`, see run.sh), so every transaction sends and writes the full
-- body as the server does.
WITH e AS (
    INSERT INTO webhook_events (delivery_id, event_type, action, source, repository, installation_id,
                                payload, headers, processed, created_at, updated_at, open_tasks)
    SELECT gen_random_uuid()::text, 'pull_request', 'opened', 'github', 'Codertocat/Hello-World', NULL,
           p.payload, '[["x-github-event","pull_request"],["content-type","application/json"]]'::jsonb,
           false, now(), now(), 1
    FROM (SELECT :payload::json AS payload) p
    RETURNING id
)
INSERT INTO workflow_tasks (task_id, webhook_event_id, task_type, status, priority, repository, pr_number,
                            config, input_data, max_retries, run_at, created_at, updated_at)
SELECT gen_random_uuid(), e.id, 'pull_request_analysis', 'pending', 0, 'Codertocat/Hello-World', 2,
       '{}'::jsonb, '{"action":"opened","number":2,"draft":false,"head_ref":"changes","base_ref":"master"}'::jsonb,
       3, now(), now(), now()
FROM e;
