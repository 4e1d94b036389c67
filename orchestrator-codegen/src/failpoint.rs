//! Failpoints: a testing aid for crash tests, compiled in only with the `failpoints` feature.
//!
//! A failpoint names a place in the code where a test may inject a failure in a real process
//! (the server binary), such as "the run creation was sent, its answer not yet recorded". The
//! end-to-end tests start the binary with `FAILPOINTS=<name>=<action>[;<name>=<action>...]`,
//! using the actions of the [`fail`](https://docs.rs/fail) crate (`panic`, `sleep(ms)`,
//! `pause`, `off`, counts such as `1*return`), where `return` here means: the process aborts at
//! once, as if it were killed (no destructor, no shutdown, nothing more written).
//!
//! Without the feature, [`crash_point`] is an empty inline function: no code, no lookup, no
//! dependency. The server package enables the feature only for its own test builds (a
//! dev-dependency), so a release build has no failpoints at all.
//!
//! Failpoints of this crate:
//! - `codegen_trigger::after_create`: the agent created the run and answered; the answer is not
//!   recorded yet (neither in the agent-run ledger nor on the task).

/// Aborts the process here when the failpoint `name` is configured to `return` (see the module
/// documentation); other actions behave as `fail` defines them.
#[cfg(feature = "failpoints")]
pub(crate) fn crash_point(name: &str) {
    static SETUP: std::sync::Once = std::sync::Once::new();
    SETUP.call_once(|| {
        let spec = std::env::var("FAILPOINTS").unwrap_or_default();
        for entry in spec.split(';').filter(|e| !e.trim().is_empty()) {
            if let Some((point, actions)) = entry.split_once('=')
                && let Err(err) = fail::cfg(point.trim(), actions.trim())
            {
                tracing::error!(failpoint = point, error = %err, "invalid FAILPOINTS entry");
            }
        }
    });
    if fail::eval(name, |_| ()).is_some() {
        tracing::error!(failpoint = name, "failpoint reached: aborting the process");
        std::process::abort();
    }
}

/// Without the `failpoints` feature: nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {}
