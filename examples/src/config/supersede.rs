//! Superseding stale pull-request work: `SUPERSEDE_ENABLED` (default true) and
//! `SUPERSEDE_RUNNING` (default false), into [`Config::supersede`] (the core's
//! `SupersedeConfig`, given to the ingestor).

use super::Config;
use super::read::Reader;

pub(super) fn read(r: &mut Reader<'_>, c: &mut Config) {
    c.supersede.enabled = r.bool("SUPERSEDE_ENABLED", c.supersede.enabled);
    c.supersede.running = r.bool("SUPERSEDE_RUNNING", c.supersede.running);
}
