//! The reply mailbox: an IMAP client (async-imap over tokio; TLS by tokio-rustls
//! with ring and the platform's roots) that hands every new mail in one mailbox
//! to the reply handler as an [`InboundReply`], once, and marks it handled on the
//! server so it stays handled across restarts.
//!
//! How a session goes: connect (implicit TLS, STARTTLS or plain), read the
//! greeting, LOGIN, CAPABILITY, SELECT the mailbox, then loop:
//! 1. `UID SEARCH UNDELETED NOT KEYWORD $SplitguardHandled`: every mail not yet
//!    handled, oldest first. The keyword, not `\Seen`, decides, so a person who
//!    reads the reply mailbox in a mail client cannot make the poller miss a
//!    reply. A server that cannot store keywords (no `\*` in PERMANENTFLAGS)
//!    falls back to `UNSEEN` and `\Seen` alone. Two nodes that poll one mailbox
//!    need one keyword each ([`PollerOptions::keyword_for_node`]): with a shared
//!    keyword the first node to see a reply takes it from the other.
//! 2. For each: `UID FETCH (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[]<0.N>)`
//!    (PEEK: nothing changes on the server before the reply is handed on; at
//!    most [`PollerOptions::max_message_bytes`] bytes, replies are short), parse
//!    it ([`crate::core::reply::mail_parse`]), hand it on (or log why not: machine-sent mail,
//!    no sender), then `UID STORE +FLAGS.SILENT (\Seen $SplitguardHandled)`.
//!    Handing on comes before marking: a crash or a lost connection in between
//!    hands the reply on again after the restart (at least once; its
//!    `reference`, the Message-ID, lets the reply gate drop the copy), never
//!    loses it.
//!    On the first start every mail already in the mailbox is handed on (the
//!    reply gate rejects codes no longer open): give the poller a mailbox of
//!    its own.
//! 3. Wait for news: IDLE when the server offers it, re-issued every
//!    [`PollerOptions::idle_timeout`] (RFC 2177: servers may drop idle clients
//!    after 30 minutes); otherwise sleep `poll_interval`. Then scan again.
//!    Mail the server announces beside a command's answer (an EXISTS count
//!    above the last one) is looked at at once, without waiting.
//!
//! Every step is bounded (connect, each command, the greeting), and any failure
//! closes the session and reconnects after a backoff that doubles from
//! [`PollerOptions::backoff_min`] to [`PollerOptions::backoff_max`] and goes back
//! to the minimum once a session completes a scan. Failures are logged (warn)
//! with the server, the attempt number and the delay; none panics, none ends
//! the poller. The poller ends when told to ([`MailboxPoller::shutdown`], or
//! when the [`MailboxPoller`] is dropped) or when the receiving end of its
//! channel is gone.
//!
//! With `tls = starttls` nothing is sent in clear before the TLS handshake: a
//! server that refuses STARTTLS is an error (retried), not a reason to log in
//! without it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{MailboxDatum, Response, Status};
use async_imap::types::{Flag, UnsolicitedResponse};
use async_imap::{Client, Session};
use chrono::Utc;
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tracing::Instrument;

use crate::core::reply::InboundReply;
use crate::core::reply::mail_parse::parse_reply;
use crate::core::secret::Secret;

/// The keyword a handled mail gets (with `\Seen`).
pub const HANDLED_KEYWORD: &str = "$SplitguardHandled";

/// How the IMAP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapTls {
    /// TLS from the first byte (IMAPS, port 993).
    Implicit,
    /// Plain connection upgraded with STARTTLS, which must succeed (port 143).
    Starttls,
    /// No TLS (a server on localhost or a lab).
    None,
}

/// The reply mailbox as configured (`[reply] imap`).
#[derive(Debug, Clone)]
pub struct ImapSpec {
    pub host: String,
    pub port: u16,
    pub tls: ImapTls,
    pub username: String,
    pub password: Secret,
    pub mailbox: String,
    /// How often to look when the server offers no IDLE.
    pub poll_interval: Duration,
}

/// Timeouts, backoff and limits; the defaults suit a real server, tests shorten
/// them.
#[derive(Debug, Clone)]
pub struct PollerOptions {
    /// For the TCP connect and the TLS handshake.
    pub connect_timeout: Duration,
    /// For each IMAP command (and the greeting).
    pub command_timeout: Duration,
    /// How long one IDLE lasts before DONE and a fresh scan (RFC 2177 asks for
    /// less than 29 minutes).
    pub idle_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How much of each mail is fetched; longer mails are cut (replies are a
    /// few lines, and their text part comes first).
    pub max_message_bytes: u32,
    /// The keyword handled mail gets, [`HANDLED_KEYWORD`] by default. Used as
    /// an IMAP atom: other characters become `_` (see [`atom`]).
    pub keyword: String,
}

impl Default for PollerOptions {
    fn default() -> Self {
        PollerOptions {
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(5 * 60),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5 * 60),
            max_message_bytes: 256 * 1024,
            keyword: HANDLED_KEYWORD.to_owned(),
        }
    }
}

impl PollerOptions {
    /// Marks handled mail with `$SplitguardHandled_<node>` instead, so several
    /// nodes can poll one mailbox and each sees every reply. Characters an
    /// IMAP atom cannot carry become `_`.
    pub fn keyword_for_node(mut self, node: &str) -> Self {
        self.keyword = atom(&format!("{HANDLED_KEYWORD}_{node}"));
        self
    }
}

/// The shortest poll interval, IDLE, timeout or backoff the poller accepts:
/// zero would make it spin.
const MIN_WAIT: Duration = Duration::from_millis(100);

impl PollerOptions {
    /// Zeros raised to [`MIN_WAIT`] (or a few kB), the maximum backoff at least
    /// the minimum, the keyword an atom.
    fn sane(self) -> Self {
        let backoff_min = self.backoff_min.max(MIN_WAIT);
        PollerOptions {
            connect_timeout: self.connect_timeout.max(MIN_WAIT),
            command_timeout: self.command_timeout.max(MIN_WAIT),
            idle_timeout: self.idle_timeout.max(MIN_WAIT),
            backoff_min,
            backoff_max: self.backoff_max.max(backoff_min),
            max_message_bytes: self.max_message_bytes.max(4096),
            keyword: atom(&self.keyword),
        }
    }
}

/// `s` as an IMAP keyword: `$`, letters, digits, `-`, `_` and `.` are kept,
/// anything else becomes `_` (an empty keyword becomes [`HANDLED_KEYWORD`]).
pub fn atom(s: &str) -> String {
    if s.is_empty() {
        return HANDLED_KEYWORD.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '$' | '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How the poller is doing, for status output and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxStatus {
    /// Logged in with the mailbox selected.
    pub connected: bool,
    /// The server offers IDLE (known once connected).
    pub uses_idle: bool,
    /// Handled mail is marked with the keyword (false: `\Seen` alone).
    pub uses_keyword: bool,
    /// Failed attempts since the last good scan.
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// Replies handed on since start.
    pub forwarded: u64,
    /// Mails marked handled without being handed on (machine-sent, no sender).
    pub skipped: u64,
    /// Completed scans since start.
    pub scans: u64,
}

/// Why a session failed (each is logged and followed by a reconnect).
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("TLS setup: {0}")]
    TlsSetup(String),
    #[error("TLS handshake with {host}: {source}")]
    Tls { host: String, source: io::Error },
    #[error("the server closed the connection before its greeting")]
    NoGreeting,
    #[error("the server refused the connection: {0}")]
    Refused(String),
    #[error("STARTTLS failed (nothing was sent in clear): {0}")]
    Starttls(async_imap::error::Error),
    #[error("LOGIN as {user:?} refused: {source}")]
    Login {
        user: String,
        source: async_imap::error::Error,
    },
    #[error("{command}: {source}")]
    Command {
        command: &'static str,
        source: async_imap::error::Error,
    },
    #[error("{0}: no answer within {1:?}")]
    Timeout(&'static str, Duration),
    #[error("the connection was closed while idle")]
    Lost,
}

/// A running poller. Dropping it stops the poller too (at its next await).
pub struct MailboxPoller {
    stop: watch::Sender<bool>,
    status: watch::Receiver<MailboxStatus>,
    task: JoinHandle<()>,
}

impl MailboxPoller {
    /// A snapshot of the poller's state.
    pub fn status(&self) -> MailboxStatus {
        self.status.borrow().clone()
    }

    /// The state as it changes.
    pub fn watch_status(&self) -> watch::Receiver<MailboxStatus> {
        self.status.clone()
    }

    /// The poller has ended (shut down, or its receiver is gone).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the poller to stop (it leaves IDLE and logs out) and waits up to
    /// `grace`; past that it is aborted. A reply being handed on when it stops
    /// stays unmarked and is handed on again by the next poller.
    pub async fn shutdown(self, grace: Duration) {
        let MailboxPoller { stop, task, .. } = self;
        let _ = stop.send(true);
        let abort = task.abort_handle();
        if tokio::time::timeout(grace, task).await.is_err() {
            abort.abort();
        }
    }
}

/// Starts polling `spec`'s mailbox with the default options; replies go to `tx`.
/// Must be called within a tokio runtime.
pub fn spawn_mailbox_poller(spec: ImapSpec, tx: mpsc::Sender<InboundReply>) -> MailboxPoller {
    spawn_mailbox_poller_with(spec, PollerOptions::default(), tx)
}

/// [`spawn_mailbox_poller`] with explicit options.
pub fn spawn_mailbox_poller_with(
    spec: ImapSpec,
    options: PollerOptions,
    tx: mpsc::Sender<InboundReply>,
) -> MailboxPoller {
    let spec = ImapSpec {
        poll_interval: spec.poll_interval.max(MIN_WAIT),
        ..spec
    };
    let options = options.sane();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (status_tx, status_rx) = watch::channel(MailboxStatus::default());
    let span = tracing::info_span!(
        "reply_mailbox",
        host = %spec.host,
        port = spec.port,
        mailbox = %spec.mailbox,
    );
    let poller = Poller {
        spec,
        options,
        tx,
        stop: stop_rx,
        status: status_tx,
        tls: None,
    };
    let task = tokio::spawn(poller.run().instrument(span));
    MailboxPoller {
        stop: stop_tx,
        status: status_rx,
        task,
    }
}

/// Why a session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Shutdown,
    ConsumerGone,
}

/// What woke the wait between scans.
enum Woke {
    Look,
    Stop(Stop),
}

/// What a selected mailbox allows.
struct Selected {
    uid_validity: u32,
    /// Messages in the mailbox when selected.
    exists: u32,
    uses_keyword: bool,
    uses_idle: bool,
}

struct Poller {
    spec: ImapSpec,
    options: PollerOptions,
    tx: mpsc::Sender<InboundReply>,
    stop: watch::Receiver<bool>,
    status: watch::Sender<MailboxStatus>,
    /// Built on the first TLS connect and kept.
    tls: Option<tokio_rustls::TlsConnector>,
}

/// Resolves when a stop is asked for, or the [`MailboxPoller`] is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped: stop as well.
    let _ = stop.wait_for(|s| *s).await;
}

impl Poller {
    async fn run(mut self) {
        let mut delay = self.options.backoff_min;
        loop {
            if self.tx.is_closed() {
                tracing::info!("reply mailbox: the reply handler is gone; stopping");
                break;
            }
            let mut healthy = false;
            let result = self.session(&mut healthy).await;
            self.status.send_modify(|s| s.connected = false);
            let error = match result {
                Ok(Stop::Shutdown) => {
                    tracing::info!("reply mailbox: stopped");
                    break;
                }
                Ok(Stop::ConsumerGone) => {
                    tracing::info!("reply mailbox: the reply handler is gone; stopping");
                    break;
                }
                Err(e) => e,
            };
            if healthy {
                delay = self.options.backoff_min;
            }
            let mut attempt = 0;
            let message = error.to_string();
            self.status.send_modify(|s| {
                s.consecutive_failures += 1;
                attempt = s.consecutive_failures;
                s.last_error = Some(message.clone());
            });
            // The span carries host, port and mailbox.
            tracing::warn!(
                user = %self.spec.username,
                attempt,
                retry_in = ?delay,
                error = %message,
                "reply mailbox: session failed; reconnecting"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(&mut self.stop) => {
                    tracing::info!("reply mailbox: stopped");
                    break;
                }
                () = self.tx.closed() => {}
            }
            delay = delay.saturating_mul(2).min(self.options.backoff_max);
        }
    }

    /// One connection, from connect to the first error or a stop. `healthy`
    /// turns true once a scan completed.
    async fn session(&mut self, healthy: &mut bool) -> Result<Stop, ImapError> {
        let client = self.connect().await?;
        let user = self.spec.username.clone();
        let mut session = match tokio::time::timeout(
            self.options.command_timeout,
            client.login(&user, self.spec.password.expose()),
        )
        .await
        {
            Err(_) => return Err(ImapError::Timeout("LOGIN", self.options.command_timeout)),
            Ok(Err((source, _client))) => return Err(ImapError::Login { user, source }),
            Ok(Ok(session)) => session,
        };
        let selected = self.select(&mut session).await?;
        tracing::info!(
            uses_idle = selected.uses_idle,
            uses_keyword = selected.uses_keyword,
            uid_validity = selected.uid_validity,
            "reply mailbox: connected"
        );
        self.status.send_modify(|s| {
            s.connected = true;
            s.uses_idle = selected.uses_idle;
            s.uses_keyword = selected.uses_keyword;
        });
        let mut news = News {
            rx: session.unsolicited_responses.clone(),
            exists: selected.exists,
        };
        loop {
            news.arrived();
            if let Some(stop) = self.scan(&mut session, &selected).await? {
                logout(&mut session).await;
                return Ok(stop);
            }
            if !*healthy {
                *healthy = true;
                self.status.send_modify(|s| {
                    s.consecutive_failures = 0;
                    s.last_error = None;
                });
            }
            self.status.send_modify(|s| s.scans += 1);
            // Mail that came in while we looked: look again.
            if news.arrived() {
                continue;
            }
            let woke = if selected.uses_idle {
                let (s, woke) = self.idle(session, &mut news).await?;
                session = s;
                woke
            } else {
                self.poll_wait().await
            };
            if let Woke::Stop(stop) = woke {
                logout(&mut session).await;
                return Ok(stop);
            }
        }
    }

    async fn connect(&mut self) -> Result<Client<Transport>, ImapError> {
        let addr = format!("{}:{}", self.spec.host, self.spec.port);
        let limit = self.options.connect_timeout;
        let tcp = match tokio::time::timeout(
            limit,
            TcpStream::connect((self.spec.host.as_str(), self.spec.port)),
        )
        .await
        {
            Err(_) => return Err(ImapError::Timeout("connect", limit)),
            Ok(Err(source)) => return Err(ImapError::Connect { addr, source }),
            Ok(Ok(tcp)) => tcp,
        };
        // Small commands, answered one at a time: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        match self.spec.tls {
            ImapTls::None => {
                let mut client = Client::new(Transport::Plain(tcp));
                self.greeting(&mut client).await?;
                Ok(client)
            }
            ImapTls::Implicit => {
                let tls = self.handshake(tcp).await?;
                let mut client = Client::new(Transport::Tls(Box::new(tls)));
                self.greeting(&mut client).await?;
                Ok(client)
            }
            ImapTls::Starttls => {
                let mut client = Client::new(Transport::Plain(tcp));
                self.greeting(&mut client).await?;
                let limit = self.options.command_timeout;
                match tokio::time::timeout(limit, client.run_command_and_check_ok("STARTTLS", None))
                    .await
                {
                    Err(_) => return Err(ImapError::Timeout("STARTTLS", limit)),
                    Ok(Err(e)) => return Err(ImapError::Starttls(e)),
                    Ok(Ok(())) => {}
                }
                // Whatever the server sent after its OK is dropped with the
                // plain client's buffer (no injected plaintext survives).
                let Transport::Plain(tcp) = client.into_inner() else {
                    return Err(ImapError::TlsSetup("STARTTLS on a TLS connection".into()));
                };
                let tls = self.handshake(tcp).await?;
                // No greeting after STARTTLS (RFC 3501 6.2.1).
                Ok(Client::new(Transport::Tls(Box::new(tls))))
            }
        }
    }

    async fn handshake(&mut self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, ImapError> {
        let connector = match &self.tls {
            Some(c) => c.clone(),
            None => {
                let c = tls_connector()?;
                self.tls = Some(c.clone());
                c
            }
        };
        let name = rustls::pki_types::ServerName::try_from(self.spec.host.clone())
            .map_err(|e| ImapError::TlsSetup(format!("server name {:?}: {e}", self.spec.host)))?;
        let limit = self.options.connect_timeout;
        match tokio::time::timeout(limit, connector.connect(name, tcp)).await {
            Err(_) => Err(ImapError::Timeout("TLS handshake", limit)),
            Ok(Err(source)) => Err(ImapError::Tls {
                host: self.spec.host.clone(),
                source,
            }),
            Ok(Ok(tls)) => Ok(tls),
        }
    }

    async fn greeting(&self, client: &mut Client<Transport>) -> Result<(), ImapError> {
        let limit = self.options.command_timeout;
        let greeting = match tokio::time::timeout(limit, client.read_response()).await {
            Err(_) => return Err(ImapError::Timeout("greeting", limit)),
            Ok(Err(e)) => {
                return Err(ImapError::Command {
                    command: "greeting",
                    source: e.into(),
                });
            }
            Ok(Ok(None)) => return Err(ImapError::NoGreeting),
            Ok(Ok(Some(g))) => g,
        };
        if let Response::Data {
            status: Status::Bye,
            outcome,
        } = greeting.borrow_dependent()
        {
            return Err(ImapError::Refused(
                outcome.information.as_deref().unwrap_or("BYE").to_owned(),
            ));
        }
        Ok(())
    }

    async fn select(&self, session: &mut Session<Transport>) -> Result<Selected, ImapError> {
        let limit = self.options.command_timeout;
        let caps = bounded("CAPABILITY", limit, session.capabilities()).await?;
        let uses_idle = caps.has_str("IDLE");
        let mailbox = bounded("SELECT", limit, session.select(&self.spec.mailbox)).await?;
        let keyword = self.options.keyword.as_str();
        let uses_keyword = mailbox.permanent_flags.iter().any(|f| match f {
            Flag::MayCreate => true,
            Flag::Custom(k) => k.eq_ignore_ascii_case(keyword),
            _ => false,
        });
        if !uses_keyword {
            tracing::warn!(
                keyword,
                "reply mailbox: the server cannot store keywords here; \
                 handled mail is marked \\Seen only (mail a person reads first is missed)"
            );
        }
        Ok(Selected {
            uid_validity: mailbox.uid_validity.unwrap_or(0),
            exists: mailbox.exists,
            uses_keyword,
            uses_idle,
        })
    }

    /// Hands on every mail not yet handled. Some(stop) when told to stop or
    /// the handler is gone.
    async fn scan(
        &mut self,
        session: &mut Session<Transport>,
        selected: &Selected,
    ) -> Result<Option<Stop>, ImapError> {
        let limit = self.options.command_timeout;
        let keyword = self.options.keyword.clone();
        let (query, flags) = if selected.uses_keyword {
            (
                format!("UNDELETED NOT KEYWORD {keyword}"),
                format!("+FLAGS.SILENT (\\Seen {keyword})"),
            )
        } else {
            (
                "UNDELETED UNSEEN".to_owned(),
                "+FLAGS.SILENT (\\Seen)".to_owned(),
            )
        };
        let mut uids: Vec<u32> = bounded("UID SEARCH", limit, session.uid_search(&query))
            .await?
            .into_iter()
            .collect();
        uids.sort_unstable();
        if !uids.is_empty() {
            tracing::debug!(count = uids.len(), "reply mailbox: new mail");
        }
        let max = self.options.max_message_bytes;
        let fetch_query = format!("(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[]<0.{max}>)");
        for uid in uids {
            if *self.stop.borrow() || self.stop.has_changed().is_err() {
                return Ok(Some(Stop::Shutdown));
            }
            let fetched = bounded("UID FETCH", limit, async {
                session
                    .uid_fetch(uid.to_string(), &fetch_query)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
            // Expunged since the search: nothing to do.
            let Some(mail) = fetched.into_iter().find(|f| f.uid == Some(uid)) else {
                continue;
            };
            if mail.size.is_some_and(|s| s > max) {
                tracing::warn!(
                    uid,
                    size = mail.size,
                    max,
                    "reply mailbox: mail cut to its first bytes"
                );
            }
            let received_at = mail
                .internal_date()
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or_else(Utc::now);
            let fallback = format!("imap:{}:{uid}", selected.uid_validity);
            let raw = mail.body().unwrap_or_default();
            match parse_reply(raw, &fallback, received_at) {
                Ok((reply, notes)) => {
                    tracing::info!(
                        uid,
                        from = %reply.from,
                        reference = %reply.reference,
                        subject = reply.subject.as_deref().unwrap_or(""),
                        html_only = notes.html_only,
                        no_text = notes.no_text,
                        "reply mailbox: reply handed on"
                    );
                    tokio::select! {
                        sent = self.tx.send(reply) => {
                            if sent.is_err() {
                                return Ok(Some(Stop::ConsumerGone));
                            }
                        }
                        () = stopped(&mut self.stop) => return Ok(Some(Stop::Shutdown)),
                    }
                    self.status.send_modify(|s| s.forwarded += 1);
                }
                Err(skip) => {
                    tracing::info!(
                        uid,
                        reason = %skip,
                        "reply mailbox: not a reply; marked handled, not handed on"
                    );
                    self.status.send_modify(|s| s.skipped += 1);
                }
            }
            bounded("UID STORE", limit, async {
                session
                    .uid_store(uid.to_string(), &flags)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
        }
        Ok(None)
    }

    /// One IDLE, bounded by the idle timeout; gives the session back.
    async fn idle(
        &mut self,
        session: Session<Transport>,
        news: &mut News,
    ) -> Result<(Session<Transport>, Woke), ImapError> {
        let limit = self.options.command_timeout;
        let mut handle = session.idle();
        bounded("IDLE", limit, handle.init()).await?;
        // Mail that came in between the scan and IDLE may have been announced
        // with IDLE's own continuation: look again at once.
        let woke = if news.arrived() {
            Woke::Look
        } else {
            let idle_timeout = self.options.idle_timeout;
            let (wait, _interrupt) = handle.wait_with_timeout(idle_timeout);
            tokio::select! {
                r = tokio::time::timeout(idle_timeout, wait) => match r {
                    // Keepalives (`* OK Still here`) reset the library's own
                    // timeout; the outer one bounds the IDLE whatever comes.
                    Err(_) | Ok(Ok(IdleResponse::Timeout)) => Woke::Look,
                    Ok(Ok(IdleResponse::NewData(data))) => {
                        if let Response::MailboxData(MailboxDatum::Exists(n)) = data.borrow_dependent() {
                            news.exists = *n;
                        }
                        Woke::Look
                    }
                    // The stream ended: the server closed the connection.
                    Ok(Ok(IdleResponse::ManualInterrupt)) => return Err(ImapError::Lost),
                    Ok(Err(source)) => return Err(ImapError::Command { command: "IDLE", source }),
                },
                () = stopped(&mut self.stop) => Woke::Stop(Stop::Shutdown),
                () = self.tx.closed() => Woke::Stop(Stop::ConsumerGone),
            }
        };
        let session = bounded("DONE", limit, handle.done()).await?;
        Ok((session, woke))
    }

    async fn poll_wait(&mut self) -> Woke {
        tokio::select! {
            () = tokio::time::sleep(self.spec.poll_interval) => Woke::Look,
            () = stopped(&mut self.stop) => Woke::Stop(Stop::Shutdown),
            () = self.tx.closed() => Woke::Stop(Stop::ConsumerGone),
        }
    }
}

/// What the server says beside a command's answer: async-imap queues
/// unsolicited EXISTS and EXPUNGE responses in a channel. New mail shows as a
/// message count above the one we knew (a server may repeat an unchanged
/// EXISTS; that is no news, and no reason to scan again).
struct News {
    rx: async_channel::Receiver<UnsolicitedResponse>,
    /// The mailbox's message count as last announced.
    exists: u32,
}

impl News {
    /// Whether mail came in since the last call (reads everything queued).
    fn arrived(&mut self) -> bool {
        let mut grew = false;
        while let Ok(r) = self.rx.try_recv() {
            match r {
                UnsolicitedResponse::Exists(n) => {
                    grew |= n > self.exists;
                    self.exists = n;
                }
                UnsolicitedResponse::Expunge(_) => self.exists = self.exists.saturating_sub(1),
                _ => {}
            }
        }
        grew
    }
}

/// LOGOUT, best effort and briefly: the session ends either way.
async fn logout(session: &mut Session<Transport>) {
    let _ = tokio::time::timeout(Duration::from_secs(2), session.logout()).await;
}

/// One command, bounded by `limit`.
async fn bounded<T>(
    command: &'static str,
    limit: Duration,
    fut: impl Future<Output = async_imap::error::Result<T>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(limit, fut).await {
        Err(_) => Err(ImapError::Timeout(command, limit)),
        Ok(Err(source)) => Err(ImapError::Command { command, source }),
        Ok(Ok(v)) => Ok(v),
    }
}

/// rustls with ring (the project's one provider) and the platform's roots.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, ImapError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    crate::io::channels::install_crypto_provider();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ImapError::TlsSetup(e.to_string()))?
    .with_platform_verifier()
    .map_err(|e| ImapError::TlsSetup(e.to_string()))?
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The connection under the IMAP client: plain TCP or TLS over it.
#[derive(Debug)]
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_keywords_are_imap_atoms() {
        let o = PollerOptions::default();
        assert_eq!(o.keyword, "$SplitguardHandled");
        let o = o.keyword_for_node("lb02.example com(1)");
        assert_eq!(o.keyword, "$SplitguardHandled_lb02.example_com_1_");
        assert_eq!(atom("a b\\\"c]"), "a_b__c_");
        assert_eq!(atom(""), HANDLED_KEYWORD);
    }

    #[test]
    fn options_that_would_spin_are_raised() {
        let o = PollerOptions {
            connect_timeout: Duration::ZERO,
            command_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            backoff_min: Duration::ZERO,
            backoff_max: Duration::ZERO,
            max_message_bytes: 0,
            keyword: "my keyword".into(),
        }
        .sane();
        assert_eq!(o.idle_timeout, MIN_WAIT);
        assert_eq!((o.backoff_min, o.backoff_max), (MIN_WAIT, MIN_WAIT));
        assert!(o.connect_timeout >= MIN_WAIT && o.command_timeout >= MIN_WAIT);
        assert_eq!(o.max_message_bytes, 4096);
        assert_eq!(o.keyword, "my_keyword");
        let d = PollerOptions::default();
        let s = d.clone().sane();
        assert_eq!(
            (s.idle_timeout, s.backoff_max),
            (d.idle_timeout, d.backoff_max)
        );
    }

    #[test]
    fn news_is_a_grown_message_count() {
        let (tx, rx) = async_channel::unbounded();
        let mut news = News { rx, exists: 3 };
        assert!(!news.arrived());
        tx.try_send(UnsolicitedResponse::Exists(3)).unwrap();
        assert!(!news.arrived(), "an unchanged count is no news");
        tx.try_send(UnsolicitedResponse::Recent(1)).unwrap();
        tx.try_send(UnsolicitedResponse::Exists(4)).unwrap();
        assert!(news.arrived());
        assert!(!news.arrived(), "read once");
        // One expunged, one new: the count is back at 4, but it grew from 3.
        tx.try_send(UnsolicitedResponse::Expunge(1)).unwrap();
        tx.try_send(UnsolicitedResponse::Exists(4)).unwrap();
        assert!(news.arrived());
        assert_eq!(news.exists, 4);
    }

    #[test]
    fn the_spec_never_prints_the_password() {
        let spec = ImapSpec {
            host: "192.0.2.254".into(),
            port: 143,
            tls: ImapTls::None,
            username: "replies".into(),
            password: Secret::new("hunter2"),
            mailbox: "INBOX".into(),
            poll_interval: Duration::from_secs(30),
        };
        assert!(!format!("{spec:?}").contains("hunter2"));
    }
}
