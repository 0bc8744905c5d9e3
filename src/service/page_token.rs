//! Opaque page tokens for keyset pagination.
//!
//! A token is `v1.` followed by the URL-safe base64 of the last row's
//! `created_at` (8 bytes, big-endian) and id (16 bytes). Clients must treat
//! it as opaque; anything that does not decode is INVALID_ARGUMENT.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    domain::MediaId,
    error::{Error, Result},
    repo::Cursor,
};

const PREFIX: &str = "v1.";

/// Encodes where the next page starts.
pub fn encode(c: &Cursor) -> String {
    let mut raw = Vec::with_capacity(24);
    raw.extend_from_slice(&c.created_at.to_be_bytes());
    raw.extend_from_slice(c.id.0.as_bytes());
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
}

/// Decodes a token sent in `field`; empty means the first page.
pub fn decode(field: &str, token: &str) -> Result<Option<Cursor>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        Error::invalid(
            field,
            "the page token is not one this server issued; pass next_page_token unchanged, or an empty token for the first page",
        )
    };
    let body = token.strip_prefix(PREFIX).ok_or_else(bad)?;
    let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
    let (time, id) = raw.split_at_checked(8).ok_or_else(bad)?;
    let created_at = i64::from_be_bytes(time.try_into().map_err(|_| bad())?);
    let id = uuid::Uuid::from_slice(id).map_err(|_| bad())?;
    Ok(Some(Cursor {
        created_at,
        id: MediaId(id),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let c = Cursor {
            created_at: 1_732_000_000_000_000,
            id: MediaId::new(),
        };
        assert_eq!(decode("t", &encode(&c)).expect("valid"), Some(c));
        assert_eq!(decode("t", "").expect("empty"), None);
        for bad in ["x", "v1.", "v1.!!!", "v2.AAAA", &format!("{}A", encode(&c))] {
            assert!(decode("t", bad).is_err(), "{bad} accepted");
        }
    }
}
