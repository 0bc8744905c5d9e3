//! Media the client addresses by its own names: a slot `(resource, key)`
//! (seed 003: "the avatar of user 42" is `("user/42", "avatar")`), holding
//! at most one media, and a unique `code` (seed 001).

use super::{MediaId, check_text, truncate_for_message};
use crate::error::{Error, Result};

/// Longest slot resource, slot key or code, in characters.
pub const MAX_SLOT_CHARS: usize = 200;

/// A place for one media, named by the client; unique per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Slot {
    /// What the media belongs to, e.g. `user/42`.
    pub resource: String,
    /// Which of its media, e.g. `avatar`; empty for the resource's only one.
    pub key: String,
}

impl Slot {
    /// The slot a client named in `field` (`field.resource`, `field.key`).
    pub fn parse(field: &str, resource: &str, key: &str) -> Result<Self> {
        let resource_field = format!("{field}.resource");
        if resource.trim().is_empty() {
            return Err(Error::required(
                resource_field,
                "a slot needs a resource, e.g. \"user/42\"",
            ));
        }
        check_name(&resource_field, resource)?;
        if !key.is_empty() {
            check_name(&format!("{field}.key"), key)?;
        }
        Ok(Self {
            resource: resource.to_string(),
            key: key.to_string(),
        })
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{:?}", self.resource)
        } else {
            write!(f, "({:?}, {:?})", self.resource, self.key)
        }
    }
}

/// A code a client sent in `field`: at most 200 characters, no spaces or
/// control characters.
pub fn parse_code(field: &str, s: &str) -> Result<String> {
    if s.is_empty() {
        return Err(Error::required(field, "the code is empty"));
    }
    check_name(field, s)?;
    if s.chars().any(char::is_whitespace) {
        return Err(Error::invalid(
            field,
            format!(
                "{:?} holds white space; a code is one word",
                truncate_for_message(s)
            ),
        ));
    }
    Ok(s.to_string())
}

fn check_name(field: &str, s: &str) -> Result<()> {
    check_text(field, s, MAX_SLOT_CHARS)?;
    if s.trim() != s {
        return Err(Error::invalid(
            field,
            format!(
                "{:?} starts or ends with white space",
                truncate_for_message(s)
            ),
        ));
    }
    Ok(())
}

/// What an upload into a taken slot does with the media there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SlotPolicy {
    /// The new media takes the slot; the old one is deleted, unless it is
    /// bound (then it stays, out of the slot).
    #[default]
    Replace,
    /// The new media takes the slot; the old one stays, out of the slot.
    ReplaceKeep,
    /// The upload is refused with ALREADY_EXISTS naming the holder.
    Refuse,
}

/// How a read names its media.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaRef {
    /// By id.
    Id(MediaId),
    /// By the slot it sits in.
    Slot(Slot),
    /// By its code.
    Code(String),
}
