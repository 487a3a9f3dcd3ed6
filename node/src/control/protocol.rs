//! The control socket's wire protocol: one JSON object per line each way over a Unix
//! stream socket. Requests are `{"cmd": "...", ...}`; replies are
//! `{"ok": true, "status": {...}}`, `{"ok": true, "message": "..."}` or
//! `{"ok": false, "error": "...", "error_kind": "..."}`.
//!
//! Requests are parsed strictly (unknown commands and unknown fields are errors):
//! a misspelt `instance` on `demote` must not silently demote every instance.

use crate::status::Status;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use thiserror::Error;

/// Longest request line the server reads; anything longer closes the connection.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;
/// Longest reply line the client accepts (a status with many instances and incidents).
pub const MAX_RESPONSE_LINE: usize = 16 * 1024 * 1024;
/// How long the server waits for a full request line before it hangs up.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The latest status snapshot. Anyone who can connect may ask.
    Status,
    /// Release this node's VIPs and hold BACKUP; all instances when `instance` is null.
    Demote {
        #[serde(default)]
        instance: Option<String>,
    },
    /// Undo `demote`: let the election (and the arbiter) decide again.
    Resume {
        #[serde(default)]
        instance: Option<String>,
    },
    /// Acknowledge an open incident by its code; repeats stop.
    Ack { code: String },
    /// Who holds `vip`: the daemon asks the segment (ARP) and answers, so a
    /// monitoring user without CAP_NET_RAW gets a fresh count. Anyone may ask.
    Owners { vip: std::net::IpAddr },
}

impl Request {
    /// Every `cmd` the protocol knows, whether or not this daemon handles it yet.
    pub const COMMANDS: [&'static str; 5] = ["status", "demote", "resume", "ack", "owners"];

    /// The `cmd` word.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Demote { .. } => "demote",
            Request::Resume { .. } => "resume",
            Request::Ack { .. } => "ack",
            Request::Owners { .. } => "owners",
        }
    }

    /// Whether the request changes what the daemon does (and so needs root or the owner).
    pub fn changes_state(&self) -> bool {
        !matches!(self, Request::Status | Request::Owners { .. })
    }

    /// The part the daemon loop must act on; `None` for requests the server answers
    /// itself (status).
    pub fn into_command(self) -> Option<Command> {
        match self {
            Request::Status => None,
            Request::Demote { instance } => Some(Command::Demote { instance }),
            Request::Resume { instance } => Some(Command::Resume { instance }),
            Request::Ack { code } => Some(Command::Ack { code }),
            Request::Owners { vip } => Some(Command::Owners { vip }),
        }
    }

    /// Parses one request line (without its newline), telling an unknown command
    /// from a known one with bad arguments.
    pub fn parse(line: &[u8]) -> Result<Request, RequestError> {
        let value: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| RequestError::NotJson(e.to_string()))?;
        let cmd = match value.get("cmd") {
            Some(serde_json::Value::String(cmd)) => cmd.clone(),
            Some(_) => return Err(RequestError::MissingCmd),
            None if value.is_object() => return Err(RequestError::MissingCmd),
            None => return Err(RequestError::NotObject),
        };
        if !Self::COMMANDS.contains(&cmd.as_str()) {
            return Err(RequestError::UnknownCommand(cmd));
        }
        // serde's deny_unknown_fields does not cover unit variants; check by hand.
        if cmd == "status"
            && let Some(extra) = value
                .as_object()
                .and_then(|o| o.keys().find(|k| k.as_str() != "cmd"))
        {
            return Err(RequestError::BadArguments {
                detail: format!("unknown field `{extra}`, status takes no arguments"),
                cmd,
            });
        }
        serde_json::from_value(value).map_err(|e| RequestError::BadArguments {
            cmd,
            detail: e.to_string(),
        })
    }
}

/// A state-changing request, handed to the daemon loop with a reply channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Demote { instance: Option<String> },
    Resume { instance: Option<String> },
    Ack { code: String },
    Owners { vip: std::net::IpAddr },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Demote { .. } => "demote",
            Command::Resume { .. } => "resume",
            Command::Ack { .. } => "ack",
            Command::Owners { .. } => "owners",
        }
    }
}

/// The daemon's answer to `owners`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipOwners {
    pub vip: std::net::IpAddr,
    /// Distinct MACs holding it, this node's own included when it does.
    pub owners: Vec<String>,
    pub local: bool,
}

/// Why a request line was not understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("request is not valid JSON: {0}")]
    NotJson(String),
    #[error("request must be a JSON object like {{\"cmd\":\"status\"}}")]
    NotObject,
    #[error("request has no \"cmd\" string; try {{\"cmd\":\"status\"}}")]
    MissingCmd,
    #[error("unknown command {0:?} (known: status, demote, resume, ack, owners)")]
    UnknownCommand(String),
    #[error("bad arguments for {cmd:?}: {detail}")]
    BadArguments { cmd: String, detail: String },
}

impl RequestError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RequestError::UnknownCommand(_) => ErrorKind::UnknownCommand,
            _ => ErrorKind::BadRequest,
        }
    }
}

/// A machine-readable class for `ok: false` replies, so scripts need not match text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not JSON, not an object, or bad arguments.
    BadRequest,
    UnknownCommand,
    /// A known command this daemon cannot carry out (yet).
    Unsupported,
    /// The caller may connect but not change state.
    PermissionDenied,
    /// The request line exceeded the cap; the server closes the connection.
    RequestTooLong,
    /// No full request line arrived in time; the server closes the connection.
    Timeout,
    /// Too many control connections at once; try again.
    Busy,
    /// The daemon loop did not take or answer the command.
    Unavailable,
    /// The daemon tried and failed.
    Failed,
}

/// A reply line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// What a state-changing command did, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owners: Option<VipOwners>,
}

impl Response {
    pub fn status(status: Status) -> Self {
        Response {
            ok: true,
            status: Some(status),
            message: None,
            error: None,
            error_kind: None,
            owners: None,
        }
    }

    /// The answer to `owners`.
    pub fn owners(owners: VipOwners) -> Self {
        Response {
            owners: Some(owners),
            ..Response::done("owners")
        }
    }

    /// A command carried out.
    pub fn done(message: impl Into<String>) -> Self {
        Response {
            ok: true,
            status: None,
            message: Some(message.into()),
            error: None,
            error_kind: None,
            owners: None,
        }
    }

    pub fn error(kind: ErrorKind, error: impl Into<String>) -> Self {
        Response {
            ok: false,
            status: None,
            message: None,
            error: Some(error.into()),
            error_kind: Some(kind),
            owners: None,
        }
    }

    /// The reply as one line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        // Serializing these types cannot fail (string keys, no custom Serialize);
        // fall back to a fixed error line rather than panic in the daemon anyway.
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"ok":false,"error":"internal error: reply not serializable","error_kind":"failed"}"#
                .to_vec()
        });
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn parses_known_requests() {
        assert_eq!(Request::parse(br#"{"cmd":"status"}"#), Ok(Request::Status));
        assert_eq!(
            Request::parse(br#"{"cmd":"demote"}"#),
            Ok(Request::Demote { instance: None })
        );
        assert_eq!(
            Request::parse(br#"{"cmd":"demote","instance":"VI_1"}"#),
            Ok(Request::Demote {
                instance: Some("VI_1".into())
            })
        );
        assert_eq!(
            Request::parse(br#"{"cmd":"resume","instance":null}"#),
            Ok(Request::Resume { instance: None })
        );
        assert_eq!(
            Request::parse(br#" {"code":"4821","cmd":"ack"} "#),
            Ok(Request::Ack {
                code: "4821".into()
            })
        );
    }

    #[test]
    fn requests_serialize_as_they_parse() {
        for req in [
            Request::Status,
            Request::Demote { instance: None },
            Request::Demote {
                instance: Some("VI_2".into()),
            },
            Request::Resume { instance: None },
            Request::Ack { code: "17".into() },
        ] {
            let line = serde_json::to_vec(&req).unwrap();
            assert_eq!(Request::parse(&line), Ok(req.clone()));
            assert_eq!(
                serde_json::from_slice::<Value>(&line).unwrap()["cmd"],
                req.name()
            );
        }
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"cmd":"status"}"#
        );
    }

    #[test]
    fn tells_unknown_commands_from_bad_arguments() {
        assert_eq!(
            Request::parse(br#"{"cmd":"reboot"}"#),
            Err(RequestError::UnknownCommand("reboot".into()))
        );
        assert_eq!(
            Request::parse(br#"{"cmd":"reboot"}"#).unwrap_err().kind(),
            ErrorKind::UnknownCommand
        );
        // A typo in an argument name is an error, not "demote everything".
        let err = Request::parse(br#"{"cmd":"demote","instnace":"VI_1"}"#).unwrap_err();
        assert!(
            matches!(&err, RequestError::BadArguments { cmd, detail }
                if cmd == "demote" && detail.contains("instnace")),
            "{err:?}"
        );
        assert!(matches!(
            Request::parse(br#"{"cmd":"ack"}"#),
            Err(RequestError::BadArguments { .. })
        ));
        assert!(matches!(
            Request::parse(br#"{"cmd":"status","verbose":true}"#),
            Err(RequestError::BadArguments { .. })
        ));
        assert_eq!(Request::parse(br#"{"x":1}"#), Err(RequestError::MissingCmd));
        assert_eq!(
            Request::parse(br#"{"cmd":3}"#),
            Err(RequestError::MissingCmd)
        );
        assert_eq!(Request::parse(b"[1]"), Err(RequestError::NotObject));
        assert!(matches!(
            Request::parse(b"status"),
            Err(RequestError::NotJson(_))
        ));
        assert!(matches!(
            Request::parse(b"\xff\xfe"),
            Err(RequestError::NotJson(_))
        ));
    }

    #[test]
    fn only_status_leaves_state_alone() {
        assert!(!Request::Status.changes_state());
        assert!(Request::Demote { instance: None }.changes_state());
        assert!(Request::Resume { instance: None }.changes_state());
        assert!(Request::Ack { code: "1".into() }.changes_state());
    }

    #[test]
    fn response_shapes() {
        let v: Value = serde_json::from_slice(&Response::done("demoted VI_1").to_line()).unwrap();
        assert_eq!(v, json!({"ok": true, "message": "demoted VI_1"}));

        let v: Value =
            serde_json::from_slice(&Response::error(ErrorKind::PermissionDenied, "nope").to_line())
                .unwrap();
        assert_eq!(
            v,
            json!({"ok": false, "error": "nope", "error_kind": "permission_denied"})
        );

        let status = crate::status::tests::sample();
        let line = Response::status(status.clone()).to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["status"]["node"], "lb01");
        let back: Response = serde_json::from_slice(&line).unwrap();
        assert_eq!(back.status, Some(status));
    }
}
