//! [`Reader`]: reads variables through the lookup function and collects every problem, one per
//! variable, so that an operator sees them all at once.

use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;

use super::{ConfigError, ConfigProblem, VARIABLES};
use orchestrator_core::secret::Secret;

/// The longest duration any variable may give: 100 years.
const MAX_SECONDS: u64 = 100 * 365 * 24 * 3600;

/// Reads variables and collects problems.
pub(super) struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<ConfigProblem>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            problems: Vec::new(),
        }
    }

    /// `value` when nothing was wrong; else every problem, in the order of [`VARIABLES`] (a
    /// variable missing from it comes last).
    pub(super) fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            return Ok(value);
        }
        let mut problems = self.problems;
        let rank = |p: &ConfigProblem| {
            VARIABLES
                .iter()
                .position(|v| *v == p.variable)
                .unwrap_or(VARIABLES.len())
        };
        problems.sort_by_key(rank);
        Err(ConfigError { problems })
    }

    /// A set, non-blank value (surrounding whitespace removed).
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A comma-separated list (items trimmed, empty ones dropped); `None` when unset.
    pub(super) fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    /// A set, non-blank secret.
    pub(super) fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(Secret::new)
    }

    pub(super) fn problem(&mut self, variable: &'static str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            variable,
            message: message.into(),
        });
    }

    pub(super) fn parse<T: FromStr>(&mut self, name: &'static str, default: T, what: &str) -> T {
        match self.get(name) {
            None => default,
            Some(v) => match v.parse() {
                Ok(t) => t,
                Err(_) => {
                    self.problem(name, format!("{v:?} is not {what}"));
                    default
                }
            },
        }
    }

    pub(super) fn bool(&mut self, name: &'static str, default: bool) -> bool {
        match self.get(name).map(|v| v.to_ascii_lowercase()) {
            None => default,
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => true,
            Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => false,
            Some(v) => {
                self.problem(name, format!("{v:?} is not a boolean (true/false)"));
                default
            }
        }
    }

    /// One of `choices` (compared case-insensitively), each with its value; `default` when
    /// unset; a problem naming the choices otherwise.
    pub(super) fn choice<T: Copy>(
        &mut self,
        name: &'static str,
        default: T,
        choices: &[(&str, T)],
    ) -> T {
        let Some(value) = self.get(name).map(|v| v.to_ascii_lowercase()) else {
            return default;
        };
        if let Some((_, t)) = choices.iter().find(|(c, _)| *c == value) {
            return *t;
        }
        let names: Vec<&str> = choices.iter().map(|(c, _)| *c).collect();
        self.problem(
            name,
            format!("{value:?} is neither {}", names.join(" nor ")),
        );
        default
    }

    /// A duration in whole `unit`-second steps, at most [`MAX_SECONDS`] (larger values would
    /// overflow timers and date arithmetic later and panic at run time).
    pub(super) fn duration(
        &mut self,
        name: &'static str,
        default: Duration,
        unit: u64,
        what: &str,
    ) -> Duration {
        let default_units = default.as_secs() / unit.max(1);
        let value: u64 = self.parse(name, default_units, what);
        match value.checked_mul(unit).filter(|s| *s <= MAX_SECONDS) {
            Some(secs) => Duration::from_secs(secs),
            None => {
                self.problem(name, "too large: at most 100 years");
                default.min(Duration::from_secs(MAX_SECONDS))
            }
        }
    }

    pub(super) fn secs(&mut self, name: &'static str, default: Duration) -> Duration {
        self.duration(name, default, 1, "a whole number of seconds")
    }

    /// An `http`/`https` URL; `None` (and a problem) otherwise.
    pub(super) fn url(&mut self, name: &'static str, value: &str) -> Option<Url> {
        match Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            Ok(u) => {
                self.problem(
                    name,
                    format!("scheme {:?} is not http or https", u.scheme()),
                );
                None
            }
            Err(e) => {
                self.problem(name, format!("not a URL ({e})"));
                None
            }
        }
    }
}
