//! Group name <-> gid through the system's group database (NSS), for the socket's
//! group: the server resolves the configured name, the client names the group in
//! its "add this user to group X" hint.

use std::ffi::{CStr, CString};
use thiserror::Error;

/// Large enough for any sane group entry; the buffer doubles up to this on ERANGE.
const MAX_BUF: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum GroupError {
    #[error("unknown group {0:?}")]
    Unknown(String),
    #[error("invalid group name {0:?}")]
    Invalid(String),
    #[error("cannot look up group {name:?}: {source}")]
    Lookup {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// The gid of group `name`.
pub fn gid_by_name(name: &str) -> Result<u32, GroupError> {
    let cname = CString::new(name).map_err(|_| GroupError::Invalid(name.to_owned()))?;
    if name.is_empty() {
        return Err(GroupError::Invalid(name.to_owned()));
    }
    let found = lookup(|grp, buf, len, result| {
        // SAFETY: every pointer is valid for the call: `cname` is NUL-terminated,
        // `grp` and `result` point at live locals, `buf` has `len` writable bytes.
        unsafe { libc::getgrnam_r(cname.as_ptr(), grp, buf, len, result) }
    })
    .map_err(|source| GroupError::Lookup {
        name: name.to_owned(),
        source,
    })?;
    found
        .map(|(gid, _)| gid)
        .ok_or_else(|| GroupError::Unknown(name.to_owned()))
}

/// The name of group `gid`, if the database has one.
pub fn name_by_gid(gid: u32) -> Option<String> {
    lookup(|grp, buf, len, result| {
        // SAFETY: as in `gid_by_name`.
        unsafe { libc::getgrgid_r(gid, grp, buf, len, result) }
    })
    .ok()
    .flatten()
    .map(|(_, name)| name)
}

/// Runs a `getgr*_r` call with a growing buffer; `Ok(None)` when there is no entry.
fn lookup(
    mut call: impl FnMut(
        *mut libc::group,
        *mut libc::c_char,
        libc::size_t,
        *mut *mut libc::group,
    ) -> libc::c_int,
) -> std::io::Result<Option<(u32, String)>> {
    let mut len = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        // SAFETY: `group` is plain old data; all-zero is a valid (empty) value and
        // the call overwrites it before we read it.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = call(&mut grp, buf.as_mut_ptr(), len, &mut result);
        if rc == libc::ERANGE && len < MAX_BUF {
            len *= 2;
            continue;
        }
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success `gr_name` points at a NUL-terminated string inside `buf`,
        // which is still alive here.
        let name = unsafe { CStr::from_ptr(grp.gr_name) }
            .to_string_lossy()
            .into_owned();
        return Ok(Some((grp.gr_gid, name)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_gid_zero() {
        assert_eq!(gid_by_name("root").unwrap(), 0);
        assert_eq!(name_by_gid(0).as_deref(), Some("root"));
    }

    #[test]
    fn unknown_and_invalid_names_are_errors_that_name_the_group() {
        let err = gid_by_name("no-such-group-splitguard").unwrap_err();
        assert!(matches!(err, GroupError::Unknown(_)));
        assert!(
            err.to_string().contains("no-such-group-splitguard"),
            "{err}"
        );
        assert!(matches!(gid_by_name("a\0b"), Err(GroupError::Invalid(_))));
        assert!(matches!(gid_by_name(""), Err(GroupError::Invalid(_))));
    }

    #[test]
    fn unassigned_gid_has_no_name() {
        assert_eq!(name_by_gid(3_999_999_999), None);
    }
}
