//! Properties of the pure decision rules: file classification and the prompt.

use orchestrator_codegen::HandlerConfig;
use orchestrator_codegen::handlers::CodegenTriggerInput;
use orchestrator_codegen::handlers::build_prompt;
use orchestrator_codegen::handlers::{FileKind, TriggerReason, classify_file};
use proptest::prelude::*;

const REASONS: [TriggerReason; 7] = [
    TriggerReason::NewPrWithCodeChanges,
    TriggerReason::ReadyForReview,
    TriggerReason::SignificantCodeChanges,
    TriggerReason::TestFailure,
    TriggerReason::LintFailure,
    TriggerReason::BuildFailure,
    TriggerReason::CheckFailure,
];

proptest! {
    #[test]
    fn any_path_classifies_without_panicking(path in "\\PC{0,80}") {
        let _ = classify_file(&path, &HandlerConfig::default());
    }

    #[test]
    fn code_files_under_a_test_directory_are_tests(
        dirs in proptest::collection::vec("[a-z]{1,6}", 0..3),
        test_dir in prop::sample::select(vec!["test", "tests", "spec", "__tests__"]),
        name in "[a-z]{1,8}",
        ext in prop::sample::select(vec!["rs", "py", "go", "ts", "java"]),
    ) {
        let path = format!("{}/{test_dir}/{name}.{ext}", dirs.join("/"));
        prop_assert_eq!(classify_file(&path, &HandlerConfig::default()), FileKind::Test);
    }

    #[test]
    fn plain_source_files_are_code(
        dir in prop::sample::select(vec!["src", "lib", "app/models", "pkg/server"]),
        name in "[a-z]{1,8}",
        ext in prop::sample::select(vec!["rs", "py", "go", "ts", "java", "rb", "c"]),
    ) {
        prop_assume!(!name.ends_with("test") || name.len() == 4);
        let path = format!("{dir}/{name}.{ext}");
        prop_assert_eq!(classify_file(&path, &HandlerConfig::default()), FileKind::Code);
    }

    #[test]
    fn the_prompt_names_every_reason_and_check(
        picked in proptest::sample::subsequence(REASONS.to_vec(), 1..=7),
        check_name in "[a-z][a-z -]{0,20}",
        number in 1i64..100_000,
    ) {
        let input: CodegenTriggerInput = serde_json::from_value(serde_json::json!({
            "source_task_type": "check_suite_failure_analysis",
            "reasons": picked,
            "failing_checks": [{"id": 1, "name": check_name, "conclusion": "failure", "kind": "other"}],
        })).unwrap();
        let prompt = build_prompt("octo/repo", Some(number), &input);
        let number_line = format!("#{number}");
        prop_assert!(prompt.contains("octo/repo"));
        prop_assert!(prompt.contains(&number_line));
        prop_assert!(prompt.contains(&check_name));
        for reason in picked {
            prop_assert!(prompt.contains(reason.as_str()));
        }
    }
}
