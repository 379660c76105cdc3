//! `Content-Encoding` of seat-map answers: which coding a client's `Accept-Encoding`
//! allows (RFC 9110 §12.5.3), and each body compressed at most once.
//!
//! Only seat maps are compressed: a 100,000-seat map is ~12 MB of JSON, every other
//! JSON answer is a few kilobytes at most (lists come in pages of at most 200), where
//! compression costs more time than it saves on the wire. Below [`MIN_SIZE`] a map is
//! sent as it is too.

use bytes::Bytes;
use hyper::header::{HeaderMap, ACCEPT_ENCODING};
use std::io::Write as _;
use std::sync::OnceLock;

/// Bodies shorter than this are sent without a coding: about one packet, where a
/// coding saves nothing worth its time.
pub const MIN_SIZE: usize = 1400;

/// A content coding the server can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// The body as it is.
    Identity,
    /// `gzip` (flate2).
    Gzip,
    /// `br` (Brotli).
    Br,
}

impl Coding {
    /// The token of `Content-Encoding` (`None` for identity: no header is sent).
    pub fn token(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
            Coding::Br => Some("br"),
        }
    }

    /// What the ETag of this representation ends with (see `DESIGN.md`, "Seat maps on
    /// the wire"): each representation has its own strong tag.
    pub fn tag_suffix(self) -> &'static str {
        match self {
            Coding::Identity => "",
            Coding::Gzip => "-gzip",
            Coding::Br => "-br",
        }
    }
}

/// The coding to send for the request's `Accept-Encoding`. The highest `q` wins; at
/// equal `q` the smaller body (br, then gzip, then identity). `*` stands for every
/// coding not named; `q=0` refuses one. No header: identity (a client that says
/// nothing may not decode). When even identity is refused (`identity;q=0`, or `*;q=0`
/// without identity named), identity is still sent, as RFC 9110 allows, rather than a
/// `406` a browser would show as an error.
pub fn negotiate(headers: &HeaderMap) -> Coding {
    let mut named: Vec<(String, u16)> = Vec::new();
    let mut any = false;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        any = true;
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if coding.is_empty() {
                continue;
            }
            let mut q = 1000;
            for param in parts {
                let (k, v) = param.split_once('=').unwrap_or((param, ""));
                if k.trim().eq_ignore_ascii_case("q") {
                    // A malformed weight refuses nothing it does not name clearly: 0.
                    q = parse_q(v.trim()).unwrap_or(0);
                }
            }
            named.push((coding, q));
        }
    }
    if !any {
        return Coding::Identity;
    }
    let weight = |token: &str| -> Option<u16> {
        let exact = named
            .iter()
            .filter(|(c, _)| c == token)
            .map(|(_, q)| *q)
            .max();
        let star = named
            .iter()
            .filter(|(c, _)| c == "*")
            .map(|(_, q)| *q)
            .max();
        match (exact, star) {
            (Some(q), _) => Some(q),
            (None, Some(q)) => Some(q),
            // Identity is acceptable unless refused; others only when named.
            (None, None) if token == "identity" => Some(1),
            (None, None) => None,
        }
    };
    let mut best = (Coding::Identity, 0u16);
    for (coding, token) in [
        (Coding::Br, "br"),
        (Coding::Gzip, "gzip"),
        (Coding::Identity, "identity"),
    ] {
        if let Some(q) = weight(token) {
            if q > best.1 {
                best = (coding, q);
            }
        }
    }
    best.0
}

/// A `qvalue` in thousandths: `0` to `1` with at most three decimals.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// One body and its compressed forms, each made the first time it is asked for and
/// kept: an answer cached per map version compresses once per version, whoever asks.
#[derive(Debug, Default)]
pub struct Compressed {
    gzip: OnceLock<Bytes>,
    br: OnceLock<Bytes>,
}

impl Compressed {
    /// `body` in `coding` if it was compressed already (or needs no compression).
    pub fn ready(&self, coding: Coding) -> Option<Bytes> {
        match coding {
            Coding::Identity => None,
            Coding::Gzip => self.gzip.get().cloned(),
            Coding::Br => self.br.get().cloned(),
        }
    }

    /// `body` in `coding`: compressed now if this is the first request for it (the
    /// others wait for it, then take the same bytes).
    pub fn get(&self, coding: Coding, body: &Bytes) -> Bytes {
        match coding {
            Coding::Identity => body.clone(),
            Coding::Gzip => self.gzip.get_or_init(|| gzip(body)).clone(),
            Coding::Br => self.br.get_or_init(|| brotli(body)).clone(),
        }
    }
}

/// Level 6 (zlib's default): on a 12 MB map, within a few percent of level 9's size at
/// a third of its time.
fn gzip(body: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::new(6),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default().into()
}

/// Quality 5, window 22: quality 11 (the crate's default) takes seconds on a stadium's
/// map. At 5 a 100,000-seat full map is 259 KB against gzip's 588 KB, but its first
/// request took ~450 ms longer than gzip's (booking-bench seatmap `cold_ms`, 966
/// against 516): paid once per version, and only by a client that prefers br.
fn brotli(body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() / 10);
    {
        let mut enc = brotli::CompressorWriter::new(&mut out, 64 * 1024, 5, 22);
        let _ = enc.write_all(body);
        let _ = enc.flush();
    }
    out.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hyper::header::HeaderValue;

    fn pick(v: &str) -> Coding {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        negotiate(&h)
    }

    #[test]
    fn weights_decide_and_zero_refuses() {
        assert_eq!(negotiate(&HeaderMap::new()), Coding::Identity);
        assert_eq!(pick("gzip"), Coding::Gzip);
        assert_eq!(pick("gzip, deflate, br"), Coding::Br);
        assert_eq!(pick("br;q=0, gzip"), Coding::Gzip);
        assert_eq!(pick("gzip;q=0.5, br;q=0.4"), Coding::Gzip);
        assert_eq!(pick("GZIP;Q=1.0"), Coding::Gzip);
        assert_eq!(pick("*"), Coding::Br);
        assert_eq!(pick("*;q=0, gzip"), Coding::Gzip);
        assert_eq!(pick("gzip;q=0, br;q=0"), Coding::Identity);
        assert_eq!(pick("identity"), Coding::Identity);
        assert_eq!(pick("identity;q=1, gzip;q=0.5"), Coding::Identity);
        assert_eq!(pick("deflate"), Coding::Identity);
        assert_eq!(pick("gzip;q=2"), Coding::Identity);
        assert_eq!(pick("gzip;q=0.0001"), Coding::Identity);
        assert_eq!(pick(""), Coding::Identity);
    }

    #[test]
    fn compressed_bodies_decode_to_the_body() {
        use std::io::Read as _;
        let body = Bytes::from("{\"seats\":[".repeat(500));
        let c = Compressed::default();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&c.get(Coding::Gzip, &body)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let mut out = Vec::new();
        brotli::Decompressor::new(&c.get(Coding::Br, &body)[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }
}
