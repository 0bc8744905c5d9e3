//! Reads the few flat XML documents S3 answers with (object and upload
//! listings, a new upload's id, errors): elements found by name, their
//! text unescaped. S3's answers have no mixed content, comments or
//! attributes on the elements read here, and the keys this store writes
//! are plain ASCII; a general XML parser would buy nothing.

/// The text of every `<tag>...</tag>` in `doc`, in order (raw, not
/// unescaped: for blocks whose children are read next).
pub fn blocks<'a>(doc: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// The unescaped text of the first `<tag>` in `doc`.
pub fn first(doc: &str, tag: &str) -> Option<String> {
    blocks(doc, tag).first().map(|t| unescape(t))
}

/// XML's five predefined entities and numeric references resolved.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_reads_as_s3_writes_it() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>blobs/00/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>blobs/00/a&amp;b</Key><LastModified>2026-12-04T17:05:09.000Z</LastModified><ETag>&quot;x&quot;</ETag><Size>12</Size></Contents><Contents><Key>blobs/00/c</Key><Size>3</Size></Contents><NextContinuationToken>tok</NextContinuationToken></ListBucketResult>"#;
        let items = blocks(doc, "Contents");
        assert_eq!(items.len(), 2);
        assert_eq!(first(items[0], "Key").as_deref(), Some("blobs/00/a&b"));
        assert_eq!(first(items[0], "ETag").as_deref(), Some("\"x\""));
        assert_eq!(first(items[1], "Size").as_deref(), Some("3"));
        assert_eq!(first(doc, "IsTruncated").as_deref(), Some("true"));
        assert_eq!(first(doc, "NextContinuationToken").as_deref(), Some("tok"));
        assert_eq!(first(doc, "Nothing"), None);
    }

    #[test]
    fn entities_resolve_and_broken_ones_stay() {
        assert_eq!(unescape("a&lt;b&#x41;&#66;&apos;"), "a<bAB'");
        assert_eq!(unescape("x&bogus;y&"), "x&bogus;y&");
    }
}
