-- Superseding runs inside the ingest transaction (the one writer on SQLite), once per
-- pull-request delivery, so "is any open task of this pull request at another head SHA?"
-- (`crate::supersede::SETTLED`) must not walk every open task of the pull request: the open-PR
-- index gets the head SHA as its last column, so the question is two short index ranges.
DROP INDEX workflow_tasks_open_pr_idx;
CREATE INDEX workflow_tasks_open_pr_idx ON workflow_tasks (repository, pr_number, commit_sha)
    WHERE status IN ('pending', 'retrying', 'running') AND pr_number IS NOT NULL;
