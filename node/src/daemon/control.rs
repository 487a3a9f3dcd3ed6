//! Owns the control socket at work: its server task (status out, commands in)
//! and the commands it brings. `owners` and `ack` go to the watcher; DEMOTE and
//! RESUME hold the instances (operator holds, shared with replies to pages) in
//! `run`, and belong to keepalived's own tooling beside it.

use std::time::Instant;

use crate::control::{Command, CommandRequest, ControlServer, ErrorKind, Response};
use crate::status::Status;
use splitguard_vrrp::gate::{ClaimGate, WithholdReason};
use splitguard_vrrp::instance::Cause;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::arbiter::Arbiter;
use super::instances::Instances;
use super::outputs::Outputs;
use super::{Node, Owner};

/// The control socket's server task and what stops it.
pub(super) struct Control {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Control {
    /// Serves `status`; commands come out of the returned receiver.
    pub fn start(
        server: ControlServer,
        status: watch::Receiver<Status>,
    ) -> (Control, mpsc::Receiver<CommandRequest>) {
        let (stop, stopped) = oneshot::channel::<()>();
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let task = tokio::spawn(server.serve(status, Some(cmd_tx), async {
            let _ = stopped.await;
        }));
        (Control { stop, task }, cmd_rx)
    }

    /// Stops the server and waits for it.
    pub async fn close(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Err(e)) => warn!(error = %e, "control socket ended with an error"),
            Err(e) => warn!(error = %e, "control socket task failed"),
            Ok(Ok(())) => {}
        }
    }
}

impl Node {
    /// A command from the control socket (already authorized by the server).
    pub(super) async fn on_command(&mut self, req: CommandRequest, now: Instant) {
        let CommandRequest {
            command,
            peer,
            reply,
        } = req;
        let by = format!("uid {}", peer.uid);
        let hold_it = matches!(command, Command::Demote { .. });
        match (command, &mut self.owner) {
            (Command::Owners { vip }, _) => {
                self.watching.watcher.request_owners(now, vip, reply).await;
            }
            (Command::Ack { code }, _) => {
                let r = self.watching.watcher.ack_local(now, &code, &by).await;
                let _ = reply.send(r);
            }
            (
                Command::Demote { instance } | Command::Resume { instance },
                Owner::Instances { instances, .. },
            ) if instance
                .as_ref()
                .is_some_and(|n| instances.router_index(n).is_none()) =>
            {
                let name = instance.unwrap_or_default();
                let _ = reply.send(Response::error(
                    ErrorKind::BadRequest,
                    format!("no instance named {name}"),
                ));
            }
            (
                Command::Demote { instance } | Command::Resume { instance },
                Owner::Instances { instances, arbiter },
            ) => {
                let names = hold(
                    instances,
                    arbiter.as_mut(),
                    &mut self.out,
                    instance.as_deref(),
                    hold_it,
                    Some(&by),
                    now,
                )
                .await;
                let what = if hold_it {
                    "VIPs released, held backup until resume"
                } else {
                    "hold lifted"
                };
                let _ = reply.send(Response::done(format!("{}: {what}", names.join(", "))));
            }
            (other, Owner::Keepalived(_)) => {
                let _ = reply.send(Response::error(
                    ErrorKind::Unsupported,
                    format!(
                        "{} is not available beside keepalived; reply to the page (watch_actions) or use keepalived's tools",
                        other.name()
                    ),
                ));
            }
        }
    }
}

/// An operator's DEMOTE (`hold`) or RESUME for the instance named (every one when
/// none), from the control socket (`by`) or a reply to a page: the claim gate
/// closes (through the arbiter when it runs) and a master releases its VIPs.
/// Returns the instances it held or let go.
pub(super) async fn hold(
    instances: &mut Instances,
    mut arbiter: Option<&mut Arbiter>,
    out: &mut Outputs,
    instance: Option<&str>,
    hold: bool,
    by: Option<&str>,
    now: Instant,
) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..instances.routers().len() {
        let name = instances.routers()[i].cfg.name.clone();
        if instance.is_some_and(|n| n != name) {
            continue;
        }
        match by {
            Some(by) => {
                info!(instance = %name, hold, %by, "operator hold from the control socket")
            }
            None => info!(instance = %name, hold, "operator hold from a reply"),
        }
        match arbiter.as_deref_mut() {
            Some(a) => a.set_manual_hold(now, &name, hold),
            None => instances.router_mut(i).fsm.set_claim_gate(
                now,
                if hold {
                    ClaimGate::Closed(WithholdReason::ManualHold)
                } else {
                    ClaimGate::Open
                },
            ),
        }
        if hold {
            instances.router_mut(i).fsm.handle_release(now, Cause::Held);
        }
        names.push(name);
    }
    if let Some(a) = arbiter {
        a.settle(now, instances, out).await;
    }
    for i in 0..instances.routers().len() {
        instances.run_actions(i, now, out).await;
    }
    names
}
