//! The witness's store edge: the etcd client. One lease per node, kept alive on
//! a schedule of our own (so each acknowledgement is matched to the send time
//! the policy's arithmetic needs); one key per VRID under
//! `/<cluster>/vrid/<ipv4|ipv6>/<vrid>`, created only if absent (a txn on
//! `create_revision == 0`) and deleted only while still ours; a prefix watch
//! that tells holders and deletions without polling, reopened from the last
//! revision when its member dies; and a status probe of each member.
//! Decisions are the policy's (`splitguard_arbiter::witness`): this edge only
//! reports what the store said, as [`StoreEvent`]s, and carries out
//! [`StoreCommand`]s.

use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, Txn,
    TxnOp, TxnOpResponse, WatchOptions,
};
use splitguard_arbiter::witness::Holder;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// How long one store call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_millis(800);
/// Pause before a failed connection, stream or call is tried again.
const RETRY: Duration = Duration::from_millis(250);
/// How often each member's status is asked (for `status` and `/metrics`).
const MEMBER_PROBE_EVERY: Duration = Duration::from_secs(2);

/// How to reach the store and what to keep there.
#[derive(Clone)]
pub struct StoreConfig {
    pub endpoints: Vec<String>,
    /// The key namespace (`[witness] cluster`).
    pub cluster: String,
    /// This node's name: the value of every key it holds.
    pub node: String,
    pub ttl: Duration,
    pub renew_every: Duration,
    pub tls: Option<etcd_client::TlsOptions>,
    pub user: Option<(String, String)>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("StoreConfig")
            .field("endpoints", &self.endpoints)
            .field("cluster", &self.cluster)
            .field("node", &self.node)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The key of a VRID's lock.
pub fn vrid_key(cluster: &str, ipv6: bool, vrid: u8) -> String {
    let family = if ipv6 { "ipv6" } else { "ipv4" };
    format!("/{cluster}/vrid/{family}/{vrid}")
}

fn prefix(cluster: &str) -> String {
    format!("/{cluster}/vrid/")
}

/// What the store said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// A lease was granted (`granted`) or renewed; the request left at `sent_at`.
    Renewed {
        sent_at: Instant,
        lease: i64,
        granted: bool,
    },
    /// The store says our lease is gone (expired or revoked).
    LeaseLost { reason: String },
    /// A call failed; the reason names the call and the endpoint or the
    /// store's answer. `lease`: the call was reaching the store or keeping
    /// the lease (what the `witness_unreachable` page should say), not
    /// reading or watching the keys.
    Error { reason: String, lease: bool },
    /// Holders of keys under the prefix. `full`: every key not listed is free.
    Holders {
        keys: Vec<(String, Holder)>,
        full: bool,
    },
    /// A contend's outcome: `Ok` the key is ours, `Err(holder)`.
    Contended {
        key: String,
        outcome: Result<(), String>,
    },
    /// A contend did not reach the store.
    ContendFailed { key: String, reason: String },
    /// Each member's state, in the configured order.
    Members(Vec<Member>),
}

/// One member as its status probe saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub endpoint: String,
    pub reachable: bool,
    pub leader: bool,
}

/// What the daemon asks of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreCommand {
    /// Create `key` under our lease if absent.
    Contend { key: String },
    /// Delete `key` if it is ours.
    Resign { key: String },
}

/// The running store edge.
pub struct Store {
    commands: mpsc::Sender<StoreCommand>,
    lease: watch::Receiver<Option<i64>>,
    client: watch::Receiver<Option<Client>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Store {
    /// Starts the store's tasks; what they learn arrives on `events`.
    pub fn start(cfg: StoreConfig, events: mpsc::Sender<StoreEvent>) -> Store {
        let (client_tx, client_rx) = watch::channel(None);
        let (lease_tx, lease_rx) = watch::channel(None);
        let (cmd_tx, cmd_rx) = mpsc::channel(1024);
        let tasks = vec![
            tokio::spawn(connect_loop(cfg.clone(), client_tx, events.clone())),
            tokio::spawn(lease_loop(
                cfg.clone(),
                client_rx.clone(),
                lease_tx,
                events.clone(),
            )),
            tokio::spawn(watch_loop(
                cfg.clone(),
                client_rx.clone(),
                lease_rx.clone(),
                events.clone(),
            )),
            tokio::spawn(command_loop(
                cfg.clone(),
                client_rx.clone(),
                lease_rx.clone(),
                cmd_rx,
                events.clone(),
            )),
            tokio::spawn(members_loop(cfg, events)),
        ];
        Store {
            commands: cmd_tx,
            lease: lease_rx,
            client: client_rx,
            tasks,
        }
    }

    /// Queues a command; refused (and said so) only if a thousand are waiting.
    pub fn command(&self, c: StoreCommand) -> bool {
        self.commands.try_send(c).is_ok()
    }

    /// The current lease, if one is granted.
    pub fn lease(&self) -> Option<i64> {
        *self.lease.borrow()
    }

    /// Revokes the lease (daemon exit, after the VIPs are gone): the peer may
    /// take the keys at once instead of after a TTL.
    pub async fn shutdown(self) {
        let lease = *self.lease.borrow();
        let client = self.client.borrow().clone();
        for t in &self.tasks {
            t.abort();
        }
        if let (Some(id), Some(mut c)) = (lease, client) {
            match tokio::time::timeout(CALL_TIMEOUT, c.lease_revoke(id)).await {
                Ok(Ok(_)) => info!(lease = format!("{id:x}"), "witness lease revoked"),
                Ok(Err(e)) => {
                    warn!(error = %e, "witness lease not revoked: the peer waits out its TTL")
                }
                Err(_) => warn!("witness lease revoke timed out: the peer waits out its TTL"),
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn options(cfg: &StoreConfig) -> ConnectOptions {
    let mut o = ConnectOptions::new()
        .with_connect_timeout(CALL_TIMEOUT)
        // etcd refuses pings more often than every 5 s (its
        // --grpc-keepalive-min-time) with a GOAWAY; the watch's periodic read
        // below covers a stream that went quiet sooner.
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(2))
        // A member cut off from its quorum answers nothing: its lease and key
        // views could be stale.
        .with_require_leader(true);
    if let Some(tls) = &cfg.tls {
        o = o.with_tls(tls.clone());
    }
    if let Some((user, password)) = &cfg.user {
        o = o
            .with_user(user.clone(), password.clone())
            .with_auto_token_refresh(true);
    }
    o
}

/// The error in a line: `etcd_client::Error`'s own text names the endpoint or
/// the gRPC status.
fn reason(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

async fn send(events: &mpsc::Sender<StoreEvent>, e: StoreEvent) {
    // The daemon gone means shutdown: nothing to do.
    let _ = events.send(e).await;
}

/// A failed call, for the daemon to log and (when `lease`) page.
async fn error(events: &mpsc::Sender<StoreEvent>, reason: String, lease: bool) {
    send(events, StoreEvent::Error { reason, lease }).await;
}

/// Connects (authenticating when credentials are set) and publishes the client.
/// The channel underneath balances over the endpoints and reconnects by
/// itself, so this runs until it has one client.
async fn connect_loop(
    cfg: StoreConfig,
    client: watch::Sender<Option<Client>>,
    events: mpsc::Sender<StoreEvent>,
) {
    loop {
        match tokio::time::timeout(
            CALL_TIMEOUT * 2,
            Client::connect(&cfg.endpoints, Some(options(&cfg))),
        )
        .await
        {
            Ok(Ok(c)) => {
                let _ = client.send(Some(c));
                return;
            }
            // The daemon logs each distinct failure once.
            Ok(Err(e)) => error(&events, reason("connecting to etcd", e), true).await,
            Err(_) => {
                error(&events, "connecting to etcd: timed out".into(), true).await;
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn wait_client(rx: &mut watch::Receiver<Option<Client>>) -> Option<Client> {
    rx.wait_for(|c| c.is_some())
        .await
        .ok()
        .and_then(|c| c.clone())
}

/// Runs one store call within [`CALL_TIMEOUT`]; a failure or a timeout is
/// reported, naming `what`, and gives `None`.
async fn call<T, E: std::fmt::Display>(
    events: &mpsc::Sender<StoreEvent>,
    what: &str,
    lease: bool,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Option<T> {
    let reason = match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => return Some(v),
        Ok(Err(e)) => reason(what, e),
        Err(_) => format!("{what}: no answer in time"),
    };
    error(events, reason, lease).await;
    None
}

/// Grants the lease and renews it every `renew_every`, one request in flight:
/// each acknowledgement is matched to its own send time.
async fn lease_loop(
    cfg: StoreConfig,
    mut client_rx: watch::Receiver<Option<Client>>,
    lease_tx: watch::Sender<Option<i64>>,
    events: mpsc::Sender<StoreEvent>,
) {
    let Some(mut client) = wait_client(&mut client_rx).await else {
        return;
    };
    // The server must keep the lease at least `ttl`: whole seconds, rounded up.
    let ttl_secs = i64::try_from(cfg.ttl.as_millis().div_ceil(1000)).unwrap_or(i64::MAX);
    let mut lease: Option<i64> = None;
    loop {
        let id = match lease {
            Some(id) => id,
            None => {
                let sent_at = Instant::now();
                let Some(r) = call(
                    &events,
                    "lease grant",
                    true,
                    client.lease_grant(ttl_secs, None),
                )
                .await
                else {
                    tokio::time::sleep(RETRY).await;
                    continue;
                };
                if r.ttl() < ttl_secs {
                    // Shorter than asked: the policy's arithmetic would not hold.
                    let _ = client.lease_revoke(r.id()).await;
                    let reason = format!(
                        "etcd granted a {} s lease where {ttl_secs} s was asked",
                        r.ttl()
                    );
                    error(&events, reason, true).await;
                    tokio::time::sleep(cfg.renew_every).await;
                    continue;
                }
                info!(
                    lease = format!("{:x}", r.id()),
                    ttl = r.ttl(),
                    "witness lease granted"
                );
                lease = Some(r.id());
                let _ = lease_tx.send(lease);
                let granted = StoreEvent::Renewed {
                    sent_at,
                    lease: r.id(),
                    granted: true,
                };
                send(&events, granted).await;
                r.id()
            }
        };
        // One keep-alive stream until it fails; then a new one (the member
        // behind it may be gone; the lease lives on at the others).
        let Some((mut keeper, mut stream)) = call(
            &events,
            "lease keep-alive",
            true,
            client.lease_keep_alive(id),
        )
        .await
        else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        loop {
            let sent_at = Instant::now();
            if let Err(e) = keeper.keep_alive().await {
                let reason = reason("lease keep-alive", e);
                error(&events, reason, true).await;
                break;
            }
            match call(&events, "lease keep-alive", true, stream.message()).await {
                Some(Some(r)) if r.ttl() > 0 => {
                    let renewed = StoreEvent::Renewed {
                        sent_at,
                        lease: id,
                        granted: false,
                    };
                    send(&events, renewed).await;
                }
                Some(Some(_)) => {
                    warn!(
                        lease = format!("{id:x}"),
                        "witness lease expired at the store"
                    );
                    lease = None;
                    let _ = lease_tx.send(None);
                    let reason = "the lease expired at the store".into();
                    send(&events, StoreEvent::LeaseLost { reason }).await;
                    break;
                }
                Some(None) => {
                    let reason = "lease keep-alive: stream closed".into();
                    error(&events, reason, true).await;
                    break;
                }
                None => break,
            }
            tokio::time::sleep_until((sent_at + cfg.renew_every).into()).await;
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Who a key's value and lease say holds it.
fn holder_of(kv: &KeyValue, node: &str, lease: Option<i64>) -> Holder {
    let value = String::from_utf8_lossy(kv.value());
    if value == node {
        // Our name under another lease: a previous run's, ours to replace.
        if Some(kv.lease()) == lease {
            Holder::Ours
        } else {
            Holder::Free
        }
    } else {
        Holder::Other(value.chars().take(64).collect())
    }
}

/// Reads the prefix, then watches it from the next revision; on any failure,
/// reads again and watches again.
async fn watch_loop(
    cfg: StoreConfig,
    mut client_rx: watch::Receiver<Option<Client>>,
    lease_rx: watch::Receiver<Option<i64>>,
    events: mpsc::Sender<StoreEvent>,
) {
    let Some(mut client) = wait_client(&mut client_rx).await else {
        return;
    };
    let prefix = prefix(&cfg.cluster);
    loop {
        let read = client.get(prefix.clone(), Some(GetOptions::new().with_prefix()));
        let Some(resp) = call(&events, "reading the keys", false, read).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let lease = *lease_rx.borrow();
        let keys = resp
            .kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    holder_of(kv, &cfg.node, lease),
                )
            })
            .collect();
        send(&events, StoreEvent::Holders { keys, full: true }).await;
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let watch = client.watch(prefix.clone(), Some(opts));
        let Some(mut stream) = call(&events, "watching the keys", false, watch).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        // Read again now and then: a watch stream whose member went away
        // quietly says nothing until the keep-alive notices.
        let reread = tokio::time::sleep(cfg.renew_every * 3);
        tokio::pin!(reread);
        loop {
            let msg = tokio::select! {
                m = stream.message() => m,
                () = &mut reread => break,
            };
            match msg {
                Ok(Some(r)) => {
                    if r.canceled() {
                        debug!(reason = r.cancel_reason(), "witness watch cancelled");
                        break;
                    }
                    let lease = *lease_rx.borrow();
                    let keys: Vec<_> = r
                        .events()
                        .iter()
                        .filter_map(|ev| {
                            let kv = ev.kv()?;
                            let key = String::from_utf8_lossy(kv.key()).into_owned();
                            Some(match ev.event_type() {
                                EventType::Put => (key, holder_of(kv, &cfg.node, lease)),
                                EventType::Delete => (key, Holder::Free),
                            })
                        })
                        .collect();
                    if !keys.is_empty() {
                        send(&events, StoreEvent::Holders { keys, full: false }).await;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let reason = reason("watching the keys", e);
                    error(&events, reason, false).await;
                    break;
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Carries out contends and resigns, one at a time, in order.
async fn command_loop(
    cfg: StoreConfig,
    client_rx: watch::Receiver<Option<Client>>,
    lease_rx: watch::Receiver<Option<i64>>,
    mut commands: mpsc::Receiver<StoreCommand>,
    events: mpsc::Sender<StoreEvent>,
) {
    while let Some(cmd) = commands.recv().await {
        let client = client_rx.borrow().clone();
        let lease = *lease_rx.borrow();
        match cmd {
            StoreCommand::Contend { key } => {
                let (Some(mut client), Some(lease)) = (client, lease) else {
                    send(
                        &events,
                        StoreEvent::ContendFailed {
                            key,
                            reason: "no lease at the store yet".into(),
                        },
                    )
                    .await;
                    continue;
                };
                let e = match tokio::time::timeout(
                    CALL_TIMEOUT,
                    contend(&mut client, &cfg.node, lease, &key),
                )
                .await
                {
                    Ok(Ok(outcome)) => StoreEvent::Contended { key, outcome },
                    Ok(Err(e)) => StoreEvent::ContendFailed {
                        key,
                        reason: reason("contend", e),
                    },
                    Err(_) => StoreEvent::ContendFailed {
                        key,
                        reason: "contend: no answer in time".into(),
                    },
                };
                send(&events, e).await;
            }
            StoreCommand::Resign { key } => {
                let (Some(mut client), Some(lease)) = (client, lease) else {
                    continue;
                };
                let txn = Txn::new()
                    .when([
                        Compare::value(key.clone(), CompareOp::Equal, cfg.node.clone()),
                        Compare::lease(key.clone(), CompareOp::Equal, lease),
                    ])
                    .and_then([TxnOp::delete(key.clone(), None)]);
                match tokio::time::timeout(CALL_TIMEOUT, client.txn(txn)).await {
                    Ok(Ok(r)) => debug!(%key, deleted = r.succeeded(), "witness key given back"),
                    Ok(Err(e)) => {
                        debug!(%key, error = %e, "witness key not given back: it ends with the lease")
                    }
                    Err(_) => {
                        debug!(%key, "witness key not given back in time: it ends with the lease")
                    }
                }
            }
        }
    }
}

/// Create-if-absent under `lease`; a key our name holds under a previous
/// lease is replaced. `Ok(Err(holder))` when another node holds it.
async fn contend(
    client: &mut Client,
    node: &str,
    lease: i64,
    key: &str,
) -> Result<Result<(), String>, etcd_client::Error> {
    let put = || TxnOp::put(key, node, Some(PutOptions::new().with_lease(lease)));
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([put()])
        .or_else([TxnOp::get(key, None)]);
    let r = client.txn(txn).await?;
    if r.succeeded() {
        return Ok(Ok(()));
    }
    let held = r.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(g) => g.kvs().first().cloned(),
        _ => None,
    });
    let Some(kv) = held else {
        // Deleted between the compare and the read: the next contend decides.
        return Ok(Err("nobody (the key just went)".into()));
    };
    match holder_of(&kv, node, Some(lease)) {
        Holder::Ours => Ok(Ok(())),
        Holder::Free => {
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key,
                    CompareOp::Equal,
                    kv.mod_revision(),
                )])
                .and_then([put()]);
            if client.txn(txn).await?.succeeded() {
                Ok(Ok(()))
            } else {
                Ok(Err(node.to_owned() + " (a previous run)"))
            }
        }
        Holder::Other(h) => Ok(Err(h)),
        Holder::Unknown => Ok(Err("unknown".into())),
    }
}

/// Asks each member for its status, each through its own client, so the
/// status shows which are up and which leads.
async fn members_loop(cfg: StoreConfig, events: mpsc::Sender<StoreEvent>) {
    let mut clients: Vec<Option<Client>> = cfg.endpoints.iter().map(|_| None).collect();
    let mut last: Option<Vec<Member>> = None;
    loop {
        let mut members = Vec::with_capacity(cfg.endpoints.len());
        for (i, ep) in cfg.endpoints.iter().enumerate() {
            if clients[i].is_none() {
                let o = options(&cfg).with_require_leader(false);
                if let Ok(Ok(c)) =
                    tokio::time::timeout(CALL_TIMEOUT, Client::connect([ep.as_str()], Some(o)))
                        .await
                {
                    clients[i] = Some(c);
                }
            }
            let status = match &mut clients[i] {
                Some(c) => tokio::time::timeout(CALL_TIMEOUT, c.status())
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => None,
            };
            members.push(Member {
                endpoint: ep.clone(),
                reachable: status.is_some(),
                leader: status
                    .as_ref()
                    .is_some_and(|s| s.header().is_some_and(|h| h.member_id() == s.leader())),
            });
        }
        if last.as_ref() != Some(&members) {
            let up = members.iter().filter(|m| m.reachable).count();
            info!(reachable = up, of = members.len(), "witness members");
            last = Some(members.clone());
            send(&events, StoreEvent::Members(members)).await;
        }
        tokio::time::sleep(MEMBER_PROBE_EVERY).await;
    }
}

/// The endpoints' TLS: the CA (else the system's roots) and the client's
/// certificate, read now so a bad file fails the start.
pub fn tls_options(t: &crate::config::WitnessTls) -> Result<etcd_client::TlsOptions, TlsError> {
    let mut o = etcd_client::TlsOptions::new();
    match &t.ca {
        Some(ca) => {
            let pem = std::fs::read(ca).map_err(|e| TlsError::read("tls_ca", ca, e))?;
            o = o.ca_certificate(etcd_client::Certificate::from_pem(pem));
        }
        None => o = o.with_native_roots(),
    }
    if let (Some(cert), Some(key)) = (&t.cert, &t.key) {
        let c = std::fs::read(cert).map_err(|e| TlsError::read("tls_cert", cert, e))?;
        let k = std::fs::read(key).map_err(|e| TlsError::read("tls_key", key, e))?;
        o = o.identity(etcd_client::Identity::from_pem(c, k));
    }
    Ok(o)
}

/// A TLS file of `[witness]` that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("witness.{key} {path}: {source}")]
pub struct TlsError {
    key: &'static str,
    path: String,
    source: std::io::Error,
}

impl TlsError {
    fn read(key: &'static str, path: &std::path::Path, source: std::io::Error) -> TlsError {
        TlsError {
            key,
            path: path.display().to_string(),
            source,
        }
    }
}
