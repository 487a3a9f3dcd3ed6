//! Small value types the config hands out: [`Vip`] (an address with its prefix
//! length), [`Secret`] (a string that never prints), [`HttpUrl`] and
//! [`Template`] (whose Debug/Display hide credentials a URL may carry), and
//! [`Argv`] (a command line as a list, never a shell string).

use std::fmt;
use std::net::IpAddr;
use std::ops::Deref;
use std::str::FromStr;

use serde::Deserialize;
use url::Url;

/// A command and its arguments, run without a shell.
pub type Argv = Vec<String>;

/// A virtual address in CIDR form, e.g. `10.0.0.3/24` or `2001:db8::3/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// Why a VIP string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VipError {
    #[error("VIP {0:?} needs a prefix length in CIDR form, e.g. \"{0}/24\"")]
    NoPrefix(String),
    #[error("VIP {0:?} does not start with an IP address")]
    BadAddress(String),
    #[error("VIP {value:?} has prefix length {prefix:?}; it must be 0-{max} for this family")]
    BadPrefix {
        value: String,
        prefix: String,
        max: u8,
    },
}

impl Vip {
    /// True for an IPv6 VIP.
    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }
}

impl FromStr for Vip {
    type Err = VipError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| VipError::NoPrefix(s.to_owned()))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| VipError::BadAddress(s.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bad_prefix = || VipError::BadPrefix {
            value: s.to_owned(),
            prefix: prefix.to_owned(),
            max,
        };
        // `u8::from_str` accepts a leading '+', which CIDR notation does not.
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_prefix());
        }
        let prefix_len: u8 = prefix.parse().map_err(|_| bad_prefix())?;
        if prefix_len > max {
            return Err(bad_prefix());
        }
        Ok(Vip { addr, prefix_len })
    }
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl<'de> Deserialize<'de> for Vip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "a VIP in CIDR form, e.g. \"10.0.0.3/24\"", str::parse)
    }
}

/// Deserializes a string through `parse`. The parse runs inside the visitor, so a
/// failure is raised while the toml deserializer still knows the value's span (an
/// error returned after `String::deserialize` would get the enclosing array's).
pub(crate) fn from_str_with<'de, D, T, E>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    E: fmt::Display,
{
    struct V<T, E> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, E>,
    }
    impl<T, E: fmt::Display> serde::de::Visitor<'_> for V<T, E> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<Er: serde::de::Error>(self, v: &str) -> Result<T, Er> {
            (self.parse)(v).map_err(Er::custom)
        }
    }
    d.deserialize_str(V { expecting, parse })
}

/// Passwords, tokens and keys: the watchdog's type, so channels get them masked.
pub use splitguard_watchdog::core::secret::Secret;

/// An http(s) URL from the config. Derefs to [`Url`] for use; Debug and Display
/// mask a password in the userinfo and the query string, where gateways and hooks
/// often carry credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl(Url);

impl HttpUrl {
    pub fn new(url: Url) -> Self {
        HttpUrl(url)
    }

    pub fn into_url(self) -> Url {
        self.0
    }
}

impl Deref for HttpUrl {
    type Target = Url;

    fn deref(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&splitguard_watchdog::core::secret::redact_url(&self.0))
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// A text template with `{to}`/`{text}` placeholders (the generic SMS gateway's
/// URL or body). Derefs to `str`; Debug and Display keep only what precedes a `?`
/// (for a body, nothing), since the rest often holds a gateway password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Template(String);

impl Template {
    pub fn new(text: impl Into<String>) -> Self {
        Template(text.into())
    }
}

impl Deref for Template {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once('?') {
            Some((head, _)) if head.contains("://") => write!(f, "{head}?***"),
            None if self.0.contains("://") => f.write_str(&self.0),
            _ => f.write_str("***"),
        }
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vip_parses_cidr() {
        let v: Vip = "10.0.0.3/24".parse().unwrap();
        assert_eq!(v.addr, "10.0.0.3".parse::<IpAddr>().unwrap());
        assert_eq!(v.prefix_len, 24);
        assert_eq!(v.to_string(), "10.0.0.3/24");
        let v6: Vip = "2001:db8::3/64".parse().unwrap();
        assert!(v6.is_ipv6());
    }

    #[test]
    fn vip_rejects_non_cidr() {
        assert_eq!(
            "10.0.0.3".parse::<Vip>(),
            Err(VipError::NoPrefix("10.0.0.3".into()))
        );
        assert!(matches!(
            "10.0.0.3/33".parse::<Vip>(),
            Err(VipError::BadPrefix { max: 32, .. })
        ));
        assert!(matches!(
            "10.0.0.3/+4".parse::<Vip>(),
            Err(VipError::BadPrefix { .. })
        ));
        assert!(matches!(
            "10.0.0.3/".parse::<Vip>(),
            Err(VipError::BadPrefix { .. })
        ));
        assert!(matches!(
            "2001:db8::1/129".parse::<Vip>(),
            Err(VipError::BadPrefix { max: 128, .. })
        ));
        assert!(matches!(
            "lb01/24".parse::<Vip>(),
            Err(VipError::BadAddress(_))
        ));
    }

    #[test]
    fn urls_and_templates_hide_credentials() {
        let u = HttpUrl::new(Url::parse("https://am:pw@am.example/hook?token=abc").unwrap());
        assert_eq!(u.to_string(), "https://am:***@am.example/hook?***");
        assert_eq!(format!("{u:?}"), "\"https://am:***@am.example/hook?***\"");
        assert_eq!(u.as_str(), "https://am:pw@am.example/hook?token=abc");
        let t = Template::new("http://gw.example/send?user=u&passwd=p&to={to}&text={text}");
        assert_eq!(t.to_string(), "http://gw.example/send?***");
        assert_eq!(Template::new("pass=p&to={to}").to_string(), "***");
        assert_eq!(
            &*t,
            "http://gw.example/send?user=u&passwd=p&to={to}&text={text}"
        );
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
