//! A three-member etcd cluster on the lab's management segment (issue 20, a
//! witness on etcd): Debian's `etcd` (etcd-server 3.4) in management-only hosts
//! s1, s2, s3 at 192.0.2.201-.203 ([`LabBuilder::etcd_members`]), driven and
//! read with `etcdctl` (etcd-client, API v3) the way an operator would.
//!
//! What etcd 3.4 does here, and the code relies on:
//! - An existing data directory wins over the `--initial-*` flags ("the server
//!   is already initialized as member before"), so [`EtcdCluster::restart`]
//!   passes the same command line, `--initial-cluster-state new` included.
//! - `etcdctl` retries an endpoint that refuses connections until its command
//!   timeout (5 s by default), so every call here sets short dial and command
//!   timeouts and asks only members that run.
//! - A leader stopped with SIGTERM hands its leadership to a peer first; when
//!   every member is stopped at once the hand-over bounces between stopping
//!   members and the last leader waits about 6 s before it gives up. So
//!   [`EtcdCluster::stop_all`] stops the followers first, and Drop kills.
//! - Each data directory preallocates 2 × 64 MB of WAL; they live in the lab's
//!   directory and go when the cluster is dropped.
//!
//! Secured clusters ([`EtcdCluster::start_with`], [`EtcdOptions`]):
//! - TLS: the lab makes a CA and a certificate per member (SAN `IP:` its
//!   address) with the `openssl` CLI, in the lab directory (keys mode 0600); the
//!   client URLs are `https://`, the peer URLs stay `http://`. etcd 3.4 takes
//!   `--trusted-ca-file` as "require a client certificate" whatever
//!   `--client-cert-auth` says, so the CA is given to the members only with
//!   [`EtcdOptions::client_cert_auth`].
//! - Auth: set up with `etcdctl` once the cluster is healthy, as an operator
//!   would: user `root` ([`ROOT_PASSWORD`]), role [`ROLE`] with readwrite on
//!   the prefix [`KEY_PREFIX`], the user of [`EtcdOptions::auth`] with that
//!   role, `auth enable`. From then on the cluster's own `etcdctl` calls are
//!   root's.
//! - etcd's default "simple" tokens expire only after `--auth-token-ttl` of
//!   disuse (each use restarts it), so a client that reads every few seconds
//!   never sees one expire; [`EtcdOptions::token_ttl`] makes the tokens JWTs
//!   (ES256, a key the lab makes) that expire that long after they were issued,
//!   however busy the client.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::netns::{Lab, LabBuilder, LabError};
use super::process::LabProcess;

/// The members: management-only hosts on [`crate::netns::MANAGEMENT_NET`]/28.
pub const MEMBERS: [(&str, Ipv4Addr); 3] = [
    ("s1", Ipv4Addr::new(192, 0, 2, 201)),
    ("s2", Ipv4Addr::new(192, 0, 2, 202)),
    ("s3", Ipv4Addr::new(192, 0, 2, 203)),
];
/// lb01's and lb02's addresses on the management segment (`mgmt0`).
pub const LB01_MGMT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 197);
pub const LB02_MGMT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 198);
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;
/// How long [`EtcdCluster::start`] waits for a leader and every member healthy
/// (measured: a leader 0.2-1.4 s after the start).
pub const START_BOUND: Duration = Duration::from_secs(20);
/// Raft timers in ms: heartbeat and election timeout (a new leader 0.6-1.5 s
/// after the old one is killed).
const HEARTBEAT_MS: u32 = 50;
const ELECTION_MS: u32 = 500;
/// `etcdctl` timeouts for the cluster's own queries.
const DIAL_TIMEOUT: &str = "--dial-timeout=500ms";
const COMMAND_TIMEOUT: &str = "--command-timeout=1s";
/// How long a member may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);
/// Log lines of each member an error carries.
const TAIL: usize = 15;
/// root's password on a cluster started with [`EtcdOptions::auth`].
pub const ROOT_PASSWORD: &str = "lab-etcd-root-password";
/// The role [`EtcdOptions::auth`]'s user gets: readwrite on [`KEY_PREFIX`].
pub const ROLE: &str = "splitguard";
/// The keys [`ROLE`] may read and write (the lab's witness uses cluster `lab`).
pub const KEY_PREFIX: &str = "/lab/";
/// How long [`EtcdCluster::start_with`] waits, once auth is enabled, for its
/// user and root to be let in.
const AUTH_BOUND: Duration = Duration::from_secs(10);
/// The certificates' validity, in days (a lab lives minutes).
const CERT_DAYS: &str = "2";

/// How [`EtcdCluster::start_with`] secures the cluster. The default is
/// [`EtcdCluster::start`]'s plain http without auth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdOptions {
    /// https on the client URLs, with certificates from a CA the lab makes
    /// ([`EtcdCluster::ca_path`]); a client certificate is made too
    /// ([`EtcdCluster::client_cert_paths`]).
    pub tls: bool,
    /// The members require a client certificate the lab's CA signed
    /// (`--client-cert-auth --trusted-ca-file`). Implies `tls`. With `auth`
    /// the certificate's CN, `auth`'s user, is who the client is: no password
    /// needed.
    pub client_cert_auth: bool,
    /// etcd's auth: this user (not `root`) and password, with role [`ROLE`].
    pub auth: Option<(String, String)>,
    /// Auth tokens are JWTs that expire this long after they are issued (whole
    /// seconds, at least 1); None: etcd's simple tokens (see the module notes).
    pub token_ttl: Option<Duration>,
}

impl EtcdOptions {
    fn tls(&self) -> bool {
        self.tls || self.client_cert_auth
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("etcd data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no etcd member {0} (the cluster has {n})", n = MEMBERS.len())]
    NoSuchMember(usize),
    #[error("etcd member {name} exited ({status}){logs}")]
    Exited {
        name: String,
        status: String,
        logs: String,
    },
    #[error("etcd: no {what} within {within:?}{logs}")]
    Timeout {
        what: &'static str,
        within: Duration,
        logs: String,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Etcdctl {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed what is not its JSON: {detail}")]
    Parse { command: String, detail: String },
    #[error("`{command}` failed ({status}): {stderr}")]
    Openssl {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("etcd options: {0}")]
    Options(String),
}

impl LabBuilder {
    /// Adds the etcd members ([`MEMBERS`]) as management-only hosts, and so the
    /// management segment; give lb01 and lb02 their management addresses with
    /// [`LabBuilder::management`] ([`LB01_MGMT`], [`LB02_MGMT`]).
    pub fn etcd_members(self) -> Self {
        MEMBERS
            .iter()
            .fold(self, |b, (name, addr)| b.management_host(name, *addr))
    }
}

struct Member {
    name: &'static str,
    addr: Ipv4Addr,
    data_dir: PathBuf,
    process: Option<LabProcess>,
    /// How many times it was started (names each run's log).
    runs: u32,
    /// Logs of earlier runs, oldest first.
    old_logs: Vec<PathBuf>,
}

/// What one member says of itself (`etcdctl endpoint status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Status {
    member_id: u64,
    leader: u64,
    raft_term: u64,
}

/// The running cluster. Borrows its lab, so it is dropped (its members
/// killed, its data directories removed) before the lab's namespaces go.
pub struct EtcdCluster<'lab> {
    lab: &'lab Lab,
    token: String,
    members: Vec<Member>,
    options: EtcdOptions,
    /// The certificates and keys, with TLS.
    pki: Option<Pki>,
    /// The JWT signing key pair (public, private), with a token TTL.
    jwt: Option<(PathBuf, PathBuf)>,
    /// Auth is enabled: the cluster's etcdctl calls authenticate as root.
    auth_enabled: bool,
}

/// The files of a TLS cluster, in the lab directory.
struct Pki {
    ca: PathBuf,
    /// Certificate and key of each member, in member order.
    servers: Vec<(PathBuf, PathBuf)>,
    /// A client certificate and key the CA signed.
    client: (PathBuf, PathBuf),
}

impl<'lab> EtcdCluster<'lab> {
    /// Starts a member in each of s1, s2, s3 (the lab must have them:
    /// [`LabBuilder::etcd_members`]) and waits, at most [`START_BOUND`], until
    /// the cluster has a leader every member names and every member is healthy.
    pub fn start(lab: &'lab Lab) -> Result<EtcdCluster<'lab>, EtcdError> {
        EtcdCluster::start_with(lab, EtcdOptions::default())
    }

    /// [`EtcdCluster::start`] secured as `options` say: the certificates are
    /// made first; auth is set up and enabled once the cluster is healthy, and
    /// checked (its user and root let in) within 10 s more.
    pub fn start_with(
        lab: &'lab Lab,
        options: EtcdOptions,
    ) -> Result<EtcdCluster<'lab>, EtcdError> {
        if let Some((user, password)) = &options.auth
            && (user.is_empty() || user == "root" || password.is_empty())
        {
            return Err(EtcdError::Options(format!(
                "auth's user {user:?} must be neither empty nor root, with a password"
            )));
        }
        if options
            .token_ttl
            .is_some_and(|t| t.as_secs() == 0 || t.subsec_nanos() != 0)
        {
            return Err(EtcdError::Options(format!(
                "token_ttl {:?}: whole seconds, at least 1",
                options.token_ttl
            )));
        }
        let user = options.auth.as_ref().map(|(u, _)| u.as_str());
        let pki = if options.tls() {
            Some(make_pki(lab, user)?)
        } else {
            None
        };
        let jwt = match options.token_ttl {
            Some(_) => Some(make_jwt_key(lab)?),
            None => None,
        };
        let mut members = Vec::new();
        for (name, addr) in MEMBERS {
            lab.host(name)?;
            members.push(Member {
                name,
                addr,
                data_dir: lab.dir().join(format!("etcd-{name}.data")),
                process: None,
                runs: 0,
                old_logs: Vec::new(),
            });
        }
        let mut cluster = EtcdCluster {
            lab,
            // Unique per lab: a member of another lab can never join.
            token: format!("{}-etcd", lab.id()),
            members,
            options,
            pki,
            jwt,
            auth_enabled: false,
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(i)?;
        }
        cluster.wait_healthy(START_BOUND)?;
        if let Some((user, password)) = cluster.options.auth.clone() {
            cluster.enable_auth(&user, &password)?;
        }
        Ok(cluster)
    }

    /// The client URLs, `http://192.0.2.201:2379` and on (`https://` with
    /// TLS), in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| self.client_url(m.addr))
            .collect()
    }

    /// The CA that signed the members' certificates (PEM), with TLS.
    pub fn ca_path(&self) -> Option<&Path> {
        self.pki.as_ref().map(|p| p.ca.as_path())
    }

    /// A client certificate and its key (PEM; the key mode 0600) that the CA
    /// signed, with TLS; its CN is [`EtcdOptions::auth`]'s user (`splitguard`
    /// without auth).
    pub fn client_cert_paths(&self) -> Option<(&Path, &Path)> {
        self.pki
            .as_ref()
            .map(|p| (p.client.0.as_path(), p.client.1.as_path()))
    }

    /// A CA of its own (`etcd-other-ca.pem` in the lab directory), unrelated to
    /// the cluster's: a client that trusts it alone verifies no member.
    pub fn unrelated_ca(&self) -> Result<PathBuf, EtcdError> {
        make_ca(self.lab, "etcd-other-ca", "splitguard lab unrelated CA")
    }

    /// Member `i`'s name (its lab host), `s1` for 0.
    pub fn name(&self, i: usize) -> Result<&'static str, EtcdError> {
        Ok(self.member(i)?.name)
    }

    /// Whether member `i`'s process runs (it was started and has not exited).
    pub fn is_running(&mut self, i: usize) -> Result<bool, EtcdError> {
        let m = self.member_mut(i)?;
        let Some(p) = m.process.as_mut() else {
            return Ok(false);
        };
        if p.try_exit().is_some() {
            m.old_logs.push(p.log.clone());
            m.process = None;
            return Ok(false);
        }
        Ok(true)
    }

    /// The member that leads, by the members' own word (`etcdctl endpoint
    /// status -w json`, each running member asked in its own namespace): the
    /// member whose `member_id` equals the `leader` it reports, and whom a
    /// majority of the members name as leader. None while there is none (an
    /// election, no quorum), or while a deposed leader has not noticed.
    pub fn leader(&self) -> Result<Option<usize>, EtcdError> {
        let statuses = self.statuses()?;
        let majority = self.members.len() / 2 + 1;
        let leader = statuses
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (i, s)))
            .filter(|(_, s)| s.member_id == s.leader && s.leader != 0)
            .filter(|(_, s)| {
                statuses
                    .iter()
                    .flatten()
                    .filter(|o| o.leader == s.member_id)
                    .count()
                    >= majority
            })
            .max_by_key(|(_, s)| s.raft_term)
            .map(|(i, _)| i);
        Ok(leader)
    }

    /// Waits up to `within` for a leader ([`EtcdCluster::leader`]).
    pub fn wait_leader(&self, within: Duration) -> Result<usize, EtcdError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = self.leader()? {
                return Ok(i);
            }
            if Instant::now() >= deadline {
                return Err(self.timeout("leader", within));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Stops member `i`: SIGTERM, then SIGKILL if it has not exited after 10 s.
    pub fn stop(&mut self, i: usize) -> Result<(), EtcdError> {
        let m = self.member_mut(i)?;
        if let Some(mut p) = m.process.take() {
            p.stop(STOP_GRACE);
            m.old_logs.push(p.log.clone());
        }
        Ok(())
    }

    /// Kills member `i` with SIGKILL (a crash, as far as its peers can tell).
    pub fn kill(&mut self, i: usize) -> Result<(), EtcdError> {
        let m = self.member_mut(i)?;
        if let Some(mut p) = m.process.take() {
            p.kill();
            m.old_logs.push(p.log.clone());
        }
        Ok(())
    }

    /// Stops every member, the followers first: a leader stopped while its
    /// peers stop too waits seconds for a hand-over that cannot happen.
    pub fn stop_all(&mut self) -> Result<(), EtcdError> {
        let leader = self.leader().ok().flatten();
        let order = (0..self.members.len())
            .filter(|i| Some(*i) != leader)
            .chain(leader);
        for i in order {
            self.stop(i)?;
        }
        Ok(())
    }

    /// Starts member `i` again on its data directory (stopping it first if it
    /// runs). It rejoins as the member it was: etcd ignores `--initial-*` for a
    /// data directory it has initialized. Does not wait; see
    /// [`EtcdCluster::wait_leader`].
    pub fn restart(&mut self, i: usize) -> Result<(), EtcdError> {
        self.stop(i)?;
        self.spawn(i)
    }

    /// The keys under `prefix` and their values, as the cluster has them now (a
    /// linearizable `etcdctl get --prefix`, asked of each running member in
    /// turn until one answers).
    pub fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, EtcdError> {
        let mut last = None;
        for m in self.members.iter().filter(|m| m.process.is_some()) {
            let mut cmd = self.etcdctl_at(m.name, &[self.client_url(m.addr)])?;
            cmd.args([COMMAND_TIMEOUT, "get", "--prefix", prefix, "-w", "json"]);
            match run(cmd) {
                Ok((command, out)) => return parse_kvs(&command, &out.stdout),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| EtcdError::Etcdctl {
            command: format!("etcdctl get --prefix {prefix}"),
            status: "not run".into(),
            stderr: "no member runs".into(),
        }))
    }

    /// An `etcdctl` (API v3) that runs in lab host `host` against every
    /// member (`--endpoints`), with a 1 s dial and a 5 s command timeout; the
    /// caller adds the command (`put k v`, `get k`) and may repeat a timeout
    /// flag with another value (the last one counts). With TLS it verifies
    /// the members with the lab's CA (`--cacert`) and presents the client
    /// certificate (`--cert`, `--key`); once auth is enabled it is root
    /// (`--user root:`[`ROOT_PASSWORD`]; another `--user` after it counts
    /// instead). Not started.
    pub fn etcdctl(&self, host: &str) -> Result<Command, EtcdError> {
        let mut cmd = self.etcdctl_at(host, &self.endpoints())?;
        cmd.args(["--dial-timeout=1s", "--command-timeout=5s"]);
        Ok(cmd)
    }

    /// The last `lines` lines of every member's log (earlier runs included),
    /// under headers, for a failure report.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut text = String::new();
        for m in &self.members {
            let logs = m.old_logs.iter().chain(m.process.as_ref().map(|p| &p.log));
            for log in logs {
                let all = std::fs::read_to_string(log).unwrap_or_default();
                let all: Vec<&str> = all.lines().collect();
                let tail = all[all.len().saturating_sub(lines)..].join("\n    ");
                let file = log.file_name().unwrap_or_default().to_string_lossy();
                text.push_str(&format!("\n  --- {} ({file}) ---\n    {tail}", m.name));
            }
        }
        text
    }

    fn member(&self, i: usize) -> Result<&Member, EtcdError> {
        self.members.get(i).ok_or(EtcdError::NoSuchMember(i))
    }

    fn member_mut(&mut self, i: usize) -> Result<&mut Member, EtcdError> {
        self.members.get_mut(i).ok_or(EtcdError::NoSuchMember(i))
    }

    /// Starts member `i`'s etcd, output to `etcd-<name>[-<run>].log`.
    fn spawn(&mut self, i: usize) -> Result<(), EtcdError> {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, peer_url(m.addr)))
            .collect::<Vec<_>>()
            .join(",");
        let lab = self.lab;
        let token = self.token.clone();
        let client = self.client_url(self.member(i)?.addr);
        let mut secure: Vec<String> = Vec::new();
        if let Some(pki) = &self.pki {
            let (cert, key) = &pki.servers[i];
            secure.extend(["--cert-file".into(), path_string(cert)]);
            secure.extend(["--key-file".into(), path_string(key)]);
            if self.options.client_cert_auth {
                secure.push("--client-cert-auth".into());
                secure.extend(["--trusted-ca-file".into(), path_string(&pki.ca)]);
            }
        }
        if self.options.auth.is_some() {
            // Authentication costs a bcrypt each time; etcd's default 10 is
            // tens of ms of CPU per etcdctl call on a small machine.
            secure.extend(["--bcrypt-cost".into(), "4".into()]);
        }
        if let (Some((public, private)), Some(ttl)) = (&self.jwt, self.options.token_ttl) {
            secure.extend([
                "--auth-token".into(),
                format!(
                    "jwt,pub-key={},priv-key={},sign-method=ES256,ttl={}s",
                    public.display(),
                    private.display(),
                    ttl.as_secs()
                ),
            ]);
        }
        let m = self.member_mut(i)?;
        if m.runs == 0 {
            // 0700, as etcd wants (3.4 warns about a directory others may read).
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&m.data_dir)
                .map_err(|source| EtcdError::DataDir {
                    path: m.data_dir.clone(),
                    source,
                })?;
        }
        m.runs += 1;
        let log = match m.runs {
            1 => format!("etcd-{}", m.name),
            n => format!("etcd-{}-{n}", m.name),
        };
        let data_dir = m.data_dir.to_string_lossy().into_owned();
        let peer = peer_url(m.addr);
        let (heartbeat, election) = (HEARTBEAT_MS.to_string(), ELECTION_MS.to_string());
        let mut argv = vec![
            "etcd",
            "--name",
            m.name,
            "--data-dir",
            &data_dir,
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &initial_cluster,
            "--initial-cluster-token",
            &token,
            "--initial-cluster-state",
            "new",
            "--heartbeat-interval",
            &heartbeat,
            "--election-timeout",
            &election,
        ];
        argv.extend(secure.iter().map(String::as_str));
        m.process = Some(lab.spawn(m.name, &log, &argv)?);
        Ok(())
    }

    /// Waits until every member runs, answers, and names the same leader,
    /// which claims itself, and `etcdctl endpoint health` passes for all.
    fn wait_healthy(&mut self, within: Duration) -> Result<(), EtcdError> {
        let deadline = Instant::now() + within;
        loop {
            for i in 0..self.members.len() {
                self.check_alive(i)?;
            }
            let statuses = self.statuses()?;
            let agreed = statuses.first().copied().flatten().is_some_and(|first| {
                first.leader != 0
                    && statuses
                        .iter()
                        .all(|s| s.is_some_and(|s| s.leader == first.leader))
                    && statuses
                        .iter()
                        .flatten()
                        .any(|s| s.member_id == first.leader)
            });
            if agreed {
                let mut cmd = self.etcdctl_at(MEMBERS[0].0, &self.endpoints())?;
                cmd.args([DIAL_TIMEOUT, COMMAND_TIMEOUT, "endpoint", "health"]);
                if run(cmd).is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(self.timeout("healthy cluster with a leader", within));
            }
            std::thread::sleep(POLL);
        }
    }

    /// An error if member `i` was started and has exited.
    fn check_alive(&mut self, i: usize) -> Result<(), EtcdError> {
        let m = self.member_mut(i)?;
        let Some(p) = m.process.as_mut() else {
            return Ok(());
        };
        let Some(status) = p.try_exit() else {
            return Ok(());
        };
        m.old_logs.push(p.log.clone());
        m.process = None;
        let name = m.name.to_string();
        Err(EtcdError::Exited {
            name,
            status: status.to_string(),
            logs: self.log_tails(TAIL),
        })
    }

    /// Each member's own status, asked in its own namespace, all at once (None
    /// for a member that is stopped or does not answer in time).
    fn statuses(&self) -> Result<Vec<Option<Status>>, EtcdError> {
        let mut children = Vec::new();
        for m in &self.members {
            if m.process.is_none() {
                children.push(None);
                continue;
            }
            let mut cmd = self.etcdctl_at(m.name, &[self.client_url(m.addr)])?;
            cmd.args([
                DIAL_TIMEOUT,
                COMMAND_TIMEOUT,
                "endpoint",
                "status",
                "-w",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
            let child = cmd.spawn().map_err(|source| LabError::Spawn {
                command: format!("etcdctl endpoint status in {}", m.name),
                source,
            })?;
            children.push(Some(child));
        }
        // Outputs are a few hundred bytes: waiting in turn cannot block a child.
        Ok(children
            .into_iter()
            .map(|child| {
                let out = child?.wait_with_output().ok()?;
                parse_status(&out.stdout)
            })
            .collect())
    }

    fn etcdctl_at(&self, host: &str, endpoints: &[String]) -> Result<Command, EtcdError> {
        let mut cmd = self.lab.command(host, "etcdctl")?;
        cmd.env("ETCDCTL_API", "3")
            // Flags below, not the environment, say where and how long.
            .env_remove("ETCDCTL_ENDPOINTS")
            .env_remove("ETCDCTL_DIAL_TIMEOUT")
            .env_remove("ETCDCTL_COMMAND_TIMEOUT")
            .env_remove("ETCDCTL_CACERT")
            .env_remove("ETCDCTL_CERT")
            .env_remove("ETCDCTL_KEY")
            .env_remove("ETCDCTL_USER")
            .stdin(Stdio::null())
            .arg(format!("--endpoints={}", endpoints.join(",")));
        if let Some(pki) = &self.pki {
            cmd.arg(format!("--cacert={}", pki.ca.display()))
                .arg(format!("--cert={}", pki.client.0.display()))
                .arg(format!("--key={}", pki.client.1.display()));
        }
        if self.auth_enabled {
            cmd.arg(format!("--user=root:{ROOT_PASSWORD}"));
        }
        Ok(cmd)
    }

    fn client_url(&self, addr: Ipv4Addr) -> String {
        let scheme = if self.options.tls() { "https" } else { "http" };
        format!("{scheme}://{addr}:{CLIENT_PORT}")
    }

    /// Sets auth up as an operator would (root, the role, the user) and
    /// enables it; then waits until the user and root are let in.
    fn enable_auth(&mut self, user: &str, password: &str) -> Result<(), EtcdError> {
        let root_password = format!("--new-user-password={ROOT_PASSWORD}");
        let user_password = format!("--new-user-password={password}");
        let steps: [&[&str]; 8] = [
            &["user", "add", "root", &root_password],
            &["role", "add", "root"],
            &["user", "grant-role", "root", "root"],
            &["role", "add", ROLE],
            &[
                "role",
                "grant-permission",
                ROLE,
                "--prefix=true",
                "readwrite",
                KEY_PREFIX,
            ],
            &["user", "add", user, &user_password],
            &["user", "grant-role", user, ROLE],
            &["auth", "enable"],
        ];
        for step in steps {
            let mut cmd = self.etcdctl_at(MEMBERS[0].0, &self.endpoints())?;
            cmd.args([DIAL_TIMEOUT, "--command-timeout=3s"]).args(step);
            run(cmd)?;
        }
        self.auth_enabled = true;
        // Every member applies `auth enable` from the log; ask each, as the
        // user and as root, until all let them in.
        let as_user = format!("--user={user}:{password}");
        let deadline = Instant::now() + AUTH_BOUND;
        loop {
            let mut last = None;
            for m in &self.members {
                for who in [Some(as_user.as_str()), None] {
                    let mut cmd = self.etcdctl_at(m.name, &[self.client_url(m.addr)])?;
                    cmd.args([DIAL_TIMEOUT, COMMAND_TIMEOUT]).args(who);
                    cmd.args(["get", "--prefix", KEY_PREFIX]);
                    if let Err(e) = run(cmd) {
                        last = Some(e);
                    }
                }
            }
            let Some(e) = last else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(EtcdError::Timeout {
                    what: "admission of the user and root after `auth enable`",
                    within: AUTH_BOUND,
                    logs: format!("; last: {e}{}", self.log_tails(TAIL)),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    fn timeout(&self, what: &'static str, within: Duration) -> EtcdError {
        EtcdError::Timeout {
            what,
            within,
            logs: self.log_tails(TAIL),
        }
    }
}

impl Drop for EtcdCluster<'_> {
    /// Kills every member (their data goes next, so a graceful stop buys
    /// nothing, and costs seconds when the leader tries to hand over to members
    /// that stop too) and removes the data directories. Logs stay in the lab's
    /// directory, kept when a test fails.
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut p) = m.process.take() {
                p.kill();
            }
            let _ = std::fs::remove_dir_all(&m.data_dir);
        }
    }
}

fn peer_url(addr: Ipv4Addr) -> String {
    format!("http://{addr}:{PEER_PORT}")
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `openssl ARGS` (a file tool: it runs in the root namespace, touching only
/// the lab directory); its stdout.
fn openssl(args: &[&str]) -> Result<Vec<u8>, EtcdError> {
    let mut cmd = Command::new("openssl");
    cmd.args(args).stdin(Stdio::null());
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| LabError::Spawn {
        command: command.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(EtcdError::Openssl {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// A new P-256 private key, written to `<name>.key` in the lab directory with
/// mode 0600.
fn make_key(lab: &Lab, name: &str) -> Result<PathBuf, EtcdError> {
    let pem = openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ])?;
    Ok(lab.write_file(&format!("{name}.key"), &String::from_utf8_lossy(&pem))?)
}

/// The extensions of the lab's certificates, one section each.
fn openssl_config(lab: &Lab) -> Result<PathBuf, EtcdError> {
    let leaf = "basicConstraints = critical,CA:FALSE\n\
                keyUsage = critical,digitalSignature,keyEncipherment\n\
                authorityKeyIdentifier = keyid\n";
    let mut text = String::from(
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = splitguard lab\n\
         [ca]\nbasicConstraints = critical,CA:TRUE\n\
         keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n",
    );
    // A member's certificate is its client's too (etcd's gateway dials the
    // member with it).
    for (name, addr) in MEMBERS {
        text.push_str(&format!(
            "[server_{name}]\n{leaf}extendedKeyUsage = serverAuth,clientAuth\n\
             subjectAltName = IP:{addr}\n"
        ));
    }
    text.push_str(&format!("[client]\n{leaf}extendedKeyUsage = clientAuth\n"));
    Ok(lab.write_file("etcd-openssl.cnf", &text)?)
}

/// A self-signed CA, `<name>.pem` and `<name>.key` in the lab directory.
fn make_ca(lab: &Lab, name: &str, cn: &str) -> Result<PathBuf, EtcdError> {
    let cnf = openssl_config(lab)?;
    let key = make_key(lab, name)?;
    let pem = lab.dir().join(format!("{name}.pem"));
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-config",
        &path_string(&cnf),
        "-extensions",
        "ca",
        "-key",
        &path_string(&key),
        "-subj",
        &format!("/CN={cn}"),
        "-days",
        CERT_DAYS,
        "-out",
        &path_string(&pem),
    ])?;
    Ok(pem)
}

/// A certificate for `cn` with the extensions of `section`, signed by the CA
/// `ca` (`<ca>.pem`, `<ca>.key`): `<name>.pem` and `<name>.key`.
fn make_cert(
    lab: &Lab,
    ca: &Path,
    name: &str,
    cn: &str,
    section: &str,
    serial: u32,
) -> Result<(PathBuf, PathBuf), EtcdError> {
    let cnf = lab.dir().join("etcd-openssl.cnf");
    let key = make_key(lab, name)?;
    let csr = lab.dir().join(format!("{name}.csr"));
    let pem = lab.dir().join(format!("{name}.pem"));
    openssl(&[
        "req",
        "-new",
        "-config",
        &path_string(&cnf),
        "-key",
        &path_string(&key),
        "-subj",
        &format!("/CN={cn}"),
        "-out",
        &path_string(&csr),
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path_string(&csr),
        "-CA",
        &path_string(ca),
        "-CAkey",
        &path_string(&ca.with_extension("key")),
        "-set_serial",
        &serial.to_string(),
        "-days",
        CERT_DAYS,
        "-extfile",
        &path_string(&cnf),
        "-extensions",
        section,
        "-out",
        &path_string(&pem),
    ])?;
    Ok((pem, key))
}

/// The cluster's CA, a certificate per member (SAN its address) and a client
/// certificate (CN `user`, else `splitguard`).
fn make_pki(lab: &Lab, user: Option<&str>) -> Result<Pki, EtcdError> {
    let ca = make_ca(lab, "etcd-ca", "splitguard lab etcd CA")?;
    let mut servers = Vec::new();
    for (serial, (name, _)) in (2..).zip(MEMBERS) {
        servers.push(make_cert(
            lab,
            &ca,
            &format!("etcd-{name}"),
            name,
            &format!("server_{name}"),
            serial,
        )?);
    }
    let cn = user.unwrap_or("splitguard");
    let client = make_cert(lab, &ca, "etcd-client", cn, "client", 1)?;
    Ok(Pki {
        ca,
        servers,
        client,
    })
}

/// The JWT signing key pair: (`etcd-jwt.pub`, `etcd-jwt.key`).
fn make_jwt_key(lab: &Lab) -> Result<(PathBuf, PathBuf), EtcdError> {
    let private = make_key(lab, "etcd-jwt")?;
    let public = lab.dir().join("etcd-jwt.pub");
    openssl(&[
        "pkey",
        "-in",
        &path_string(&private),
        "-pubout",
        "-out",
        &path_string(&public),
    ])?;
    Ok((public, private))
}

/// Runs `cmd` to the end; a non-zero exit is an error carrying stderr.
fn run(mut cmd: Command) -> Result<(String, Output), EtcdError> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| LabError::Spawn {
        command: command.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(EtcdError::Etcdctl {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok((command, out))
}

/// The one status in `etcdctl endpoint status -w json` output:
/// `[{"Endpoint": …, "Status": {"header": {"member_id": …}, "leader": …,
/// "raftTerm": …}}]` (64-bit ids, which serde_json keeps exact).
fn parse_status(stdout: &[u8]) -> Option<Status> {
    let v: serde_json::Value = serde_json::from_slice(stdout).ok()?;
    let s = v.as_array()?.first()?.get("Status")?;
    Some(Status {
        member_id: s.get("header")?.get("member_id")?.as_u64()?,
        leader: s.get("leader")?.as_u64()?,
        raft_term: s.get("raftTerm")?.as_u64()?,
    })
}

/// The key-value pairs of `etcdctl get -w json` output (base64 keys and
/// values; `kvs` is absent when nothing matched).
fn parse_kvs(command: &str, stdout: &[u8]) -> Result<Vec<(String, String)>, EtcdError> {
    let err = |detail: &str| EtcdError::Parse {
        command: command.to_string(),
        detail: format!("{detail}: {}", String::from_utf8_lossy(stdout).trim()),
    };
    let v: serde_json::Value = serde_json::from_slice(stdout).map_err(|e| err(&e.to_string()))?;
    let Some(kvs) = v.get("kvs") else {
        return Ok(Vec::new());
    };
    let field = |kv: &serde_json::Value, name: &str| {
        // A key or value never set is left out of the JSON: empty.
        let text = kv.get(name).and_then(|x| x.as_str()).unwrap_or("");
        base64_decode(text)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .ok_or_else(|| err(&format!("{name} is not base64")))
    };
    kvs.as_array()
        .ok_or_else(|| err("kvs is not a list"))?
        .iter()
        .map(|kv| Ok((field(kv, "key")?, field(kv, "value")?)))
        .collect()
}

/// Standard base64 with padding (what Go's encoding/json makes of []byte).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    if !text.len().is_multiple_of(4) || text.len() - bytes.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (k, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * k);
        }
        let n = chunk.len() * 6 / 8;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_go_writes_it() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("Zm9vYg==").unwrap(), b"foob");
        assert_eq!(base64_decode("Zm9vYmE=").unwrap(), b"fooba");
        assert_eq!(base64_decode("/+8=").unwrap(), [0xff, 0xef]);
        assert!(base64_decode("Zm9").is_none());
        assert!(base64_decode("Zm9v!A==").is_none());
    }

    #[test]
    fn status_and_kvs_from_etcdctl_json() {
        // etcdctl 3.4.23's output, as printed.
        let status = br#"[{"Endpoint":"http://192.0.2.202:2379","Status":{"header":{"cluster_id":9351817424542096043,"member_id":6463807070343348596,"revision":1,"raft_term":3},"version":"3.4.23","dbSize":20480,"leader":17132754139172457503,"raftIndex":9,"raftTerm":3,"raftAppliedIndex":9,"dbSizeInUse":16384}}]"#;
        assert_eq!(
            parse_status(status),
            Some(Status {
                member_id: 6463807070343348596,
                leader: 17132754139172457503,
                raft_term: 3,
            })
        );
        assert_eq!(parse_status(b""), None);
        let kvs = br#"{"header":{"cluster_id":9351817424542096043,"member_id":8127952611153459510,"revision":2,"raft_term":3},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}],"count":1}"#;
        assert_eq!(
            parse_kvs("get", kvs).unwrap(),
            vec![("foo".to_string(), "bar".to_string())]
        );
        let none = br#"{"header":{"cluster_id":1,"member_id":2,"revision":2,"raft_term":3}}"#;
        assert!(parse_kvs("get", none).unwrap().is_empty());
        assert!(parse_kvs("get", b"Error").is_err());
    }
}
