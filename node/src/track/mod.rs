//! Track scripts: the process-running edge that turns a check command's exit status
//! into debounced up/down reports for the VRRP instances that track it (keepalived's
//! `vrrp_script`). [`debounce`] is the pure rise/fall counter, [`script`] the task that
//! runs the check, and [`command`] the one-shot runner (no shell, timeout, process
//! group killed and reaped) that notify scripts use as well.

pub mod command;
pub mod debounce;
pub mod script;

pub use debounce::Debouncer;
pub use script::{MIN_INTERVAL, MIN_TIMEOUT, ScriptSpec, ScriptTrackers, TrackerUpdate, spawn};
