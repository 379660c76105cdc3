//! How long a hold lives.

use crate::error::{Error, Result};
use std::time::Duration;

/// A hold's time to live: 1 to 3600 seconds.
///
/// ```
/// use booking_core::HoldTtl;
/// assert_eq!(HoldTtl::from_secs(300).unwrap().secs(), 300);
/// assert!(HoldTtl::from_secs(0).is_err());
/// assert!(HoldTtl::from_secs(3601).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HoldTtl(u32);

impl HoldTtl {
    /// The shortest ttl, in seconds.
    pub const MIN_SECS: i64 = 1;
    /// The longest ttl, in seconds (one hour).
    pub const MAX_SECS: i64 = 3600;

    /// The ttl of `secs` seconds; [`Error::Invalid`] (field `ttl_seconds`) outside
    /// [`MIN_SECS`](Self::MIN_SECS)..=[`MAX_SECS`](Self::MAX_SECS).
    pub fn from_secs(secs: i64) -> Result<Self> {
        if (Self::MIN_SECS..=Self::MAX_SECS).contains(&secs) {
            Ok(HoldTtl(secs as u32))
        } else {
            Err(Error::invalid(
                "ttl_seconds",
                format!("must be {} to {}", Self::MIN_SECS, Self::MAX_SECS),
            ))
        }
    }

    /// In whole seconds, 1 to 3600.
    pub fn secs(self) -> u32 {
        self.0
    }

    /// As a [`Duration`].
    pub fn as_duration(self) -> Duration {
        Duration::from_secs(self.0.into())
    }
}
