//! What an endpoint's URL must be: absolute `http` or `https`, a host, at most 2048
//! bytes of visible ASCII.

use crate::error::{Error, Result};

/// Longest URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// An endpoint's URL, checked: `http(s)://host[:port]/path[?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    text: String,
    uri: hyper::Uri,
}

impl WebhookUrl {
    /// Checks `s`: [`Error::Invalid`] on `url` when it is longer than
    /// [`MAX_URL_BYTES`], not visible ASCII, not absolute, not `http` or `https`, without a host,
    /// with credentials (`user:pass@`) or a fragment.
    pub fn parse(s: &str) -> Result<WebhookUrl> {
        let bad = |why: &str| Error::invalid("url", why);
        if s.len() > MAX_URL_BYTES {
            return Err(bad("at most 2048 bytes"));
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "must be visible ASCII, without spaces (percent-encode the rest)",
            ));
        }
        if s.contains('#') {
            return Err(bad("must not have a fragment"));
        }
        let uri: hyper::Uri = s.parse().map_err(|_| bad("not a URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(bad("must start with http:// or https://"));
        }
        let authority = uri.authority().ok_or_else(|| bad("must name a host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("must not carry credentials"));
        }
        if authority.host().is_empty() {
            return Err(bad("must name a host"));
        }
        Ok(WebhookUrl {
            text: s.to_owned(),
            uri,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The URL for the HTTP client.
    pub fn uri(&self) -> &hyper::Uri {
        &self.uri
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https_and_refuses_the_rest() {
        for ok in [
            "https://hooks.example.com/booking",
            "http://127.0.0.1:9000/hook",
            "http://example.com",
            "http://h/p?q=1",
        ] {
            assert!(WebhookUrl::parse(ok).is_ok(), "{ok}");
        }
        let long = format!("http://h/{}", "a".repeat(MAX_URL_BYTES));
        for bad in [
            "",
            "ftp://h/",
            "h/path",
            "/relative",
            "http://user:pw@h/",
            "http://h/a b",
            "http://h/#frag",
            "http:///nohost",
            long.as_str(),
        ] {
            assert!(
                matches!(WebhookUrl::parse(bad), Err(Error::Invalid { .. })),
                "{bad}"
            );
        }
    }
}
