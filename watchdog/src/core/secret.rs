//! A password, token or key from the config. Debug and Display print `***` so a
//! logged or debug-printed config or channel never leaks it; [`Secret::expose`] is
//! the one way to read it, which keeps every use easy to find. [`redact_url`]
//! shows a URL without the parts that carry credentials.

use serde::Deserialize;
use std::fmt;

#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `url` for a log or an error: a password in the userinfo and the whole query
/// string (where gateways and hooks put tokens) become `***`.
pub fn redact_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Only fails for URLs that cannot have a password, which this one has.
        let _ = shown.set_password(Some("***"));
    }
    if shown.query().is_some() {
        shown.set_query(Some("***"));
    }
    shown.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_passwords_and_queries() {
        let u = url::Url::parse("https://am:pw@am.example/hook?token=abc").unwrap();
        assert_eq!(redact_url(&u), "https://am:***@am.example/hook?***");
        let plain = url::Url::parse("http://192.0.2.254:8080/hook").unwrap();
        assert_eq!(redact_url(&plain), "http://192.0.2.254:8080/hook");
    }

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
