//! How the fields of request bodies are read, the same way for every body, so that what
//! the server accepts is exactly what `openapi.json` (JSON Schema 2020-12) describes:
//!
//! - An integer field takes any JSON number whose value is an integer: `52` and `52.0`
//!   alike, as JSON Schema's `"type": "integer"` says. `52.5` (or one past `i64`) is
//!   `400 invalid_request` naming the field. Use [`Int`] for every integer field.
//! - An optional field is absent or of its type: `null` is `400 invalid_request`, like
//!   any other value of the wrong type. Use `#[serde(default, deserialize_with =
//!   "fields::present")]` on every `Option` field (collections with `#[serde(default)]`
//!   refuse `null` by themselves).
//! - The exception: the fields that `null` clears in `PATCH /shows/{id}` (`sales_start`,
//!   `sales_end`, `max_seats_per_user`) use [`nullable`]: absent, `null` or a value.

use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};
use std::fmt;

/// An integer of a request body: a JSON integer, or a number with no fractional part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Int(pub i64);

impl Int {
    /// The integer's value.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Int, D::Error> {
        d.deserialize_i64(IntVisitor)
    }
}

struct IntVisitor;

/// 2^63: every f64 below it (and at least -2^63) with no fraction is an `i64`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

impl Visitor<'_> for IntVisitor {
    type Value = Int;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
        Ok(Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
        i64::try_from(v)
            .map(Int)
            .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &"an integer below 2^63"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int, E> {
        if v.fract() != 0.0 || !v.is_finite() {
            return Err(E::invalid_type(Unexpected::Float(v), &self));
        }
        if !(-TWO_POW_63..TWO_POW_63).contains(&v) {
            return Err(E::invalid_value(
                Unexpected::Float(v),
                &"an integer from -2^63 to 2^63-1",
            ));
        }
        // Exact: `v` is integral and in range.
        Ok(Int(v as i64))
    }
}

/// For an `Option` field with `#[serde(default)]`: absent is `None`, a value of the
/// field's type is `Some`, and `null` is refused like any other wrong type.
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A body's `external_ref` and `metadata` (holds, best available, confirms), checked.
pub fn reference(
    external_ref: Option<String>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<booking_core::Reference, crate::http::ApiError> {
    Ok(booking_core::Reference {
        external_ref: external_ref
            .as_deref()
            .map(booking_core::ExternalRef::parse)
            .transpose()?,
        metadata: metadata.map(booking_core::Metadata::parse).transpose()?,
    })
}

/// A field that may be absent (`None`), `null` (`Some(None)`: clear it) or a value
/// (`Some(Some(v))`): with `#[serde(default, deserialize_with = "fields::nullable")]`.
/// Only where the API documents `null` as "clear" (see the module docs).
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Body {
        n: Int,
        #[serde(default, deserialize_with = "present")]
        opt: Option<Int>,
        #[serde(default)]
        list: Vec<Int>,
    }

    fn parse(json: &str) -> Result<Body, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_come_as_integers_or_whole_floats() {
        for (json, n) in [
            ("52", 52),
            ("52.0", 52),
            ("-3", -3),
            ("-3.0", -3),
            ("0.0", 0),
            ("-0.0", 0),
            ("5.2e1", 52),
            ("1e3", 1000),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
            ("-9223372036854775808.0", i64::MIN),
        ] {
            let body = parse(&format!("{{\"n\": {json}}}")).unwrap();
            assert_eq!(body.n, Int(n), "{json}");
        }
    }

    #[test]
    fn fractions_and_out_of_range_numbers_are_refused() {
        for json in [
            "52.5",
            "0.1",
            "-1.5",
            "1e-1",
            "9223372036854775808",
            "9223372036854775808.0",
            "1e30",
            "-1e30",
            "\"52\"",
            "true",
            "null",
        ] {
            let err = parse(&format!("{{\"n\": {json}}}")).unwrap_err();
            assert!(
                err.contains("invalid type") || err.contains("invalid value"),
                "{json}: {err}"
            );
        }
    }

    #[test]
    fn optional_fields_are_absent_or_of_their_type_never_null() {
        assert_eq!(parse(r#"{"n": 1}"#).unwrap().opt, None);
        assert_eq!(parse(r#"{"n": 1, "opt": 2.0}"#).unwrap().opt, Some(Int(2)));
        let err = parse(r#"{"n": 1, "opt": null}"#).unwrap_err();
        assert!(err.contains("invalid type: null"), "{err}");
        assert_eq!(
            parse(r#"{"n": 1, "list": [1, 2.0]}"#).unwrap().list.len(),
            2
        );
        assert!(parse(r#"{"n": 1, "list": null}"#).is_err());
        assert!(parse(r#"{"n": 1, "list": [1.5]}"#).is_err());
    }
}
