//! Opaque page tokens for keyset pagination.
//!
//! A token is `v2.` followed by the URL-safe base64 of: the fingerprint of
//! the query it belongs to (8 bytes), the position's parts (each a 2-byte
//! length and its bytes), and a BLAKE3 check of all that (8 bytes). Clients
//! must treat it as opaque: a token that was altered, or that belongs to a
//! different query, is INVALID_ARGUMENT rather than a page that silently
//! skips or repeats media.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    domain::{BindingKey, MediaId, PageCursor, SortValue},
    error::{Error, Reason, Result},
};

const PREFIX: &str = "v2.";
const CHECK: usize = 8;

/// Cuts a page fetched with one row more than `page_size` (that extra row
/// tells whether another page exists) and returns the next page's token,
/// made from the page's last row by `encode`, or "" on the last page.
pub fn next_page<T>(items: &mut Vec<T>, page_size: u64, encode: impl Fn(&T) -> String) -> String {
    if items.len() as u64 <= page_size {
        return String::new();
    }
    items.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
    items.last().map(encode).unwrap_or_default()
}

/// Encodes where the next page of a media query starts.
pub fn encode_media(fingerprint: [u8; 8], c: &PageCursor) -> String {
    let (kind, value) = match &c.value {
        SortValue::Int(v) => (0u8, v.to_be_bytes().to_vec()),
        SortValue::Text(s) => (1u8, s.as_bytes().to_vec()),
    };
    pack(fingerprint, &[&[kind], &value, c.id.0.as_bytes()])
}

/// Decodes a media query's token sent in `field`; empty means the first page.
pub fn decode_media(field: &str, token: &str, fingerprint: [u8; 8]) -> Result<Option<PageCursor>> {
    let Some(parts) = unpack(field, token, fingerprint)? else {
        return Ok(None);
    };
    let [kind, value, id] = parts.as_slice() else {
        return Err(foreign(field));
    };
    let value = match kind.as_slice() {
        [0] => SortValue::Int(i64::from_be_bytes(
            value.as_slice().try_into().map_err(|_| foreign(field))?,
        )),
        [1] => SortValue::Text(String::from_utf8(value.clone()).map_err(|_| foreign(field))?),
        _ => return Err(foreign(field)),
    };
    Ok(Some(PageCursor {
        value,
        id: MediaId(uuid::Uuid::from_slice(id).map_err(|_| foreign(field))?),
    }))
}

/// Encodes where the next page of bindings starts.
pub fn encode_binding(fingerprint: [u8; 8], k: &BindingKey) -> String {
    pack(
        fingerprint,
        &[
            k.module.as_bytes(),
            k.object_id.as_bytes(),
            k.media.0.as_bytes(),
        ],
    )
}

/// Decodes a bindings token; empty means the first page.
pub fn decode_binding(
    field: &str,
    token: &str,
    fingerprint: [u8; 8],
) -> Result<Option<BindingKey>> {
    let Some(parts) = unpack(field, token, fingerprint)? else {
        return Ok(None);
    };
    let [module, object_id, media] = parts.as_slice() else {
        return Err(foreign(field));
    };
    let text = |b: &Vec<u8>| String::from_utf8(b.clone()).map_err(|_| foreign(field));
    Ok(Some(BindingKey {
        media: MediaId(uuid::Uuid::from_slice(media).map_err(|_| foreign(field))?),
        module: text(module)?,
        object_id: text(object_id)?,
    }))
}

/// Encodes where the next page of folders starts: the last name sent
/// (names are unique among siblings).
pub fn encode_folder(fingerprint: [u8; 8], name: &str) -> String {
    pack(fingerprint, &[name.as_bytes()])
}

/// Decodes a folders token; empty means the first page.
pub fn decode_folder(field: &str, token: &str, fingerprint: [u8; 8]) -> Result<Option<String>> {
    let Some(parts) = unpack(field, token, fingerprint)? else {
        return Ok(None);
    };
    let [name] = parts.as_slice() else {
        return Err(foreign(field));
    };
    String::from_utf8(name.clone())
        .map(Some)
        .map_err(|_| foreign(field))
}

/// Encodes where the next page of a list ordered by id starts: the last
/// id sent.
pub fn encode_id(fingerprint: [u8; 8], id: uuid::Uuid) -> String {
    pack(fingerprint, &[id.as_bytes()])
}

/// Decodes an id-ordered list's token; empty means the first page.
pub fn decode_id(field: &str, token: &str, fingerprint: [u8; 8]) -> Result<Option<uuid::Uuid>> {
    let Some(parts) = unpack(field, token, fingerprint)? else {
        return Ok(None);
    };
    let [id] = parts.as_slice() else {
        return Err(foreign(field));
    };
    uuid::Uuid::from_slice(id)
        .map(Some)
        .map_err(|_| foreign(field))
}

/// Encodes where the next page of jobs starts: the last job's sort value
/// and id.
pub fn encode_job(fingerprint: [u8; 8], value: i64, id: uuid::Uuid) -> String {
    pack(fingerprint, &[&value.to_be_bytes(), id.as_bytes()])
}

/// Decodes a job listing's token; empty means the first page.
pub fn decode_job(
    field: &str,
    token: &str,
    fingerprint: [u8; 8],
) -> Result<Option<(i64, uuid::Uuid)>> {
    let Some(parts) = unpack(field, token, fingerprint)? else {
        return Ok(None);
    };
    let [value, id] = parts.as_slice() else {
        return Err(foreign(field));
    };
    let value = i64::from_be_bytes(value.as_slice().try_into().map_err(|_| foreign(field))?);
    let id = uuid::Uuid::from_slice(id).map_err(|_| foreign(field))?;
    Ok(Some((value, id)))
}

/// A short fingerprint of a request's identity, from its canonical text.
pub fn fingerprint(canonical: &str) -> [u8; 8] {
    truncate(blake3::hash(canonical.as_bytes()))
}

fn truncate(h: blake3::Hash) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&h.as_bytes()[..8]);
    out
}

fn pack(fingerprint: [u8; 8], parts: &[&[u8]]) -> String {
    let mut raw = fingerprint.to_vec();
    for p in parts {
        let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
        raw.extend_from_slice(&len.to_be_bytes());
        raw.extend_from_slice(&p[..usize::from(len)]);
    }
    let check = truncate(blake3::hash(&raw));
    raw.extend_from_slice(&check);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
}

fn unpack(field: &str, token: &str, fingerprint: [u8; 8]) -> Result<Option<Vec<Vec<u8>>>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        Error::bad(
            Reason::PageTokenInvalid,
            field,
            "the page token is not one this server issued (or it was altered); pass next_page_token unchanged, or an empty token for the first page",
        )
    };
    let body = token.strip_prefix(PREFIX).ok_or_else(bad)?;
    let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
    let split = raw.len().checked_sub(CHECK).ok_or_else(bad)?;
    let (data, check) = raw.split_at(split);
    if truncate(blake3::hash(data)) != check || data.len() < 8 {
        return Err(bad());
    }
    if data[..8] != fingerprint {
        return Err(foreign(field));
    }
    let mut rest = &data[8..];
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_at_checked(2).ok_or_else(bad)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (part, tail) = tail.split_at_checked(len).ok_or_else(bad)?;
        parts.push(part.to_vec());
        rest = tail;
    }
    Ok(Some(parts))
}

fn foreign(field: &str) -> Error {
    Error::bad(
        Reason::PageTokenInvalid,
        field,
        "the page token belongs to a different request; send the same folder, filter and order as the request that returned it, or start again with an empty token",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage_and_other_queries() {
        let fp = fingerprint("q");
        for value in [
            SortValue::Int(1_732_000_000_000_000),
            SortValue::Text("été".into()),
        ] {
            let c = PageCursor {
                value,
                id: MediaId::new(),
            };
            let t = encode_media(fp, &c);
            assert_eq!(decode_media("t", &t, fp).expect("valid"), Some(c));
            assert!(decode_media("t", &t, fingerprint("other")).is_err());
            let mut altered = t.clone().into_bytes();
            let i = altered.len() / 2;
            altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).expect("ascii");
            assert!(decode_media("t", &altered, fp).is_err(), "{altered}");
        }
        assert_eq!(decode_media("t", "", fp).expect("empty"), None);
        for bad in [
            "x",
            "v2.",
            "v2.!!!",
            "v1.AAAA",
            "v2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(decode_media("t", bad, fp).is_err(), "{bad} accepted");
        }
    }
}
