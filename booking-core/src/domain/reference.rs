//! An integrator's own handle on a hold or booking: its order number and free-form data.

use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// An integrator's reference for a booking (an order number): 1 to 128 visible ASCII
/// characters, unique among the bookings of a show, cancelled ones included.
///
/// ```
/// use booking_core::ExternalRef;
/// assert!(ExternalRef::parse("order-2026-0042").is_ok());
/// assert!(ExternalRef::parse("has space").is_err());
/// assert!(ExternalRef::parse("").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExternalRef(String);

impl ExternalRef {
    /// The longest reference, in bytes (= characters: they are ASCII).
    pub const MAX_LEN: usize = 128;

    /// Checks a reference; [`Error::Invalid`] (field `external_ref`) unless it is 1 to
    /// [`MAX_LEN`](Self::MAX_LEN) visible ASCII characters.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(Error::invalid(
                "external_ref",
                "must be 1 to 128 characters",
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                "external_ref",
                "must be visible ASCII characters only",
            ));
        }
        Ok(ExternalRef(s.to_owned()))
    }

    pub(crate) fn from_db(s: String) -> Self {
        ExternalRef(s)
    }

    /// The reference, as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for ExternalRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Free-form data an integrator keeps with a hold or booking: a JSON object of at most
/// [`Metadata::MAX_BYTES`] as compact JSON. The engine stores and returns it, and never
/// looks inside.
///
/// ```
/// use booking_core::Metadata;
/// let m = serde_json::json!({"channel": "web", "basket": [1, 2]});
/// assert!(Metadata::parse(m.as_object().unwrap().clone()).is_ok());
/// let big = serde_json::json!({"x": "y".repeat(5000)});
/// assert!(Metadata::parse(big.as_object().unwrap().clone()).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    /// The most bytes of the object as compact JSON.
    pub const MAX_BYTES: usize = 4096;

    /// Checks an object; [`Error::Invalid`] (field `metadata`) when its compact JSON is
    /// longer than [`MAX_BYTES`](Self::MAX_BYTES).
    pub fn parse(object: Map<String, Value>) -> Result<Self> {
        if Self::compact_len(&object) > Self::MAX_BYTES {
            return Err(Error::invalid(
                "metadata",
                "must be at most 4096 bytes as JSON",
            ));
        }
        Ok(Metadata(object))
    }

    /// Read back from the database: PostgreSQL's `jsonb` reorders keys and keeps the
    /// last of a repeated one, which is what the caller gets back.
    pub(crate) fn from_db(text: &str) -> Result<Self> {
        match serde_json::from_str(text) {
            Ok(Value::Object(o)) => Ok(Metadata(o)),
            _ => Err(Error::Invariant(format!(
                "metadata is not an object: {text}"
            ))),
        }
    }

    /// The object's compact JSON, as stored (cast to `jsonb` in SQL).
    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }

    /// The object.
    pub fn as_object(&self) -> &Map<String, Value> {
        &self.0
    }

    fn compact_len(object: &Map<String, Value>) -> usize {
        // serde_json writes compact JSON; counting through a sink avoids keeping it.
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0 += b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut c = Count(0);
        serde_json::to_writer(&mut c, object).map_or(usize::MAX, |_| c.0)
    }
}

impl serde::Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// What an integrator attaches to a hold or a booking; both parts optional, each left
/// out of the JSON when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reference {
    /// The integrator's reference (order number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<ExternalRef>,
    /// The integrator's data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

impl Reference {
    /// From a row's `external_ref` (text) and `metadata` (`metadata::text`) columns.
    pub(crate) fn from_row(r: &tokio_postgres::Row) -> Result<Self> {
        Ok(Reference {
            external_ref: r
                .get::<_, Option<String>>("external_ref")
                .map(ExternalRef::from_db),
            metadata: r
                .get::<_, Option<String>>("metadata")
                .as_deref()
                .map(Metadata::from_db)
                .transpose()?,
        })
    }

    /// The reference as a text parameter.
    pub(crate) fn ref_param(&self) -> Option<&str> {
        self.external_ref.as_ref().map(ExternalRef::as_str)
    }

    /// The metadata as a text parameter (cast to `jsonb` in SQL).
    pub(crate) fn metadata_param(&self) -> Option<String> {
        self.metadata.as_ref().map(Metadata::to_json)
    }

    /// `self`'s parts where present, else `base`'s: a confirm's own reference over the
    /// one its hold carried.
    pub fn or(&self, base: &Reference) -> Reference {
        Reference {
            external_ref: self
                .external_ref
                .clone()
                .or_else(|| base.external_ref.clone()),
            metadata: self.metadata.clone().or_else(|| base.metadata.clone()),
        }
    }
}
