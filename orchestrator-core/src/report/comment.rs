//! The single pull-request comment (`REPORT_PR_COMMENT=true`): one comment per pull request,
//! created on the first report and edited in place after, never a new comment per push. It
//! shows the latest report of the pull request (the same title, state and run link as the
//! check).

use super::view::{ReportView, short_sha};

/// A marker that names the comment as ours (invisible in the rendered Markdown).
pub(crate) const MARKER: &str = "<!-- webhook-orchestrator:report -->";

/// The comment's Markdown for the latest `view` of its pull request.
pub(crate) fn body(view: &ReportView) -> String {
    format!(
        "{MARKER}\n### {name}\n\nLatest for commit `{sha}`:\n\n| check | commit | state | \
         details |\n|---|---|---|---|\n{line}\n\n<sub>This comment is updated in place by \
         the orchestrator.</sub>\n",
        name = view.name.replace(['<', '>', '`', '\n'], ""),
        sha = short_sha(&view.head_sha),
        line = view.comment_line(),
    )
}
