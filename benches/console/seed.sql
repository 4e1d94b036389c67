-- The console's scale data set (benches/console/run.sh): :rows events over the last 10 days (four
-- event types, 2 % with an error, 100 repositories), one task per event (5 % failed, 0.1 %
-- pending, the rest completed) and one execution per task. Bulk SQL, no application code.
INSERT INTO webhook_events (delivery_id, event_type, action, source, repository, payload,
    headers, processed, error_message, created_at, updated_at)
SELECT 'guid-' || g, (ARRAY['pull_request', 'push', 'check_suite', 'issue_comment'])[1 + g % 4],
    'opened', 'github', 'octo/repo-' || (g % 100), '{}', '[]', true,
    CASE WHEN g % 50 = 0 THEN 'boom' END, t, t
FROM generate_series(1, :rows) g,
    LATERAL (SELECT now() - g * (interval '864 seconds' / :rows * 1000) AS t) x;

INSERT INTO workflow_tasks (task_id, webhook_event_id, task_type, status, repository, pr_number,
    config, input_data, max_retries, attempts, error_message, run_at, completed_at, created_at,
    updated_at)
SELECT md5('t' || e.id)::uuid, e.id, 'pr_analysis',
    CASE WHEN e.id % 20 = 0 THEN 'failed' WHEN e.id % 1000 = 1 THEN 'pending' ELSE 'completed' END,
    e.repository, e.id % 5000, '{}', '{}', 3, 1,
    CASE WHEN e.id % 20 = 0 THEN 'said 502' END, e.created_at, e.created_at, e.created_at,
    e.created_at
FROM webhook_events e;

INSERT INTO task_executions (execution_id, task_id, attempt, worker_id, status, started_at,
    completed_at, duration_ms)
SELECT md5('x' || t.id)::uuid, t.task_id, 1, 'w', 'completed', t.created_at, t.created_at,
    t.id % 5000
FROM workflow_tasks t;
