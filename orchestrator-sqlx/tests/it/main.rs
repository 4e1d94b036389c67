//! Integration tests of the SQL stores against real databases: every behaviour runs on
//! PostgreSQL (a fresh schema per test, `TEST_DATABASE_URL`) and on SQLite (a temporary file).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod agent_runs;
mod browse;
mod cancel;
mod concurrency;
mod operations;
mod pause;
mod plans;
mod recovery;
mod reports;
mod resume;
mod run_end;
mod sqlite_payloads;
mod sqlite_writer;
mod suite;
mod support;
mod unparsed;

/// Instantiates each behaviour once per database.
macro_rules! on_both {
    ($($module:ident :: $name:ident ($conns:expr)),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = crate::support::TestDb::postgres($conns).await;
                    crate::$module::$name(&db.store).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = crate::support::TestDb::sqlite($conns).await;
                    crate::$module::$name(&db.store).await;
                }
            )*
        }
    };
}

on_both! {
    suite::ingest_commits_event_and_tasks(2),
    suite::event_without_tasks_is_processed(2),
    suite::duplicate_delivery_changes_nothing(2),
    suite::failed_task_insert_leaves_no_event(2),
    suite::lists_filter_and_page(2),
    suite::claim_takes_due_tasks_in_order(2),
    suite::completion_settles_event_after_followups(2),
    suite::retry_then_failure(2),
    suite::defer_and_release_use_no_attempt(2),
    suite::crashed_worker_task_is_claimed_again(2),
    suite::expired_lease_without_retries_fails(2),
    suite::manual_retry_and_reprocess(2),
    suite::external_run_recorded_on_task_and_parent(2),
    suite::start_attempt_takes_a_task_once(2),
    suite::stats_and_stale(2),
    suite::cleanup_keeps_what_can_still_run(2),
    suite::ping_and_backend(2),
    suite::batch_ingest_keeps_each_delivery_atomic(2),
    concurrency::each_task_runs_exactly_once(9),
    concurrency::racing_duplicates_store_one_set(8),
    agent_runs::ledger_admits_resumes_and_limits_each_head(2),
    agent_runs::unresolved_intents_are_marked_and_released_by_a_manual_retry(2),
    unparsed::an_unparsed_delivery_is_kept_until_reprocessed(2),
    cancel::cancel_stops_pending_and_running_tasks_and_refuses_terminal_ones(2),
    cancel::supersede_cancels_stale_work_keeps_runs_and_ignores_late_heads(2),
    cancel::pr_updates_apply_in_the_ingest_commit_in_order_and_never_for_a_duplicate(2),
    cancel::settled_batches_racing_a_new_head_leave_no_stale_work(9),
    run_end::an_ended_run_ends_its_task_and_a_retry_releases_the_run(2),
    pause::paused_tasks_wait_and_a_resume_hands_them_back(2),
    browse::pages_by_cursor_stay_stable_while_rows_arrive(2),
    reports::changed_tasks_follow_the_cursor(2),
    reports::one_reporter_holds_the_lease_and_records_are_kept(2),
    reports::cleanup_removes_the_records_of_removed_tasks(2),
    recovery::runs_round_trip_with_cursor_and_counters(2),
    recovery::known_deliveries_answers_a_whole_page_at_once(2),
    recovery::hooks_are_learned_from_stored_headers(2),
    recovery::one_runner_holds_the_lease(3),
}

/// Recovery end to end (the reconciler over each store), and the contracts on the in-memory
/// reference store.
mod recovery_runs {
    use std::sync::Arc;

    use orchestrator_core::memory::MemoryStore;

    use crate::recovery;
    use crate::support::TestDb;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_reconciler_recovers_missing_deliveries_on_postgres() {
        let db = TestDb::postgres(4).await;
        recovery::the_reconciler_recovers_missing_deliveries_with_their_tasks(&Arc::new(
            db.store.clone(),
        ))
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_reconciler_recovers_missing_deliveries_on_sqlite() {
        let db = TestDb::sqlite(4).await;
        recovery::the_reconciler_recovers_missing_deliveries_with_their_tasks(&Arc::new(
            db.store.clone(),
        ))
        .await;
    }

    #[tokio::test]
    async fn the_reconciler_recovers_missing_deliveries_in_memory() {
        recovery::the_reconciler_recovers_missing_deliveries_with_their_tasks(&Arc::new(
            MemoryStore::new(),
        ))
        .await;
    }

    #[tokio::test]
    async fn recovery_contracts_in_memory() {
        recovery::runs_round_trip_with_cursor_and_counters(&MemoryStore::new()).await;
        recovery::known_deliveries_answers_a_whole_page_at_once(&MemoryStore::new()).await;
        recovery::hooks_are_learned_from_stored_headers(&MemoryStore::new()).await;
        recovery::one_runner_holds_the_lease(&MemoryStore::new()).await;
    }
}

/// Recovery runs that stop and go on (lease renewal, resume from the cursor after a limit or a
/// crash, redelivery intents) on PostgreSQL, SQLite and the in-memory reference store.
mod recovery_resume {
    use orchestrator_core::memory::MemoryStore;

    use crate::resume;
    use crate::support::TestDb;

    macro_rules! everywhere {
        ($($name:ident),* $(,)?) => {
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let db = crate::support::TestDb::postgres(4).await;
                        crate::resume::$name(&std::sync::Arc::new(db.store.clone())).await;
                    }
                )*
            }
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let db = crate::support::TestDb::sqlite(4).await;
                        crate::resume::$name(&std::sync::Arc::new(db.store.clone())).await;
                    }
                )*
            }
            mod memory {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let store = std::sync::Arc::new(orchestrator_core::memory::MemoryStore::new());
                        crate::resume::$name(&store).await;
                    }
                )*
            }
        };
    }

    everywhere! {
        a_long_run_renews_its_lease_so_no_second_runner_gets_in,
        a_rate_limited_run_resumes_from_its_cursor_in_a_new_runner,
        a_crashed_run_resumes_from_its_saved_cursor,
        a_resumed_redeliver_run_does_not_ask_github_twice,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_expiring_lease_is_taken_over_once_its_holder_stops_renewing_on_sqlite() {
        let db = TestDb::sqlite(3).await;
        resume::an_expiring_lease_is_taken_over_once_its_holder_stops_renewing(&db.store).await;
    }

    #[tokio::test]
    async fn an_expiring_lease_is_taken_over_once_its_holder_stops_renewing_in_memory() {
        resume::an_expiring_lease_is_taken_over_once_its_holder_stops_renewing(&MemoryStore::new())
            .await;
    }
}

/// Bulk operations on PostgreSQL, SQLite and the in-memory reference store.
mod bulk {
    use std::sync::Arc;

    use orchestrator_core::memory::MemoryStore;

    use crate::support::TestDb;

    macro_rules! everywhere {
        ($($name:ident ($conns:expr)),* $(,)?) => {$(
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    let db = TestDb::postgres($conns).await;
                    crate::operations::$name(Arc::new(db.store.clone())).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    let db = TestDb::sqlite($conns).await;
                    crate::operations::$name(Arc::new(db.store.clone())).await;
                }

                #[tokio::test]
                async fn memory() {
                    crate::operations::$name(Arc::new(MemoryStore::new())).await;
                }
            }
        )*};
    }

    everywhere! {
        a_retry_operation_retries_the_matching_tasks_in_batches(2),
        racing_operations_retry_each_task_once(6),
        reprocess_by_filter_skips_events_with_open_tasks(2),
        a_cancelled_operation_stops_and_a_dead_runner_is_replaced(2),
    }

    /// PostgreSQL only: the end state of issue 13's 100,000-task benchmark.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_of_100000_tasks_requeues_each_once_on_postgres() {
        let db = TestDb::postgres(2).await;
        let orchestrator_sqlx::SqlStore::Postgres(pg) = &db.store else {
            unreachable!("a PostgreSQL test database")
        };
        crate::operations::a_retry_of_100000_tasks_requeues_each_once(pg).await;
    }
}

/// The ledger's racing admissions, on both databases and the in-memory reference store; the
/// rest of the issue-11 contracts on the in-memory store (the same test bodies as above).
mod ledger {
    use std::sync::Arc;

    use orchestrator_core::memory::MemoryStore;

    use crate::agent_runs;
    use crate::support::TestDb;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_admissions_of_one_head_admit_one_on_postgres() {
        let db = TestDb::postgres(9).await;
        agent_runs::racing_admissions_of_one_head_admit_one(&Arc::new(db.store.clone())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_admissions_of_one_head_admit_one_on_sqlite() {
        let db = TestDb::sqlite(4).await;
        agent_runs::racing_admissions_of_one_head_admit_one(&Arc::new(db.store.clone())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_admissions_of_one_head_admit_one_in_memory() {
        agent_runs::racing_admissions_of_one_head_admit_one(&Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn supersede_cancels_stale_work_keeps_runs_and_ignores_late_heads_in_memory() {
        crate::cancel::supersede_cancels_stale_work_keeps_runs_and_ignores_late_heads(
            &MemoryStore::new(),
        )
        .await;
    }

    #[tokio::test]
    async fn pr_updates_apply_in_the_ingest_commit_in_order_and_never_for_a_duplicate_in_memory() {
        crate::cancel::pr_updates_apply_in_the_ingest_commit_in_order_and_never_for_a_duplicate(
            &MemoryStore::new(),
        )
        .await;
    }

    #[tokio::test]
    async fn cancel_stops_pending_and_running_tasks_and_refuses_terminal_ones_in_memory() {
        crate::cancel::cancel_stops_pending_and_running_tasks_and_refuses_terminal_ones(
            &MemoryStore::new(),
        )
        .await;
    }

    #[tokio::test]
    async fn changed_tasks_follow_the_cursor_in_memory() {
        crate::reports::changed_tasks_follow_the_cursor(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn one_reporter_holds_the_lease_and_records_are_kept_in_memory() {
        crate::reports::one_reporter_holds_the_lease_and_records_are_kept(&MemoryStore::new())
            .await;
    }

    #[tokio::test]
    async fn cleanup_removes_the_records_of_removed_tasks_in_memory() {
        crate::reports::cleanup_removes_the_records_of_removed_tasks(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn ledger_admits_resumes_and_limits_each_head_in_memory() {
        agent_runs::ledger_admits_resumes_and_limits_each_head(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn pages_by_cursor_stay_stable_while_rows_arrive_in_memory() {
        crate::browse::pages_by_cursor_stay_stable_while_rows_arrive(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn an_unparsed_delivery_is_kept_until_reprocessed_in_memory() {
        crate::unparsed::an_unparsed_delivery_is_kept_until_reprocessed(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn paused_tasks_wait_and_a_resume_hands_them_back_in_memory() {
        crate::pause::paused_tasks_wait_and_a_resume_hands_them_back(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn an_ended_run_ends_its_task_and_a_retry_releases_the_run_in_memory() {
        crate::run_end::an_ended_run_ends_its_task_and_a_retry_releases_the_run(
            &MemoryStore::new(),
        )
        .await;
    }

    #[tokio::test]
    async fn unresolved_intents_are_marked_and_released_by_a_manual_retry_in_memory() {
        agent_runs::unresolved_intents_are_marked_and_released_by_a_manual_retry(
            &MemoryStore::new(),
        )
        .await;
    }
}
