//! The JSON shapes GitHub answers with, as far as the client reads them, and their conversion
//! into the core's types. Unknown fields are ignored, so GitHub may add fields freely.

use orchestrator_core::github::CheckRun;
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct WireOutput {
    pub(crate) title: Option<String>,
    pub(crate) summary: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct WireCheckRun {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) conclusion: Option<String>,
    pub(crate) html_url: Option<String>,
    pub(crate) head_sha: Option<String>,
    pub(crate) output: Option<WireOutput>,
}

impl From<WireCheckRun> for CheckRun {
    fn from(w: WireCheckRun) -> Self {
        let (output_title, output_summary) =
            w.output.map(|o| (o.title, o.summary)).unwrap_or_default();
        CheckRun {
            id: w.id,
            name: w.name,
            status: w.status,
            conclusion: w.conclusion,
            html_url: w.html_url,
            output_title,
            output_summary,
            head_sha: w.head_sha,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct WireSuiteRuns {
    pub(crate) check_runs: Vec<WireCheckRun>,
}

#[derive(Deserialize)]
pub(crate) struct WireRateLimit {
    pub(crate) resources: WireResources,
}

#[derive(Deserialize)]
pub(crate) struct WireResources {
    pub(crate) core: WireQuota,
}

#[derive(Deserialize)]
pub(crate) struct WireQuota {
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    pub(crate) reset: i64,
}
