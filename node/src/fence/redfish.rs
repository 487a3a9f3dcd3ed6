//! The native Redfish client: a power action on a BMC over HTTPS (reqwest on
//! rustls with ring, the process's one provider), basic auth, for hosts
//! without fence-agents.
//!
//! The system is found under `/redfish/v1/Systems` (the member whose path
//! ends in the configured id, else the only member). `Status` reads
//! `PowerState`; a BMC between states (`PoweringOn`, `PoweringOff`, or no
//! `PowerState` at all) is read again every [`POLL`] until it says `On` or
//! `Off`, and the answer is an error naming the last state once the bound
//! is near. `Off` and `On` POST `ForceOff`/`On` to the system's
//! `#ComputerSystem.Reset` target and then poll until `PowerState` is the
//! new state (BMCs answer 202/204 before the power changes); `Reboot` posts
//! `ForceRestart` and does not poll (a rebooted system reads `On` before and
//! after). The whole action is bounded by the device's timeout, each
//! request by a shorter one. Errors name the method, path and HTTP status,
//! never the password.

use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use splitguard_watchdog::core::secret::redact_url;

use super::{FenceError, Op, PowerState, RedfishSpec};

/// How often `PowerState` is read while waiting for a new state.
pub const POLL: Duration = Duration::from_millis(500);
/// The longest one request may take (within the action's own bound).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of an error body a failure shows, in characters.
const BODY_LIMIT: usize = 200;
/// The longest JSON answer read (a system resource is a few KiB).
const JSON_LIMIT: usize = 1024 * 1024;
const SYSTEMS: &str = "/redfish/v1/Systems";

/// The call [`run`] makes, without the password.
pub fn describe(spec: &RedfishSpec, op: Op) -> String {
    let base = redact_url(&spec.url);
    let base = base.trim_end_matches('/');
    let system = spec.system.as_deref().unwrap_or("<id>");
    match reset_type(op) {
        Some(reset) => format!(
            "redfish POST {base}{SYSTEMS}/{system}/Actions/ComputerSystem.Reset {reset} as {}",
            spec.username
        ),
        None => format!(
            "redfish GET {base}{SYSTEMS}/{system} PowerState as {}",
            spec.username
        ),
    }
}

/// Carries out `op` on the BMC, bounded by `timeout`.
pub async fn run(
    spec: &RedfishSpec,
    op: Op,
    timeout: Duration,
) -> Result<Option<PowerState>, FenceError> {
    let started = Instant::now();
    let what = format!("{} on {}", op.as_str(), redact_url(&spec.url));
    tracing::debug!(bmc = %redact_url(&spec.url), user = %spec.username, action = op.as_str(), ?timeout, "redfish fence action");
    // The inner loops stop a little before the bound to say what they saw;
    // this is the bound itself, whatever hangs.
    let result =
        match tokio::time::timeout(timeout, act(spec, op, started + timeout * 9 / 10)).await {
            Ok(r) => r,
            Err(_) => Err(FenceError::Timeout {
                what: format!("redfish {what}"),
                after: timeout,
            }),
        };
    tracing::debug!(bmc = %redact_url(&spec.url), action = op.as_str(), ok = result.is_ok(), elapsed = ?started.elapsed(), "redfish fence action done");
    result
}

async fn act(
    spec: &RedfishSpec,
    op: Op,
    deadline: Instant,
) -> Result<Option<PowerState>, FenceError> {
    let bmc = Bmc::new(spec)?;
    let system = bmc.find_system().await?;
    match reset_type(op) {
        None => bmc.wait_power(&system.path, None, deadline).await.map(Some),
        Some(reset) => {
            let target = system
                .reset_target
                .clone()
                .unwrap_or_else(|| format!("{}/Actions/ComputerSystem.Reset", system.path));
            bmc.post_reset(&target, reset).await?;
            let want = match op {
                Op::Off => Some(PowerState::Off),
                Op::On => Some(PowerState::On),
                Op::Reboot | Op::Status => None,
            };
            if let Some(want) = want {
                bmc.wait_power(&system.path, Some(want), deadline).await?;
            }
            Ok(None)
        }
    }
}

/// The `ResetType` for an action; None for `Status`.
fn reset_type(op: Op) -> Option<&'static str> {
    match op {
        Op::Off => Some("ForceOff"),
        Op::On => Some("On"),
        Op::Reboot => Some("ForceRestart"),
        Op::Status => None,
    }
}

struct Bmc<'a> {
    spec: &'a RedfishSpec,
    client: Client,
}

/// The system resource: its path and its reset action's target.
struct System {
    path: String,
    reset_target: Option<String>,
}

impl<'a> Bmc<'a> {
    fn new(spec: &'a RedfishSpec) -> Result<Self, FenceError> {
        splitguard_watchdog::io::channels::install_crypto_provider();
        let tls = |detail: String| FenceError::Redfish {
            what: "TLS setup".into(),
            detail,
        };
        let mut builder = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A BMC on the management network is reached directly, and a
            // redirect must not carry the credentials elsewhere.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("splitguard/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &spec.ca {
            let pem =
                std::fs::read(ca).map_err(|e| tls(format!("CA file {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| tls(format!("CA file {}: {}", ca.display(), chain(&e))))?;
            if certs.is_empty() {
                return Err(tls(format!(
                    "CA file {}: no certificate in it",
                    ca.display()
                )));
            }
            builder = builder.tls_certs_only(certs);
        }
        if spec.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| tls(chain(&e)))?;
        Ok(Bmc { spec, client })
    }

    /// The system to act on, from the Systems collection.
    async fn find_system(&self) -> Result<System, FenceError> {
        let collection = self.get_json(SYSTEMS).await?;
        let members: Vec<&str> = collection
            .get("Members")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|x| x.get("@odata.id").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let what = || format!("GET {SYSTEMS}");
        let path = match &self.spec.system {
            Some(id) => {
                let suffix = format!("/{id}");
                members
                    .iter()
                    .find(|m| m.trim_end_matches('/').ends_with(&suffix))
                    .ok_or_else(|| FenceError::Redfish {
                        what: what(),
                        detail: format!(
                            "no system {id:?} among the {} member(s): {}",
                            members.len(),
                            members.join(", ")
                        ),
                    })?
            }
            None => match members.as_slice() {
                [only] => only,
                _ => {
                    return Err(FenceError::Redfish {
                        what: what(),
                        detail: format!(
                            "{} systems; name one (system = \"<id>\") when there is not exactly one",
                            members.len()
                        ),
                    });
                }
            },
        };
        let path = path.trim_end_matches('/').to_string();
        let body = self.get_json(&path).await?;
        let reset_target = body
            .pointer("/Actions/#ComputerSystem.Reset/target")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(System { path, reset_target })
    }

    /// Reads `PowerState` until it is `want` (or, without one, `On` or
    /// `Off`), every [`POLL`], until `deadline`.
    async fn wait_power(
        &self,
        system: &str,
        want: Option<PowerState>,
        deadline: Instant,
    ) -> Result<PowerState, FenceError> {
        let started = Instant::now();
        // Bounded by the deadline; the count is a second bound in case the
        // clock misbehaves.
        for _ in 0..10_000 {
            let body = self.get_json(system).await?;
            let raw = body.get("PowerState").and_then(Value::as_str);
            let state = match raw {
                Some("On") => Some(PowerState::On),
                Some("Off") => Some(PowerState::Off),
                _ => None,
            };
            match (state, want) {
                (Some(s), None) => return Ok(s),
                (Some(s), Some(w)) if s == w => return Ok(s),
                _ => {}
            }
            if Instant::now() + POLL >= deadline {
                let seen = raw.map_or("no PowerState".to_string(), |s| format!("PowerState {s:?}"));
                let detail = match want {
                    Some(w) => format!("{seen} after {:?}, not yet {w:?}", started.elapsed()),
                    None => format!("{seen} after {:?}, neither On nor Off", started.elapsed()),
                };
                return Err(FenceError::Redfish {
                    what: format!("GET {system}"),
                    detail,
                });
            }
            tokio::time::sleep(POLL).await;
        }
        Err(FenceError::Redfish {
            what: format!("GET {system}"),
            detail: "gave up polling PowerState".into(),
        })
    }

    async fn post_reset(&self, target: &str, reset: &str) -> Result<(), FenceError> {
        let body = serde_json::json!({ "ResetType": reset });
        let resp = self.send(Method::POST, target, Some(&body)).await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(status_error(&format!("POST {target} {reset}"), status, resp).await);
        }
        Ok(())
    }

    async fn get_json(&self, path: &str) -> Result<Value, FenceError> {
        let what = format!("GET {path}");
        let resp = self.send(Method::GET, path, None).await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(status_error(&what, status, resp).await);
        }
        let bytes = read_limited(resp, JSON_LIMIT)
            .await
            .map_err(|detail| FenceError::Redfish {
                what: what.clone(),
                detail,
            })?;
        serde_json::from_slice(&bytes).map_err(|e| FenceError::Redfish {
            what,
            detail: format!("not JSON: {e}"),
        })
    }

    /// One request to `path` on the BMC (a path from the BMC's own answers
    /// must stay on the BMC: an absolute URL elsewhere is refused).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, FenceError> {
        let what = format!("{method} {path}");
        let url = self.spec.url.join(path).map_err(|e| FenceError::Redfish {
            what: what.clone(),
            detail: format!("bad path: {e}"),
        })?;
        if url.origin() != self.spec.url.origin() {
            return Err(FenceError::Redfish {
                what,
                detail: "the BMC points outside itself".into(),
            });
        }
        let mut request = self
            .client
            .request(method, url)
            .basic_auth(&self.spec.username, Some(self.spec.password.expose()))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.map_err(|e| FenceError::Redfish {
            what,
            detail: chain(&e),
        })
    }
}

/// A non-2xx answer: the status and the start of the body (a Redfish error
/// names its reason in `error.message` or `@Message.ExtendedInfo`).
async fn status_error(what: &str, status: StatusCode, resp: reqwest::Response) -> FenceError {
    let body = read_limited(resp, 16 * 1024).await.unwrap_or_default();
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/@Message.ExtendedInfo/0/Message")
                .or_else(|| v.pointer("/error/message"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    let text: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(BODY_LIMIT)
        .collect();
    let detail = if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    };
    FenceError::Redfish {
        what: what.to_string(),
        detail,
    }
}

/// The body, up to `limit` bytes (more is an error).
async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    // Bounded by `limit` (each chunk is at least a byte) and the request's timeout.
    while let Some(chunk) = resp.chunk().await.map_err(|e| chain(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("answer longer than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its causes, one line (reqwest's own message says only
/// "error sending request"; the TLS reason is further down). URLs are
/// dropped: the caller names the path.
fn chain(e: &reqwest::Error) -> String {
    // reqwest's Display appends " for url (…)"; keep what precedes it.
    let head = e.to_string();
    let mut parts = vec![
        head.split(" for url (")
            .next()
            .unwrap_or_default()
            .to_string(),
    ];
    for cause in splitguard_watchdog::io::channels::causes(e) {
        if !parts.iter().any(|p| p.contains(&cause)) {
            parts.push(cause);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitguard_watchdog::core::secret::Secret;

    fn spec() -> RedfishSpec {
        RedfishSpec {
            url: url::Url::parse("https://192.0.2.206:8000").unwrap(),
            username: "admin".into(),
            password: Secret::new("s3cret"),
            system: None,
            ca: None,
            insecure: false,
        }
    }

    #[test]
    fn describe_names_the_call_without_the_password() {
        assert_eq!(
            describe(&spec(), Op::Off),
            "redfish POST https://192.0.2.206:8000/redfish/v1/Systems/<id>/Actions/ComputerSystem.Reset ForceOff as admin"
        );
        let mut s = spec();
        s.system = Some("lb02".into());
        s.url = url::Url::parse("https://admin:s3cret@192.0.2.206/").unwrap();
        let d = describe(&s, Op::Status);
        assert_eq!(
            d,
            "redfish GET https://admin:***@192.0.2.206/redfish/v1/Systems/lb02 PowerState as admin"
        );
        assert!(describe(&s, Op::Reboot).contains("ForceRestart"));
        assert!(describe(&s, Op::On).contains("Reset On as admin"));
        for op in [Op::Off, Op::On, Op::Reboot, Op::Status] {
            assert!(!describe(&s, op).contains("s3cret"));
        }
    }

    #[tokio::test]
    async fn an_unreachable_bmc_is_an_error_within_the_bound() {
        // Nothing listens on port 1 of localhost: refused at once.
        let mut s = spec();
        s.url = url::Url::parse("https://127.0.0.1:1").unwrap();
        let t = Instant::now();
        let e = run(&s, Op::Status, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(6));
        let text = e.to_string();
        assert!(text.contains("GET /redfish/v1/Systems"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[tokio::test]
    async fn a_missing_ca_file_is_named() {
        let mut s = spec();
        s.ca = Some("/nonexistent/ca.pem".into());
        let e = run(&s, Op::Status, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
