//! The config schema: the typed [`Config`] tree the rest of splitguard reads, and the
//! serde shapes of each TOML section with their defaults. Key names are a contract
//! (DESIGN.md, "Contracts"): add keys, never rename them.
//!
//! Sections whose values need range checks or defaults that depend on other keys
//! (`[[instance]]`, `[[track_script]]`, `[arbiter]`, `[witness]`, mail and IMAP
//! ports) are read into a `Raw*` shape first and turned into the public type after
//! validation; the rest deserialize straight into the public type.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::duration::{serde_opt, serde_str};
use super::values::{Argv, HttpUrl, Secret, Template, Vip, from_str_with};
use splitguard_vrrp::Version;

/// A whole, validated config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name, used in alerts and status.
    pub node: String,
    /// Where the spool, reboot ledger and incident codes live.
    pub state_dir: PathBuf,
    /// The daemon's control socket (mode 0660).
    pub control_socket: PathBuf,
    /// Group owning the control socket, so a monitoring user can ask it.
    pub control_socket_group: Option<String>,
    /// Optional JSON-lines file of ordered events (state changes, VIPs, withheld
    /// claims) for tools to tail.
    pub events_file: Option<PathBuf>,
    /// Where Prometheus scrapes `/metrics` (its own listener; none by default).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `/metrics` over TLS: `metrics_tls_cert` and `metrics_tls_key` (PEM).
    pub metrics_tls: Option<TlsFiles>,
    /// What a secret-bearing file readable by others does to the start.
    pub secret_file_mode: SecretFileMode,
    pub instances: Vec<Instance>,
    pub track_scripts: Vec<TrackScript>,
    pub arbiter: Arbiter,
    pub channels: Vec<Channel>,
    pub reply: Option<Reply>,
    pub watches: Vec<Watch>,
    pub watch_actions: WatchActions,
    pub alerts: Alerts,
    /// `[witness]`; None when the file has no such section.
    pub witness: Option<Witness>,
    /// `[[fence]]`: the peers this node may power off.
    pub fences: Vec<super::fence::Fence>,
}

// ---------------------------------------------------------------- top level

/// Top-level scalar keys; the sections are read separately (see `read.rs`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTop {
    pub node: String,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    #[serde(default)]
    pub control_socket_group: Option<String>,
    #[serde(default)]
    pub events_file: Option<PathBuf>,
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    #[serde(default)]
    pub metrics_tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub metrics_tls_key: Option<PathBuf>,
    #[serde(default)]
    pub secret_file_mode: SecretFileMode,
}

/// `secret_file_mode`: a config file (or TLS key) that holds secrets and that
/// others may read either stops `run`, `watch` and `check-config` (`refuse`,
/// the default) or is only warned about (`warn`). Group-readable is fine: the
/// service's group may need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretFileMode {
    #[default]
    Refuse,
    Warn,
}

/// A listener's certificate chain and private key (PEM paths), as the config
/// names them. Config's own type, so the schema does not depend on the HTTP
/// listener; converted where the listener loads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl From<TlsFiles> for splitguard_watchdog::io::listener::TlsFiles {
    fn from(files: TlsFiles) -> Self {
        splitguard_watchdog::io::listener::TlsFiles {
            cert: files.cert,
            key: files.key,
        }
    }
}

impl From<&TlsFiles> for splitguard_watchdog::io::listener::TlsFiles {
    fn from(files: &TlsFiles) -> Self {
        files.clone().into()
    }
}

/// Both halves of a TLS pair, or neither (validation has checked that).
pub(crate) fn tls_files(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> Option<TlsFiles> {
    match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/splitguard")
}

fn default_control_socket() -> PathBuf {
    PathBuf::from("/run/splitguard.sock")
}

// ---------------------------------------------------------------- [[instance]]

/// One VRRP instance (keepalived's `vrrp_instance`).
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    /// v2: whole seconds; v3: a multiple of 10 ms.
    pub advert_interval: Duration,
    pub version: Version,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// VRRPv2 simple-text password (at most 8 bytes).
    pub auth_pass: Option<Secret>,
    pub vips: Vec<Vip>,
    /// iproute2 address label, `<interface>:<suffix>`.
    pub vip_label: Option<String>,
    /// Empty: multicast (224.0.0.18 / ff02::12).
    pub unicast_peers: Vec<IpAddr>,
    pub unicast_src_ip: Option<IpAddr>,
    /// Names of `[[track_script]]` entries.
    pub track_scripts: Vec<String>,
    /// Interfaces whose link going down puts the instance in FAULT.
    pub track_interfaces: Vec<String>,
    pub notify: Option<Argv>,
    pub notify_master: Option<Argv>,
    pub notify_backup: Option<Argv>,
    pub notify_fault: Option<Argv>,
    pub notify_stop: Option<Argv>,
    /// v3 only: compute the checksum without the IPv4 pseudo-header, as some
    /// older peers do (RFC 9568 notes the ambiguity).
    pub v3_checksum_as_v2: bool,
    /// Gratuitous ARPs sent on becoming master (keepalived's garp_master_repeat).
    pub garp_repeat: u32,
    /// Spacing of the GARPs in that burst.
    pub garp_interval: Duration,
    /// While master, one GARP per VIP this often (0: never). keepalived leaves this
    /// off; switches then keep a stale MAC after a healed split brain.
    pub garp_refresh: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInstance {
    pub name: String,
    pub interface: String,
    // Wide integers here so an out-of-range value gets a sentence from validation
    // rather than serde's "expected u8".
    pub vrid: i64,
    pub priority: i64,
    #[serde(with = "serde_str")]
    pub advert_interval: Duration,
    #[serde(default = "default_version")]
    pub version: i64,
    #[serde(default = "yes")]
    pub preempt: bool,
    #[serde(default, with = "serde_opt")]
    pub preempt_delay: Option<Duration>,
    #[serde(default)]
    pub auth_pass: Option<Secret>,
    pub vips: Vec<Vip>,
    #[serde(default)]
    pub vip_label: Option<String>,
    #[serde(default)]
    pub unicast_peers: Vec<IpAddr>,
    #[serde(default)]
    pub unicast_src_ip: Option<IpAddr>,
    #[serde(default)]
    pub track_scripts: Vec<String>,
    #[serde(default)]
    pub track_interfaces: Vec<String>,
    #[serde(default)]
    pub notify: Option<Argv>,
    #[serde(default)]
    pub notify_master: Option<Argv>,
    #[serde(default)]
    pub notify_backup: Option<Argv>,
    #[serde(default)]
    pub notify_fault: Option<Argv>,
    #[serde(default)]
    pub notify_stop: Option<Argv>,
    #[serde(default)]
    pub v3_checksum_as_v2: bool,
    #[serde(default = "default_garp_repeat")]
    pub garp_repeat: i64,
    #[serde(default, with = "serde_opt")]
    pub garp_interval: Option<Duration>,
    #[serde(default, with = "serde_opt")]
    pub garp_refresh: Option<Duration>,
}

fn default_garp_repeat() -> i64 {
    5
}

/// Default spacing of a GARP burst: spread so one lost frame doesn't lose them all.
pub const DEFAULT_GARP_INTERVAL: Duration = Duration::from_millis(100);
/// Default GARP refresh while master.
pub const DEFAULT_GARP_REFRESH: Duration = Duration::from_secs(60);
/// Most GARPs one burst may send.
pub const MAX_GARP_REPEAT: i64 = 100;

fn default_version() -> i64 {
    2
}

fn yes() -> bool {
    true
}

// ---------------------------------------------------------------- [[track_script]]

/// A health check whose result moves an instance's priority or puts it in FAULT.
#[derive(Debug, Clone)]
pub struct TrackScript {
    pub name: String,
    pub command: Argv,
    pub interval: Duration,
    /// Defaults to `interval`.
    pub timeout: Duration,
    /// Consecutive successes before the script counts as up.
    pub rise: u32,
    /// Consecutive failures before the script counts as down.
    pub fall: u32,
    /// 0: FAULT when down; otherwise added to (or, if negative, taken from) the
    /// priority while up (positive) or down (negative), as keepalived does.
    pub weight: i16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrackScript {
    pub name: String,
    pub command: Argv,
    #[serde(with = "serde_str")]
    pub interval: Duration,
    #[serde(default, with = "serde_opt")]
    pub timeout: Option<Duration>,
    #[serde(default = "one")]
    pub rise: i64,
    #[serde(default = "one")]
    pub fall: i64,
    #[serde(default)]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

// ---------------------------------------------------------------- [arbiter]

/// What to do when this node cannot reach its references (DESIGN.md, Arbitration):
/// the arbiter's own type, so config and policy cannot drift apart.
pub use splitguard_arbiter::policy::OnIsolated;

/// Reachability probe timing, shared by reference and peer probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

/// The arbiter: what the network says before this node may hold a VIP.
#[derive(Debug, Clone)]
pub struct Arbiter {
    /// `enabled = false` turns the arbiter off: claims follow VRRP alone, as in
    /// keepalived (for comparison runs and for networks with no reference at all).
    pub enabled: bool,
    /// Empty: the interface's default gateway, resolved at run time.
    pub references: Vec<IpAddr>,
    /// Peer nodes' real addresses; when the file omits `peers`, every instance's
    /// unicast peers (in order, without repeats).
    pub peers: Vec<IpAddr>,
    /// How many references must answer for this node not to be isolated.
    pub quorum: u32,
    pub ownership_probe: bool,
    pub on_isolated: OnIsolated,
    /// Priority taken off an isolated MASTER while a peer still answers.
    pub demote_weight: u8,
    /// Required when `on_isolated = "reboot"`.
    pub reboot_after: Option<Duration>,
    pub reboot_command: Argv,
    /// The reboot ledger: at most `reboot_limit` reboots per `reboot_window`, and
    /// none while the machine has been up less than `reboot_min_uptime`, so a node
    /// whose network stays broken does not reboot in a loop.
    pub reboot_limit: u32,
    pub reboot_window: Duration,
    pub reboot_min_uptime: Duration,
    /// TOML keys `probe_interval`, `probe_timeout`, `probe_rise`, `probe_fall`.
    pub probe: Probe,
    /// e.g. `/dev/watchdog`, to back a reboot that hangs.
    pub watchdog_device: Option<PathBuf>,
    /// Claim before Master_Down_Interval once the silent master is confirmed
    /// dead (liveness stream, confirmation round); on by default, `false`:
    /// RFC timing and no liveness stream.
    pub early_takeover: bool,
    /// The liveness stream's interval at most (a quarter of a faster master's
    /// advert interval is used instead).
    pub liveness_interval: Duration,
    /// Echoes in a row unanswered that lose a peer.
    pub liveness_misses: u32,
    /// Where the echoes to each reference and peer leave from
    /// (`probe_plan::route`), in probe order without repeats; the default
    /// gateways are added at run time.
    pub routes: Vec<ProbeRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArbiter {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub references: Vec<IpAddr>,
    #[serde(default)]
    pub peers: Option<Vec<IpAddr>>,
    #[serde(default)]
    pub quorum: Option<i64>,
    #[serde(default)]
    pub ownership_probe: Option<bool>,
    #[serde(default)]
    pub on_isolated: OnIsolated,
    #[serde(default)]
    pub demote_weight: Option<i64>,
    #[serde(default, with = "serde_opt")]
    pub reboot_after: Option<Duration>,
    #[serde(default)]
    pub reboot_command: Option<Argv>,
    #[serde(default)]
    pub reboot_limit: Option<i64>,
    #[serde(default, with = "serde_opt")]
    pub reboot_window: Option<Duration>,
    #[serde(default, with = "serde_opt")]
    pub reboot_min_uptime: Option<Duration>,
    #[serde(default, with = "serde_opt")]
    pub probe_interval: Option<Duration>,
    #[serde(default, with = "serde_opt")]
    pub probe_timeout: Option<Duration>,
    #[serde(default)]
    pub probe_rise: Option<i64>,
    #[serde(default)]
    pub probe_fall: Option<i64>,
    #[serde(default)]
    pub watchdog_device: Option<PathBuf>,
    #[serde(default)]
    pub early_takeover: Option<bool>,
    #[serde(default, with = "serde_opt")]
    pub liveness_interval: Option<Duration>,
    #[serde(default)]
    pub liveness_misses: Option<i64>,
}

pub const DEFAULT_QUORUM: i64 = 1;
pub const DEFAULT_DEMOTE_WEIGHT: i64 = 50;
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_PROBE_RISE: i64 = 2;
pub const DEFAULT_PROBE_FALL: i64 = 3;
pub const DEFAULT_REBOOT_LIMIT: i64 = 1;
pub const DEFAULT_REBOOT_WINDOW: Duration = Duration::from_secs(3600);
pub const DEFAULT_REBOOT_MIN_UPTIME: Duration = Duration::from_secs(600);

pub fn default_reboot_command() -> Argv {
    vec!["systemctl".to_owned(), "reboot".to_owned()]
}

// ---------------------------------------------------------------- [witness]

/// `[witness]`: an etcd v3 cluster that says which node may hold each
/// instance's VIPs (one key per address family and VRID under a prefix named
/// for `cluster`, held with a lease), so a pair cut in two cannot both claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// Endpoints, `http://host:port` or `https://host:port` (1 to 7, each once),
    /// as `scheme://host:port` without a trailing slash.
    pub etcd: Vec<String>,
    /// The key namespace: 1 to 64 of `[A-Za-z0-9._-]`.
    pub cluster: String,
    /// The lease's time to live (whole seconds, 2s to 60s; default 3s).
    pub lease_ttl: Duration,
    /// Some when any endpoint is https (they all are then); `ca: None` uses the
    /// system's roots.
    pub tls: Option<WitnessTls>,
    /// etcd's user; with `password`, or neither.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The direct path to the peer's daemon that lets a master which cannot
    /// reach etcd keep its VIPs while the peer confirms; None: such a master
    /// releases them.
    pub confirm: Option<WitnessConfirm>,
}

/// TLS to the etcd endpoints (TOML keys `tls_ca`, `tls_cert`, `tls_key`; PEM
/// paths). The client certificate and key come together or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessTls {
    /// The CA that signs the endpoints' certificates; None: the system's roots.
    pub ca: Option<PathBuf>,
    /// The client certificate chain, for etcd's client-certificate auth.
    pub cert: Option<PathBuf>,
    /// Its private key (held to `secret_file_mode` like the other TLS keys).
    pub key: Option<PathBuf>,
}

/// The confirm path (TOML keys `confirm_listen`, `confirm_peer`,
/// `confirm_secret`, `confirm_interval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessConfirm {
    /// Where this daemon takes the peer's confirmations, e.g. `192.0.2.197:8727`.
    pub listen: SocketAddr,
    /// The other daemon's `confirm_listen`.
    pub peer: SocketAddr,
    /// Shared by both daemons; at least [`CONFIRM_SECRET_MIN`] bytes.
    pub secret: Secret,
    /// How often confirmations are sent (100ms to 1s; default 500ms).
    pub interval: Duration,
}

/// Default `lease_ttl`.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);
/// Shortest `lease_ttl`: with [`Witness::confirm_valid`] one second shorter, a
/// shorter lease would leave nothing to confirm within.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(2);
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(60);
/// Default `confirm_interval`.
pub const DEFAULT_CONFIRM_INTERVAL: Duration = Duration::from_millis(500);
pub const MIN_CONFIRM_INTERVAL: Duration = Duration::from_millis(100);
pub const MAX_CONFIRM_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest `confirm_secret`, in bytes.
pub const CONFIRM_SECRET_MIN: usize = 16;
/// Most `etcd` endpoints (etcd recommends clusters of at most 7 members).
pub const MAX_ETCD_ENDPOINTS: usize = 7;
/// Longest `cluster`.
pub const CLUSTER_MAX: usize = 64;
/// [`Witness::margin`].
pub const WITNESS_MARGIN: Duration = Duration::from_millis(300);
/// What [`Witness::confirm_valid`] takes off the lease.
const CONFIRM_SHORT_OF_LEASE: Duration = Duration::from_secs(1);

/// check-config's warning for a witness without a confirm path.
pub const WITNESS_WITHOUT_CONFIRM: &str = "[witness] without confirm_peer: a master that cannot reach etcd releases its VIPs; with a confirm path it keeps them while its peer confirms";

impl Witness {
    /// How often the lease is renewed: `lease_ttl / 3` (1s at the default 3s).
    /// Two renewals in a row can be lost, or each take up to a third of the TTL,
    /// and the third still lands before the lease runs out.
    pub fn renew_interval(&self) -> Duration {
        self.lease_ttl / 3
    }

    /// The slack kept between this node's view of its lease and etcd's: 300ms,
    /// fixed. A lease last renewed at `t` counts as held only until
    /// `t + lease_ttl - margin`, so a renewal's round trip and the two clocks'
    /// drift over one TTL cannot make the node hold past etcd's expiry.
    pub fn margin(&self) -> Duration {
        WITNESS_MARGIN
    }

    /// How long one confirmation from the peer keeps a master that cannot reach
    /// etcd holding its VIPs: `lease_ttl - 1s` (2s at the default 3s; 1s at the
    /// shortest TTL, 2s). A master living on confirmations thus lets go at most
    /// `lease_ttl - 1s` after the last one, a full second inside the lifetime
    /// of a lease, so it releases well before the peer could have been granted
    /// the key in its place. Validation asks for at least two confirmations in
    /// this window (`confirm_interval * 2 <= confirm_valid()`), so one lost
    /// confirmation never makes a master release.
    pub fn confirm_valid(&self) -> Duration {
        self.lease_ttl.saturating_sub(CONFIRM_SHORT_OF_LEASE)
    }

    /// check-config's warning about this section, if any: without a confirm
    /// path a master that loses etcd releases its VIPs.
    pub fn warning(&self) -> Option<&'static str> {
        self.confirm.is_none().then_some(WITNESS_WITHOUT_CONFIRM)
    }

    /// One line for check-config: endpoints, cluster, TTL and the confirm peer;
    /// never the password or the confirm secret.
    pub fn summary(&self) -> String {
        let confirm = match &self.confirm {
            Some(c) => format!(
                "confirm peer {} every {}",
                c.peer,
                super::duration::DurationDisplay(c.interval)
            ),
            None => "no confirm path".to_owned(),
        };
        format!(
            "witness: etcd {} cluster {:?} lease_ttl {} {confirm}",
            self.etcd.join(","),
            self.cluster,
            super::duration::DurationDisplay(self.lease_ttl),
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWitness {
    // Strings: each endpoint is checked (and located) on its own in validation.
    pub etcd: Vec<String>,
    pub cluster: String,
    #[serde(default, with = "serde_opt")]
    pub lease_ttl: Option<Duration>,
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default, deserialize_with = "opt_socket_with_port")]
    pub confirm_listen: Option<SocketAddr>,
    #[serde(default, deserialize_with = "opt_socket_with_port")]
    pub confirm_peer: Option<SocketAddr>,
    #[serde(default)]
    pub confirm_secret: Option<Secret>,
    #[serde(default, with = "serde_opt")]
    pub confirm_interval: Option<Duration>,
}

/// An address and a port, saying so when the port is missing.
fn opt_socket_with_port<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    from_str_with(
        d,
        "an address and port such as \"192.0.2.197:8727\"",
        |text| {
            if let Ok(ip) = text.parse::<IpAddr>() {
                let example = SocketAddr::new(ip, 8727);
                return Err(format!("{ip} has no port; write e.g. \"{example}\""));
            }
            text.parse::<SocketAddr>().map_err(|_| {
                format!("{text:?} is not an address and port such as \"192.0.2.197:8727\"")
            })
        },
    )
    .map(Some)
}

// ---------------------------------------------------------------- [[channel]]

/// Where alerts go. In TOML a table with `type = "webhook" | "mail" | "sms" |
/// "alertmanager" | "pagerduty"` (and for SMS `provider = "twilio" | "http"`); every
/// channel takes an optional `name` and an escalation `tier` (default 0: paged
/// first; tier N is paged after N escalation steps).
#[derive(Debug, Clone)]
pub enum Channel {
    Webhook(Webhook),
    Mail(Mail),
    Sms(Sms),
    Alertmanager(Alertmanager),
    Pagerduty(Pagerduty),
}

impl Channel {
    /// The `type` value in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook(_) => "webhook",
            Channel::Mail(_) => "mail",
            Channel::Sms(_) => "sms",
            Channel::Alertmanager(_) => "alertmanager",
            Channel::Pagerduty(_) => "pagerduty",
        }
    }

    pub fn tier(&self) -> u8 {
        match self {
            Channel::Webhook(c) => c.tier,
            Channel::Mail(c) => c.tier,
            Channel::Sms(Sms::Twilio(c)) => c.tier,
            Channel::Sms(Sms::Http(c)) => c.tier,
            Channel::Alertmanager(c) => c.tier,
            Channel::Pagerduty(c) => c.tier,
        }
    }

    /// The name given in the file, if any (the spool keys deliveries by it; see
    /// [`Config::channel_name`] for the resolved name).
    pub fn name(&self) -> Option<&str> {
        match self {
            Channel::Webhook(c) => c.name.as_deref(),
            Channel::Mail(c) => c.name.as_deref(),
            Channel::Sms(Sms::Twilio(c)) => c.name.as_deref(),
            Channel::Sms(Sms::Http(c)) => c.name.as_deref(),
            Channel::Alertmanager(c) => c.name.as_deref(),
            Channel::Pagerduty(c) => c.name.as_deref(),
        }
    }
}

impl Config {
    /// Each TLS listener's files, named by their keys (for messages).
    pub fn tls_listeners(&self) -> Vec<(&'static str, TlsFiles)> {
        let mut out = Vec::new();
        if let Some(t) = &self.metrics_tls {
            out.push(("metrics_tls_cert/metrics_tls_key", t.clone()));
        }
        if let Some(t) = self.reply.as_ref().and_then(Reply::tls) {
            out.push(("reply.tls_cert/tls_key", t));
        }
        out
    }

    /// The name of `channels[index]`: the one in the file, or `<type><index>`.
    pub fn channel_name(&self, index: usize) -> Option<String> {
        let channel = self.channels.get(index)?;
        Some(
            channel
                .name()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{}{index}", channel.kind())),
        )
    }
}

fn default_http_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `type = "webhook"`: POSTs the JSON incident body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tier: u8,
    #[serde(deserialize_with = "url_str")]
    pub url: HttpUrl,
    /// When set, the body is signed (HMAC-SHA256) in a header.
    #[serde(default)]
    pub hmac_secret: Option<Secret>,
    #[serde(default = "default_http_timeout", with = "serde_str")]
    pub timeout: Duration,
}

/// TLS mode for SMTP and IMAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// TLS from the first byte (SMTPS 465, IMAPS 993).
    Implicit,
    /// Plain connection upgraded with STARTTLS (submission 587, IMAP 143).
    Starttls,
    /// No TLS (only for a relay on localhost or a lab).
    None,
}

/// `type = "mail"`: SMTP.
#[derive(Debug, Clone)]
pub struct Mail {
    pub name: Option<String>,
    pub tier: u8,
    pub host: String,
    /// Defaults by `tls`: 465 implicit, 587 starttls, 25 none.
    pub port: u16,
    pub tls: Tls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    pub timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMail {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tier: u8,
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default = "default_smtp_tls")]
    pub tls: Tls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default = "default_http_timeout", with = "serde_str")]
    pub timeout: Duration,
}

fn default_smtp_tls() -> Tls {
    Tls::Starttls
}

impl RawMail {
    pub fn into_mail(self) -> Mail {
        let port = self.port.unwrap_or(match self.tls {
            Tls::Implicit => 465,
            Tls::Starttls => 587,
            Tls::None => 25,
        });
        Mail {
            name: self.name,
            tier: self.tier,
            host: self.host,
            port,
            tls: self.tls,
            username: self.username,
            password: self.password,
            from: self.from,
            to: self.to,
            timeout: self.timeout,
        }
    }
}

/// `type = "sms"`, by `provider`.
#[derive(Debug, Clone)]
pub enum Sms {
    Twilio(TwilioSms),
    Http(HttpSms),
}

/// `provider = "twilio"`: Twilio's Messages REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSms {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tier: u8,
    /// Overridable for tests and proxies.
    #[serde(default = "default_twilio_api", deserialize_with = "url_str")]
    pub api_url: HttpUrl,
    pub account_sid: String,
    pub auth_token: Secret,
    /// A number or a sender ID, as the Twilio account allows.
    pub from: String,
    /// E.164 numbers.
    pub to: Vec<String>,
    #[serde(default = "default_http_timeout", with = "serde_str")]
    pub timeout: Duration,
}

fn default_twilio_api() -> HttpUrl {
    // A constant that parses; failing here would be a bug, not bad input.
    HttpUrl::new(Url::parse("https://api.twilio.com").expect("constant URL parses"))
}

/// HTTP method for the generic SMS gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Post,
}

/// `provider = "http"`: a generic gateway reached by filling `{to}` and `{text}`
/// (URL-encoded) into `url_template`, and for POST into `body_template`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSms {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tier: u8,
    pub url_template: Template,
    #[serde(default)]
    pub method: HttpMethod,
    #[serde(default)]
    pub body_template: Option<Template>,
    pub to: Vec<String>,
    #[serde(default = "default_http_timeout", with = "serde_str")]
    pub timeout: Duration,
}

/// `type = "alertmanager"`: `POST {url}/api/v2/alerts`, to every instance of
/// a cluster (`urls`), as Alertmanager's HA setup asks of its clients.
#[derive(Debug, Clone)]
pub struct Alertmanager {
    pub name: Option<String>,
    pub tier: u8,
    /// `url` (one Alertmanager) or `urls` (every instance of a cluster): at
    /// least one, each instance once.
    pub urls: Vec<HttpUrl>,
    /// Given as `url` (so messages name that key) rather than `urls`.
    pub single: bool,
    /// Each post's timeout.
    pub timeout: Duration,
    /// How long a copy an instance missed (another took the notice) is
    /// retried (`instance_retry_for`, default 5m).
    pub instance_retry_for: Duration,
}

impl Alertmanager {
    /// The config key of `urls[j]`: `url` or `urls[j]`.
    pub fn url_key(&self, j: usize) -> String {
        if self.single {
            "url".to_owned()
        } else {
            format!("urls[{j}]")
        }
    }
}

/// `[[channel]] type = "alertmanager"` as read; exactly one of `url` and
/// `urls` is checked in validation, which makes the [`Alertmanager`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlertmanager {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tier: u8,
    #[serde(default, deserialize_with = "opt_url_str")]
    pub url: Option<HttpUrl>,
    /// Checked element by element in validation, so each error names its index.
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    #[serde(default = "default_http_timeout", with = "serde_str")]
    pub timeout: Duration,
    #[serde(default = "default_instance_retry_for", with = "serde_str")]
    pub instance_retry_for: Duration,
}

fn default_instance_retry_for() -> Duration {
    splitguard_watchdog::core::fanout::DEFAULT_RETRY_FOR
}

/// `type = "pagerduty"`: Events API v2.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pagerduty {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tier: u8,
    pub routing_key: Secret,
    #[serde(default = "default_pagerduty_url", deserialize_with = "url_str")]
    pub url: HttpUrl,
    #[serde(default = "default_http_timeout", with = "serde_str")]
    pub timeout: Duration,
}

fn default_pagerduty_url() -> HttpUrl {
    HttpUrl::new(
        Url::parse("https://events.pagerduty.com/v2/enqueue").expect("constant URL parses"),
    )
}

/// An absolute http(s) URL with a host.
fn url_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HttpUrl, D::Error> {
    from_str_with(d, "an http(s) URL", parse_http_url).map(HttpUrl::new)
}

pub(crate) fn parse_http_url(text: &str) -> Result<Url, String> {
    check_http_url(text).map_err(|why| format!("invalid URL {text:?}: {why}"))
}

/// Why a URL is not usable for an HTTP channel.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UrlProblem {
    #[error("{0}")]
    Parse(#[from] url::ParseError),
    #[error("scheme {0:?} is not http or https")]
    Scheme(String),
    #[error("it has no host")]
    NoHost,
}

pub(crate) fn check_http_url(text: &str) -> Result<Url, UrlProblem> {
    let url = Url::parse(text)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlProblem::Scheme(url.scheme().to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlProblem::NoHost);
    }
    Ok(url)
}

// ---------------------------------------------------------------- [reply]

/// Ack-by-reply: where replies come in and who may send them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// HTTP listener for SMS webhooks; needed for `twilio_auth_token` or
    /// `generic_secret`, not for IMAP alone.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// The exact URL Twilio posts to (what it signs).
    #[serde(default, deserialize_with = "opt_url_str")]
    pub public_url: Option<HttpUrl>,
    #[serde(default)]
    pub twilio_auth_token: Option<Secret>,
    /// Shared secret the generic gateway presents.
    #[serde(default)]
    pub generic_secret: Option<Secret>,
    /// E.164 numbers and mail addresses whose replies count.
    pub allowed_senders: Vec<String>,
    /// Per sender (as in `allowed_senders`): the PIN its DEMOTE, RESUME, MUTE
    /// and STATUS replies must carry (`4821 DEMOTE 7741`).
    #[serde(default)]
    pub pins: std::collections::BTreeMap<String, Secret>,
    #[serde(default)]
    pub imap: Option<Imap>,
    /// Serve `listen` over TLS with this certificate chain (PEM; with `tls_key`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The private key for `tls_cert` (PEM; not readable by others).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

impl Reply {
    /// The listener's TLS files, when both are set.
    pub fn tls(&self) -> Option<TlsFiles> {
        tls_files(&self.tls_cert, &self.tls_key)
    }
}

fn opt_url_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<HttpUrl>, D::Error> {
    url_str(d).map(Some)
}

/// The reply mailbox, polled over IMAP.
#[derive(Debug, Clone)]
pub struct Imap {
    pub host: String,
    /// Defaults by `tls`: 993 implicit, 143 otherwise.
    pub port: u16,
    pub tls: Tls,
    pub username: String,
    pub password: Secret,
    pub mailbox: String,
    pub poll_interval: Duration,
}

impl<'de> Deserialize<'de> for Imap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawImap::deserialize(d)?;
        let port = raw.port.unwrap_or(match raw.tls {
            Tls::Implicit => 993,
            Tls::Starttls | Tls::None => 143,
        });
        Ok(Imap {
            host: raw.host,
            port,
            tls: raw.tls,
            username: raw.username,
            password: raw.password,
            mailbox: raw.mailbox,
            poll_interval: raw.poll_interval,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default = "default_imap_tls")]
    tls: Tls,
    username: String,
    password: Secret,
    #[serde(default = "default_mailbox")]
    mailbox: String,
    #[serde(default = "default_poll_interval", with = "serde_str")]
    poll_interval: Duration,
}

fn default_imap_tls() -> Tls {
    Tls::Implicit
}

fn default_mailbox() -> String {
    "INBOX".to_owned()
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(30)
}

// ---------------------------------------------------------------- [[watch]]

/// The role this node should have for a watched VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Backup,
}

/// One VIP the standalone watchdog (`splitguard watch`) keeps an eye on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    pub vip: IpAddr,
    pub interface: String,
    pub role: Role,
}

/// `[watch_actions]`: what replies make the standalone watchdog do beside
/// keepalived. `DEMOTE` runs `demote_command` (e.g. `systemctl stop keepalived`),
/// `RESUME` runs `resume_command`; without them those replies are refused. Under
/// `splitguard run` the daemon demotes itself and these are not used.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchActions {
    #[serde(default)]
    pub demote_command: Option<Argv>,
    #[serde(default)]
    pub resume_command: Option<Argv>,
}

// ---------------------------------------------------------------- [alerts]

/// Alert engine knobs (Alertmanager-style).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// Wait before the first send, so a flap that clears at once pages nobody.
    #[serde(default = "default_group_wait", with = "serde_str")]
    pub group_wait: Duration,
    /// The same for critical incidents (split brain): 0 pages at once.
    #[serde(default, with = "serde_str")]
    pub group_wait_critical: Duration,
    /// Resend an unacked incident this often.
    #[serde(default = "default_repeat_interval", with = "serde_str")]
    pub repeat_interval: Duration,
    /// Page the next tier when an incident stays unacked this long.
    #[serde(default = "default_escalate_after", with = "serde_str")]
    pub escalate_after: Duration,
    /// At most this many sends per channel per `rate_limit_window`.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: u32,
    #[serde(default = "default_rate_limit_window", with = "serde_str")]
    pub rate_limit_window: Duration,
    /// Also send when an incident clears.
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            group_wait: default_group_wait(),
            group_wait_critical: Duration::ZERO,
            repeat_interval: default_repeat_interval(),
            escalate_after: default_escalate_after(),
            rate_limit: default_rate_limit(),
            rate_limit_window: default_rate_limit_window(),
            send_resolved: true,
        }
    }
}

fn default_group_wait() -> Duration {
    Duration::from_secs(10)
}

fn default_repeat_interval() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_escalate_after() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_rate_limit() -> u32 {
    30
}

fn default_rate_limit_window() -> Duration {
    Duration::from_secs(3600)
}

/// Which of the node's addresses an echo leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// The instance's own IPv4 address.
    Ipv4,
    /// The interface's IPv6 link-local address.
    LinkLocal,
    /// A global (or unique local) IPv6 address of the interface.
    Global,
}

impl SourceKind {
    /// The source a target needs: an IPv6 link-local target is reached from the
    /// link-local address (its scope), any other IPv6 one from a global address.
    pub fn for_target(target: IpAddr) -> SourceKind {
        match target {
            IpAddr::V4(_) => SourceKind::Ipv4,
            IpAddr::V6(v6) if v6.is_unicast_link_local() => SourceKind::LinkLocal,
            IpAddr::V6(_) => SourceKind::Global,
        }
    }
}

/// Where the echoes to one target leave from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeRoute {
    pub target: IpAddr,
    pub interface: String,
    pub source: SourceKind,
}
