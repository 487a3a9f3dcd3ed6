//! The witness's I/O edges: the etcd client (`store`) and the authenticated
//! datagram path between the two daemons of a pair (`confirm`). The rules
//! they serve are `splitguard_arbiter::witness`'s; the daemon's
//! `daemon/witness.rs` joins the two.

pub mod confirm;
pub mod store;
