//! What the bytes are: the content type from magic numbers, reconciled
//! with what the client declared.
//!
//! `infer` recognises ~100 binary formats from their first bytes. Text has
//! no magic number, so bytes that `infer` does not know are text when they
//! are UTF-8 without NULs (then the declared text type is kept, if any),
//! and `application/octet-stream` otherwise. A declared type is compared
//! with the sniffed one through [`equivalent`], which knows the common
//! aliases (`image/jpg`, `audio/mp3`, ...) and the containers whose first
//! bytes do not tell their specific format (a ZIP is a DOCX once its
//! directory is read; an OLE file is a DOC, XLS or PPT).

use crate::domain::MediaType;

/// Bytes that sniffing looks at. Formats such as DOCX are recognised by
/// names inside the ZIP that follow its first entry, so this is more than
/// the few bytes most magic numbers need.
pub const SNIFF_LEN: usize = 8 * 1024;

/// Type recorded for bytes that are neither a known format nor text.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// What sniffing decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    /// The content type to record.
    pub mime: String,
    /// Its broad kind.
    pub kind: MediaType,
}

/// How the declared and the sniffed type relate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// They agree (or nothing specific was declared): record `Sniffed`.
    Agree(Sniffed),
    /// They disagree. `sniffed` is what the bytes are.
    Mismatch {
        /// What the client said.
        declared: String,
        /// What the bytes are.
        sniffed: Sniffed,
    },
}

/// Sniffs `head` (the first [`SNIFF_LEN`] bytes, or all of a shorter file)
/// and reconciles it with `declared` (an essence such as `image/png`;
/// `application/octet-stream` means "not declared").
pub fn sniff(head: &[u8], declared: &str) -> Verdict {
    let found = infer::get(head)
        .map(|t| match t.mime_type() {
            // `infer` calls every EBML file WebM; the DocType says which.
            "video/webm" if head.windows(8).take(64).any(|w| w == b"matroska") => {
                "video/x-matroska"
            }
            mime => mime,
        })
        .or_else(|| is_cursor(head).then_some("image/vnd.microsoft.icon"));
    let agree = |mime: &str| {
        Verdict::Agree(Sniffed {
            mime: mime.to_string(),
            kind: MediaType::from_mime(mime),
        })
    };
    let undeclared = declared.is_empty() || declared == OCTET_STREAM;
    if head.is_empty() {
        // Nothing contradicts the declared type of an empty file.
        let mime = if undeclared { OCTET_STREAM } else { declared };
        return agree(canonical(mime));
    }
    match found {
        Some(mime) if undeclared || equivalent(declared, mime) => {
            // The declared type may be the more specific (a DOCX for a ZIP).
            agree(if undeclared || !is_container(mime) {
                canonical(mime)
            } else {
                canonical(declared)
            })
        }
        Some(mime) => Verdict::Mismatch {
            declared: declared.to_string(),
            sniffed: Sniffed {
                mime: canonical(mime).to_string(),
                kind: MediaType::from_mime(mime),
            },
        },
        None if looks_like_text(head) => {
            if undeclared {
                agree("text/plain")
            } else if is_textual(declared) {
                agree(declared)
            } else {
                Verdict::Mismatch {
                    declared: declared.to_string(),
                    sniffed: Sniffed {
                        mime: "text/plain".into(),
                        kind: MediaType::Document,
                    },
                }
            }
        }
        None if undeclared => Verdict::Agree(Sniffed {
            mime: OCTET_STREAM.into(),
            kind: MediaType::Other,
        }),
        None => Verdict::Mismatch {
            declared: declared.to_string(),
            sniffed: Sniffed {
                mime: OCTET_STREAM.into(),
                kind: MediaType::Other,
            },
        },
    }
}

/// A Windows cursor (`.cur`), which `infer` does not know: an icon
/// directory of type 2. Its four-byte magic (`00 00 02 00`) starts many
/// other files, so the first entry must look like one too: reserved byte
/// 0, a non-empty image whose data starts after the directory. Recorded
/// as an icon, the type browsers and the `image` crate read both as.
fn is_cursor(head: &[u8]) -> bool {
    let u16_at = |at: usize| {
        head.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(0), Some(2), Some(count)) = (u16_at(0), u16_at(2), u16_at(4)) else {
        return false;
    };
    let directory_end = 6 + 16 * u32::from(count);
    count > 0
        && head.get(9) == Some(&0)
        && u32_at(14).is_some_and(|size| size > 0)
        && u32_at(18).is_some_and(|offset| offset >= directory_end)
}

/// Groups of names for the same format; the first is what is recorded.
const ALIASES: &[&[&str]] = &[
    &["image/jpeg", "image/jpg", "image/pjpeg"],
    &["image/png", "image/x-png"],
    &["image/bmp", "image/x-bmp", "image/x-ms-bmp"],
    &[
        "image/heif",
        "image/heic",
        "image/heif-sequence",
        "image/heic-sequence",
    ],
    &["image/vnd.microsoft.icon", "image/x-icon"],
    &["audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg"],
    &["audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"],
    &["audio/flac", "audio/x-flac"],
    &["audio/mp4", "audio/m4a", "audio/x-m4a", "audio/aac"],
    &["audio/ogg", "audio/opus", "audio/vorbis", "application/ogg"],
    &["video/mp4", "video/x-m4v", "application/mp4"],
    &["video/x-matroska", "video/matroska"],
    &["video/x-msvideo", "video/avi", "video/msvideo"],
    &["application/zip", "application/x-zip-compressed"],
    &["application/rtf", "text/rtf"],
    &["text/xml", "application/xml"],
];

/// The recorded name of `mime`.
fn canonical(mime: &str) -> &str {
    ALIASES
        .iter()
        .find(|group| group.contains(&mime))
        .map_or(mime, |group| group[0])
}

/// Containers whose first bytes do not say which specific format they
/// hold, with the formats that refine them.
const CONTAINERS: &[(&str, &[&str])] = &[
    (
        "application/zip",
        &[
            "application/vnd.openxmlformats-officedocument.",
            "application/vnd.oasis.opendocument.",
            "application/epub+zip",
            "application/java-archive",
        ],
    ),
    (
        "application/x-ole-storage",
        &[
            "application/msword",
            "application/vnd.ms-excel",
            "application/vnd.ms-powerpoint",
            "application/vnd.ms-outlook",
        ],
    ),
    // An MP4 with only sound is an M4A; `infer` goes by the brand, which
    // many encoders leave at `isom`.
    ("video/mp4", &["audio/mp4"]),
    ("video/quicktime", &["audio/mp4"]),
    ("video/webm", &["audio/webm"]),
    ("video/x-matroska", &["audio/x-matroska"]),
    ("audio/ogg", &["video/ogg"]),
    // Text formats `infer` recognises by their first characters, which
    // more specific text types share.
    (
        "text/xml",
        &[
            "image/svg+xml",
            "application/xhtml+xml",
            "application/rss+xml",
            "application/atom+xml",
        ],
    ),
    ("text/html", &["application/xhtml+xml", "text/plain"]),
    ("text/x-shellscript", &["text/plain", "application/x-sh"]),
];

fn is_container(mime: &str) -> bool {
    CONTAINERS.iter().any(|(c, _)| *c == canonical(mime))
}

/// Whether a declared type names the sniffed format (or refines it).
pub fn equivalent(declared: &str, sniffed: &str) -> bool {
    let (declared, sniffed) = (canonical(declared), canonical(sniffed));
    declared == sniffed
        || CONTAINERS.iter().any(|(container, specific)| {
            *container == sniffed
                && specific
                    .iter()
                    .any(|s| canonical(declared).starts_with(canonical(s)))
        })
}

/// Types that are text and may be recorded as declared when the bytes
/// are text.
fn is_textual(mime: &str) -> bool {
    mime.starts_with("text/")
        || matches!(
            mime,
            "application/json" | "application/xml" | "application/x-yaml" | "application/yaml"
        )
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
}

/// UTF-8 without NUL or other binary control characters. `head` may end
/// inside a character, which is allowed.
fn looks_like_text(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if e.error_len().is_none() && head.len() - e.valid_up_to() < 4 => {
            // Cut inside the last character; what came before is text.
            match std::str::from_utf8(&head[..e.valid_up_to()]) {
                Ok(t) => t,
                Err(_) => return false,
            }
        }
        Err(_) => return false,
    };
    !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

    fn agreed(v: Verdict) -> Option<String> {
        match v {
            Verdict::Agree(s) => Some(s.mime),
            Verdict::Mismatch { .. } => None,
        }
    }

    #[test]
    fn content_decides_when_nothing_is_declared() {
        assert_eq!(
            agreed(sniff(PNG, OCTET_STREAM)).as_deref(),
            Some("image/png")
        );
        assert_eq!(agreed(sniff(JPEG, "")).as_deref(), Some("image/jpeg"));
        assert_eq!(agreed(sniff(b"hello\n", "")).as_deref(), Some("text/plain"));
        assert_eq!(
            agreed(sniff(&[0, 159, 146, 150], "")).as_deref(),
            Some(OCTET_STREAM)
        );
    }

    #[test]
    fn aliases_and_refinements_agree() {
        assert_eq!(
            agreed(sniff(JPEG, "image/jpg")).as_deref(),
            Some("image/jpeg")
        );
        let zip = b"PK\x03\x04\x14\0\0\0\x08\0";
        let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
        assert_eq!(agreed(sniff(zip, docx)).as_deref(), Some(docx));
        assert_eq!(
            agreed(sniff(b"a,b\n1,2\n", "text/csv")).as_deref(),
            Some("text/csv")
        );
        let svg = b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>";
        assert_eq!(
            agreed(sniff(svg, "image/svg+xml")).as_deref(),
            Some("image/svg+xml")
        );
        assert_eq!(
            agreed(sniff(b"#!/bin/sh\necho hi\n", "text/plain")).as_deref(),
            Some("text/plain")
        );
    }

    #[test]
    fn lies_are_mismatches_naming_both() {
        match sniff(PNG, "image/jpeg") {
            Verdict::Mismatch { declared, sniffed } => {
                assert_eq!(declared, "image/jpeg");
                assert_eq!(sniffed.mime, "image/png");
            }
            v => panic!("{v:?}"),
        }
        let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";
        assert!(agreed(sniff(elf, "image/png")).is_none());
        assert!(agreed(sniff(b"just text", "image/png")).is_none());
        assert!(agreed(sniff(&[0, 1, 2, 3], "text/plain")).is_none());
    }

    #[test]
    fn matroska_is_told_from_webm_by_its_doctype() {
        let ebml = |doctype: &[u8]| {
            let mut h = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x88];
            h.extend_from_slice(doctype);
            h
        };
        assert_eq!(
            agreed(sniff(&ebml(b"matroska"), "")).as_deref(),
            Some("video/x-matroska")
        );
        assert_eq!(
            agreed(sniff(&ebml(b"webm\0\0\0\0"), "")).as_deref(),
            Some("video/webm")
        );
    }

    #[test]
    fn text_may_be_cut_inside_a_character() {
        let s = "é".repeat(10);
        assert!(looks_like_text(&s.as_bytes()[..5]));
        assert!(!looks_like_text(b"a\0b"));
    }
}
