//! A genuine delivery whose typed view failed, as the stores keep it: raw bytes, the parse
//! error, no tasks, unprocessed (so retention keeps it), listed with its error, a duplicate as
//! usual, and reopened by a reprocess that parses it -- through single and batch ingest.

use orchestrator_core::event::NewEvent;
use orchestrator_core::store::{
    BatchStore, EventFilter, IngestOutcome, Page, ReprocessOutcome, RetentionPolicy, TaskStore,
};

use crate::support::{at, event, prepared, task};

const ERROR: &str = "pull_request payload is missing required fields: invalid type: null";

fn unparsed(delivery: &str, secs: i64) -> NewEvent {
    NewEvent {
        parse_error: Some(ERROR.to_owned()),
        ..event(delivery, "pull_request", at(secs))
    }
}

fn accepted(outcome: &IngestOutcome) -> i64 {
    match outcome {
        IngestOutcome::Accepted {
            event_id, task_ids, ..
        } => {
            assert!(task_ids.is_empty());
            *event_id
        }
        other => panic!("{other:?}"),
    }
}

pub async fn an_unparsed_delivery_is_kept_until_reprocessed<S: BatchStore + TaskStore>(store: &S) {
    let single = accepted(&store.ingest(unparsed("u-1", 0), vec![]).await.unwrap());
    let batch = store
        .ingest_batch(prepared(
            store,
            vec![
                (unparsed("u-2", 1), vec![]),
                (event("p-1", "push", at(1)), vec![]),
            ],
        ))
        .await;
    let batched = accepted(batch[0].as_ref().unwrap());
    for id in [single, batched] {
        let stored = store.get_event(id).await.unwrap().unwrap();
        assert_eq!(stored.parse_error.as_deref(), Some(ERROR));
        assert_eq!(
            stored.error_message,
            Some(NewEvent::unparsed_message(ERROR))
        );
        assert!(!stored.processed, "unparsed is not processed");
        assert_eq!(stored.processing_completed_at, None);
        assert_eq!(stored.payload, event("x", "pull_request", at(0)).payload);
    }
    let parsed = store.get_event(single + 2).await.unwrap();
    assert!(parsed.is_some_and(|e| e.processed && e.parse_error.is_none()));
    // A redelivery is a duplicate as usual.
    assert_eq!(
        store.ingest(unparsed("u-1", 5), vec![]).await.unwrap(),
        IngestOutcome::Duplicate { event_id: single }
    );
    // Listed as unprocessed with its error; never removed by retention while unprocessed.
    let open = EventFilter {
        processed: Some(false),
        ..EventFilter::default()
    };
    let listed = store.list_events(&open, Page::default()).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|e| e.error_message.is_some()));
    let removed = store
        .cleanup(&RetentionPolicy::default(), at(365 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(removed.events_deleted, 1, "only the parsed push goes");
    // A reprocess that parsed it clears the parse error and adds the routed tasks.
    let fresh = task("pull_request_analysis", 0, at(9));
    let outcome = store
        .reprocess_event(single, vec![fresh.clone()], at(9))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ReprocessOutcome::Reprocessed {
            event_id: single,
            task_ids: vec![fresh.task_id]
        }
    );
    let stored = store.get_event(single).await.unwrap().unwrap();
    assert_eq!((stored.parse_error, stored.error_message), (None, None));
    assert_eq!((stored.processed, stored.retry_count), (false, 1));
}
