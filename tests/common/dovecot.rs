//! A real dovecot (Debian `dovecot-imapd`) in a lab's gw, serving one maildir
//! user on plain IMAP 143: for the reply-mailbox tests.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use splitguard_lab::{Lab, LabProcess, wait_for};

pub const GW: &str = "192.0.2.254";
pub const DOVECOT: &str = "/usr/sbin/dovecot";
pub const USER: &str = "replies";
pub const PASSWORD: &str = "s3cret";
/// `nobody`: dovecot's mail user may not be root.
pub const MAIL_UID: u32 = 65534;
const BOUND: Duration = Duration::from_secs(20);

/// A dovecot in gw serving one maildir user.
pub struct Dovecot {
    conf: PathBuf,
    /// The user's maildir (`cur/`, `new/`, `tmp/`).
    pub maildir: PathBuf,
    process: Option<LabProcess>,
}

static DELIVERED: AtomicU32 = AtomicU32::new(0);

impl Dovecot {
    pub fn start(lab: &Lab) -> Dovecot {
        assert!(
            Path::new(DOVECOT).exists(),
            "{DOVECOT} is missing: install the Debian package dovecot-imapd (contrib/test.sh does)"
        );
        let dir = lab.dir().join("dovecot");
        let mail = lab.dir().join("mail");
        let maildir = mail.join(USER);
        for d in [
            &dir,
            &maildir.join("cur"),
            &maildir.join("new"),
            &maildir.join("tmp"),
        ] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        for d in [
            &mail,
            &maildir,
            &maildir.join("cur"),
            &maildir.join("new"),
            &maildir.join("tmp"),
        ] {
            std::os::unix::fs::chown(d, Some(MAIL_UID), Some(MAIL_UID)).expect("chown");
        }
        let passwd = dir.join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "{USER}:{{PLAIN}}{PASSWORD}:{MAIL_UID}:{MAIL_UID}::{}::\n",
                maildir.display()
            ),
        )
        .expect("passwd");
        let conf = dir.join("dovecot.conf");
        let d = dir.display();
        std::fs::write(
            &conf,
            format!(
                "\
protocols = imap
listen = {GW}
base_dir = {d}/run
state_dir = {d}/state
log_path = /dev/stderr
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
mail_location = maildir:{mail}/%u
service imap-login {{
  inet_listener imap {{
    port = 143
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
",
                passwd = passwd.display(),
                mail = mail.display(),
            ),
        )
        .expect("dovecot.conf");
        let mut dovecot = Dovecot {
            conf,
            maildir,
            process: None,
        };
        dovecot.restart(lab);
        dovecot
    }

    /// (Re)starts the server and waits until it accepts connections from lb02.
    pub fn restart(&mut self, lab: &Lab) {
        self.stop();
        let conf = self.conf.to_str().expect("utf-8 path").to_owned();
        let process = lab
            .spawn("gw", "dovecot", &[DOVECOT, "-F", "-c", &conf])
            .expect("dovecot starts");
        let addr: SocketAddr = format!("{GW}:143").parse().expect("address");
        let up = wait_for(BOUND, || {
            lab.within("lb02", || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()
            })
            .ok()
            .flatten()
        });
        assert!(
            up.is_some(),
            "dovecot does not listen on {addr}:\n{}",
            process.log_text()
        );
        self.process = Some(process);
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop(Duration::from_secs(5));
        }
    }

    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(LabProcess::log_text)
            .unwrap_or_default()
    }

    /// Delivers `raw` (LF line ends, as maildir stores them) into the inbox.
    pub fn deliver(&self, raw: &str) {
        let n = DELIVERED.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}.sgtest{n}.gw", Utc::now().timestamp());
        let tmp = self.maildir.join("tmp").join(&name);
        let mut f = std::fs::File::create(&tmp).expect("create tmp mail");
        f.write_all(raw.as_bytes()).expect("write mail");
        f.sync_all().expect("sync mail");
        drop(f);
        std::os::unix::fs::chown(&tmp, Some(MAIL_UID), Some(MAIL_UID)).expect("chown mail");
        std::fs::rename(&tmp, self.maildir.join("new").join(&name)).expect("rename into new/");
    }

    /// Names of the mail files dovecot moved to `cur/` (they carry the flags).
    pub fn cur_files(&self) -> Vec<String> {
        std::fs::read_dir(self.maildir.join("cur"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}
