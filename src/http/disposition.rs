//! How a browser is told to treat an answer: shown in place only for
//! types that cannot run script, saved as a file with its own name
//! otherwise (RFC 6266, with RFC 8187's `filename*` for names that are
//! not plain ASCII).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Characters of a `filename*` value kept as they are (RFC 8187's
/// `attr-char`); everything else is percent-encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Whether content of type `mime` may be shown in place: pictures (not
/// SVG, which runs script), sound, video, plain text and PDF. HTML, XML,
/// SVG and anything unknown are saved as files instead, under a
/// `sandbox` policy, so stored content never runs in the server's origin.
pub fn shown_inline(mime: &str) -> bool {
    let mime = mime.split(';').next().unwrap_or_default().trim();
    match mime.split_once('/') {
        Some(("image", sub)) => !sub.contains("svg") && !sub.contains("xml"),
        Some(("video" | "audio", _)) => true,
        _ => matches!(mime, "text/plain" | "application/pdf"),
    }
}

/// The `Content-Disposition` value for a file named `name` (a path is
/// reduced to its last component): `inline` or `attachment`, an ASCII
/// `filename` for old clients and the exact name in `filename*`.
pub fn content_disposition(inline: bool, name: &str) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let name = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>();
    let name = name.trim();
    if name.is_empty() || name == "." || name == ".." {
        return kind.to_string();
    }
    let ascii: String = name
        .chars()
        .map(|c| match c {
            '"' | '\\' | '%' => '_',
            c if c.is_ascii() => c,
            _ => '_',
        })
        .collect();
    if ascii == name {
        format!("{kind}; filename=\"{ascii}\"")
    } else {
        format!(
            "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{}",
            utf8_percent_encode(name, ATTR_CHAR)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_encoded_and_stripped_of_paths() {
        assert_eq!(
            content_disposition(true, "photo.jpg"),
            "inline; filename=\"photo.jpg\""
        );
        assert_eq!(
            content_disposition(false, "say \"cheese\".png"),
            "attachment; filename=\"say _cheese_.png\"; filename*=UTF-8''say%20%22cheese%22.png"
        );
        assert_eq!(
            content_disposition(true, "Übersicht – été.pdf"),
            "inline; filename=\"_bersicht _ _t_.pdf\"; \
             filename*=UTF-8''%C3%9Cbersicht%20%E2%80%93%20%C3%A9t%C3%A9.pdf"
        );
        assert_eq!(
            content_disposition(true, "../../etc/passwd"),
            "inline; filename=\"passwd\""
        );
        assert_eq!(
            content_disposition(true, "C:\\Users\\me\\a.txt"),
            "inline; filename=\"a.txt\""
        );
        assert_eq!(content_disposition(false, "dir/"), "attachment");
        assert_eq!(
            content_disposition(false, "a\r\nb"),
            "attachment; filename=\"ab\""
        );
    }

    #[test]
    fn only_types_that_run_no_script_are_shown() {
        for shown in [
            "image/jpeg",
            "image/png",
            "video/mp4",
            "audio/mpeg",
            "text/plain",
            "application/pdf",
        ] {
            assert!(shown_inline(shown), "{shown}");
        }
        for saved in [
            "image/svg+xml",
            "text/html",
            "application/xhtml+xml",
            "text/xml",
            "application/xml",
            "application/javascript",
            "application/octet-stream",
            "text/html; charset=utf-8",
        ] {
            assert!(!shown_inline(saved), "{saved}");
        }
    }
}
