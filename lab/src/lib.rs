//! splitguard-lab: the namespace lab: throw-away network namespaces on one machine, wired through a
//! bridge namespace, for the integration tests and `splitguard lab`. Addresses come
//! only from TEST-NET-1 (192.0.2.0/24); nothing is put in the root namespace; every
//! lab deletes its namespaces (and kills what runs in them) when dropped.

pub mod alertmanager;
pub mod bench;
pub mod bench_scale;
pub mod bmc;
pub mod configs;
pub mod demo;
pub mod etcd;
pub mod fence_bench;
pub mod flood;
pub mod gw;
pub mod html;
pub mod measure;
pub mod netns;
pub mod observe;
pub mod pair;
pub mod process;
pub mod report;
pub mod scenario;
pub mod soak;
pub mod witness_matrix;

pub use netns::{Host, Lab, LabBuilder, LabError};
pub use observe::{OwnerSamples, wait_for};
pub use process::LabProcess;
