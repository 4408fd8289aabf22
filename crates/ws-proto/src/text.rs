//! `Utf8Bytes`: a `Bytes` known to hold valid UTF-8.

use bytes::Bytes;

/// Shared, cheaply cloned bytes that are valid UTF-8: how text messages are handed out
/// without copying them out of the read buffer.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Wraps `bytes` after checking they are UTF-8.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, core::str::Utf8Error> {
        core::str::from_utf8(&bytes)?;
        Ok(Utf8Bytes(bytes))
    }

    /// Wraps bytes the caller has already validated (the connection's incremental validator).
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(core::str::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor validated the bytes as UTF-8 (from_validated is fed only
        // by the connection after Utf8Validator accepted the whole message; the proptests in
        // connection.rs and the connection fuzz target check that path), and Bytes is
        // immutable. Re-validating here would cost a pass over every message per access.
        unsafe { core::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Gives back the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// A sub-slice `range` (byte offsets that must fall on character boundaries; panics
    /// otherwise, like `str` slicing), sharing the buffer.
    pub fn slice(&self, range: core::ops::Range<usize>) -> Utf8Bytes {
        let _ = &self.as_str()[range.clone()]; // panics off a char boundary, like str
        Utf8Bytes(self.0.slice(range))
    }
}

impl core::ops::Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<alloc::string::String> for Utf8Bytes {
    fn from(s: alloc::string::String) -> Self {
        Utf8Bytes(Bytes::from(s.into_bytes()))
    }
}

impl core::fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl core::fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
