//! Track scripts: the process-running edge that turns a check command's exit status
//! into debounced up/down reports for the VRRP instances that track it (keepalived's
//! `vrrp_script`). [`debounce`] is the pure rise/fall counter.

pub mod debounce;

pub use debounce::Debouncer;
