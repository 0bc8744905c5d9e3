//! What the targets share: the bytes as the server's readers see them.
#![allow(dead_code)] // each target uses part of it

use mediastore::analyze::{ReadAtCursor, sniff};

/// `data` behind the positional reader every probe reads uploads through.
pub fn source(data: &[u8]) -> ReadAtCursor {
    let data = data.to_vec();
    ReadAtCursor::new(data.len() as u64, move |buf, at| {
        let at = usize::try_from(at).unwrap_or(usize::MAX).min(data.len());
        let n = buf.len().min(data.len() - at);
        buf[..n].copy_from_slice(&data[at..at + n]);
        Ok(n)
    })
}

/// The MIME type the server would analyse `data` as (as uploaded with no
/// declared type), or `fallback` when sniffing does not accept it.
pub fn sniffed_mime(data: &[u8], fallback: &str) -> String {
    let head = &data[..data.len().min(sniff::SNIFF_LEN)];
    match sniff::sniff(head, "") {
        sniff::Verdict::Agree(s) => s.mime,
        _ => fallback.to_owned(),
    }
}
