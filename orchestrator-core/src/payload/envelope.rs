//! The top level of each payload as serde reads it: the common fields (leniently) plus the
//! event's own fields. One struct per event, so one pass over the bytes fills everything and
//! skips the rest without building a `serde_json::Value`.

use serde::Deserialize;

use super::events::{
    CheckRun, CheckSuite, Commit, InstallationInfo, PullRequest, Pusher, RepositoryRef,
};
use super::lenient::{LenientInt, LenientObject, LenientRepository, LenientStr};

/// Fields every event may carry; read leniently so they never refuse an event.
pub(super) struct Common {
    pub(super) action: Option<String>,
    pub(super) repository: Option<super::Repository>,
    pub(super) installation_id: Option<i64>,
    pub(super) sender: Option<String>,
}

/// Declares an envelope struct: the four common fields plus `$field`s, and a `common()` getter.
macro_rules! envelope {
    ($(#[$doc:meta])* $name:ident { $($(#[$m:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Deserialize)]
        pub(super) struct $name {
            #[serde(default)]
            action: LenientStr,
            #[serde(default)]
            repository: LenientRepository,
            #[serde(default)]
            installation: LenientObject,
            #[serde(default)]
            sender: LenientObject,
            $($(#[$m])* pub(super) $field: $ty,)*
        }

        impl $name {
            /// Moves the common fields out.
            pub(super) fn common(&mut self) -> Common {
                Common {
                    action: self.action.0.take(),
                    repository: self.repository.0.take(),
                    installation_id: self.installation.id,
                    sender: self.sender.login.take(),
                }
            }
        }
    };
}

envelope!(
    /// `pull_request`.
    PullRequestEnvelope { pull_request: PullRequest }
);

envelope!(
    /// `check_run` (and the `requested_action` of a button press).
    CheckRunEnvelope {
        check_run: CheckRun,
        #[serde(default)]
        requested_action: Option<RequestedAction>,
    }
);

/// `requested_action` of a `check_run.requested_action` delivery.
#[derive(Deserialize)]
pub(super) struct RequestedAction {
    #[serde(default)]
    pub(super) identifier: Option<String>,
}

envelope!(
    /// `check_suite`.
    CheckSuiteEnvelope { check_suite: CheckSuite }
);

envelope!(
    /// `push`: the envelope holds the push fields themselves.
    PushEnvelope {
        #[serde(rename = "ref")]
        git_ref: String,
        #[serde(default)]
        before: Option<String>,
        #[serde(default)]
        after: Option<String>,
        #[serde(default)]
        created: Option<bool>,
        #[serde(default)]
        deleted: Option<bool>,
        #[serde(default)]
        forced: Option<bool>,
        #[serde(default)]
        compare: Option<String>,
        #[serde(default)]
        pusher: Option<Pusher>,
        #[serde(default)]
        commits: Option<Vec<Commit>>,
    }
);

envelope!(
    /// Any event outside the typed set: only the common fields.
    OtherEnvelope {}
);

envelope!(
    /// `ping`.
    PingEnvelope {
        #[serde(default)]
        zen: LenientStr,
        #[serde(default)]
        hook_id: LenientInt,
    }
);

/// `installation`: its `installation` object is read in full here (account, id), so this
/// envelope does not use the common `installation` reader.
#[derive(Deserialize)]
pub(super) struct InstallationEnvelope {
    #[serde(default)]
    pub(super) action: LenientStr,
    #[serde(default)]
    pub(super) sender: LenientObject,
    #[serde(default)]
    pub(super) installation: Option<InstallationInfo>,
    #[serde(default)]
    pub(super) repositories: Option<Vec<RepositoryRef>>,
}

envelope!(
    /// `installation_repositories`.
    InstallationRepositoriesEnvelope {
        #[serde(default)]
        repository_selection: Option<String>,
        #[serde(default)]
        repositories_added: Option<Vec<RepositoryRef>>,
        #[serde(default)]
        repositories_removed: Option<Vec<RepositoryRef>>,
    }
);
