//! Bindings: which object of which other service uses a media.

use super::{MediaId, check_text};
use crate::error::{Error, Result};

/// Longest module name, in characters.
pub const MAX_MODULE_CHARS: usize = 100;
/// Longest object id, in characters.
pub const MAX_OBJECT_ID_CHARS: usize = 200;

/// What identifies a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingKey {
    /// The media used.
    pub media: MediaId,
    /// The using module, e.g. "blog.post".
    pub module: String,
    /// The using object, e.g. a post id.
    pub object_id: String,
}

/// A stored binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// What it binds.
    pub key: BindingKey,
    /// When it was added, µs since the epoch.
    pub created_at: i64,
}

/// Validates a module name sent in `field`.
pub fn parse_module(field: &str, s: &str) -> Result<String> {
    parse_label(field, s, "module", MAX_MODULE_CHARS)
}

/// Validates an object id sent in `field`.
pub fn parse_object_id(field: &str, s: &str) -> Result<String> {
    parse_label(field, s, "object id", MAX_OBJECT_ID_CHARS)
}

fn parse_label(field: &str, s: &str, what: &str, max: usize) -> Result<String> {
    if s.is_empty() {
        return Err(Error::required(field, format!("a {what} is required")));
    }
    check_text(field, s, max)?;
    if s.contains(['\n', '\t', '\r']) {
        return Err(Error::invalid(
            field,
            format!("a {what} cannot contain line breaks or tabs"),
        ));
    }
    Ok(s.to_string())
}
