//! Which GitHub webhook a delivery log belongs to: the GitHub App's own hook, a repository hook
//! or an organization hook, and how `GITHUB_RECOVERY_HOOKS` / the admin route name them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::github::RepoRef;

/// One webhook whose delivery log can be read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum HookRef {
    /// The GitHub App's hook: `GET /app/hook/deliveries`, App JWT.
    App,
    /// A repository hook: `GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries`, token auth.
    Repo {
        /// `owner/name`.
        owner: String,
        /// The repository name.
        name: String,
        /// The hook's id (`X-GitHub-Hook-ID`).
        hook_id: i64,
    },
    /// An organization hook: `GET /orgs/{org}/hooks/{hook_id}/deliveries`, token auth.
    Org {
        /// The organization login.
        org: String,
        /// The hook's id.
        hook_id: i64,
    },
}

impl HookRef {
    /// The hook id, when the hook has one of its own (the App hook has none in its path).
    pub fn hook_id(&self) -> Option<i64> {
        match self {
            HookRef::App => None,
            HookRef::Repo { hook_id, .. } | HookRef::Org { hook_id, .. } => Some(*hook_id),
        }
    }

    /// The URL path segments of the hook's `deliveries` listing.
    pub fn deliveries_path(&self) -> Vec<String> {
        match self {
            HookRef::App => vec!["app".into(), "hook".into(), "deliveries".into()],
            HookRef::Repo {
                owner,
                name,
                hook_id,
            } => vec![
                "repos".into(),
                owner.clone(),
                name.clone(),
                "hooks".into(),
                hook_id.to_string(),
                "deliveries".into(),
            ],
            HookRef::Org { org, hook_id } => vec![
                "orgs".into(),
                org.clone(),
                "hooks".into(),
                hook_id.to_string(),
                "deliveries".into(),
            ],
        }
    }
}

/// Why a hook name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hook {0:?}: expected `app`, `repo:OWNER/NAME:HOOK_ID` or `org:ORG:HOOK_ID`")]
pub struct HookParseError(pub String);

fn valid_login(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && !s.bytes().all(|b| b == b'.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn hook_id(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|id| *id > 0)
}

impl FromStr for HookRef {
    type Err = HookParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || HookParseError(s.to_owned());
        let s = s.trim();
        if s == "app" {
            return Ok(HookRef::App);
        }
        let (kind, rest) = s.split_once(':').ok_or_else(err)?;
        let (target, id) = rest.rsplit_once(':').ok_or_else(err)?;
        let hook_id = hook_id(id).ok_or_else(err)?;
        match kind {
            "repo" => {
                let repo = RepoRef::parse(target).ok_or_else(err)?;
                if !valid_login(&repo.owner) || !valid_login(&repo.name) {
                    return Err(err());
                }
                Ok(HookRef::Repo {
                    owner: repo.owner,
                    name: repo.name,
                    hook_id,
                })
            }
            "org" if valid_login(target) => Ok(HookRef::Org {
                org: target.to_owned(),
                hook_id,
            }),
            _ => Err(err()),
        }
    }
}

impl fmt::Display for HookRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookRef::App => f.write_str("app"),
            HookRef::Repo {
                owner,
                name,
                hook_id,
            } => write!(f, "repo:{owner}/{name}:{hook_id}"),
            HookRef::Org { org, hook_id } => write!(f, "org:{org}:{hook_id}"),
        }
    }
}

impl TryFrom<String> for HookRef {
    type Error = HookParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<HookRef> for String {
    fn from(h: HookRef) -> Self {
        h.to_string()
    }
}

/// Which hooks a run covers: `GITHUB_RECOVERY_HOOKS`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookSelection {
    /// Hooks named explicitly.
    pub hooks: Vec<HookRef>,
    /// `auto`: also every hook learned from stored deliveries' `X-GitHub-Hook-ID` headers.
    pub auto: bool,
}

impl FromStr for HookSelection {
    type Err = HookParseError;

    /// A comma list of hook names and `auto`; empty entries are skipped, duplicates removed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut selection = HookSelection::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "auto" {
                selection.auto = true;
            } else {
                let hook: HookRef = part.parse()?;
                if !selection.hooks.contains(&hook) {
                    selection.hooks.push(hook);
                }
            }
        }
        Ok(selection)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hook_names_round_trip() {
        for name in ["app", "repo:octo/repo:42", "org:octo-org:7"] {
            let hook: HookRef = name.parse().unwrap();
            assert_eq!(hook.to_string(), name);
        }
        assert_eq!(
            "repo:octo/repo:42"
                .parse::<HookRef>()
                .unwrap()
                .deliveries_path(),
            ["repos", "octo", "repo", "hooks", "42", "deliveries"]
        );
    }

    #[test]
    fn bad_hook_names_are_refused() {
        for bad in [
            "",
            "apps",
            "repo:octo:1",
            "repo:octo/repo",
            "repo:octo/repo:x",
            "org::1",
            "org:a/b:1",
            "repo:octo/repo:0",
            "repo:../x:1",
            "user:me:1",
        ] {
            assert!(bad.parse::<HookRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_selection_reads_auto_and_hooks() {
        let s: HookSelection = "app, auto,org:o:3,app".parse().unwrap();
        assert!(s.auto);
        assert_eq!(s.hooks, vec![HookRef::App, "org:o:3".parse().unwrap()]);
        assert!("app,nope".parse::<HookSelection>().is_err());
    }
}
