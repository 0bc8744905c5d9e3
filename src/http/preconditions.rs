//! HTTP's conditional and range requests (RFC 9110, sections 13 and 14)
//! over one representation: which status an answer gets, and which bytes.
//! Pure, so every rule is tested here without a server.

use std::time::SystemTime;

use http::{HeaderMap, header};

/// What the answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// 200 with the whole representation.
    Whole,
    /// 206 with bytes `start..start + len`.
    Partial {
        /// First byte.
        start: u64,
        /// How many bytes.
        len: u64,
    },
    /// 304: the client's copy is current.
    NotModified,
    /// 416: no byte of the range exists.
    Unsatisfiable,
}

/// The validators of the representation: its strong ETag (quoted) and its
/// modification time (whole seconds).
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// The entity tag, with its quotes.
    pub etag: &'a str,
    /// Last change.
    pub last_modified: SystemTime,
}

/// Decides the answer to a GET or HEAD of a representation of `len` bytes
/// with `validators`, given the request's `headers`.
pub fn decide(headers: &HeaderMap, validators: Validators<'_>, len: u64) -> Decision {
    // If-None-Match decides alone when present (RFC 9110 13.2.2, step 3),
    // with the weak comparison; If-Modified-Since only without it.
    if let Some(inm) = header_str(headers, header::IF_NONE_MATCH) {
        if etag_list_matches(inm, validators.etag, false) {
            return Decision::NotModified;
        }
    } else if let Some(ims) = header_str(headers, header::IF_MODIFIED_SINCE)
        && let Ok(since) = httpdate::parse_http_date(ims)
        && whole_seconds(validators.last_modified) <= since
    {
        return Decision::NotModified;
    }
    let Some(range) = header_str(headers, header::RANGE) else {
        return Decision::Whole;
    };
    // A Range under an If-Range that no longer holds gets the whole new
    // representation (RFC 9110 13.1.5), not bytes of a different one.
    if let Some(if_range) = header_str(headers, header::IF_RANGE)
        && !if_range_holds(if_range, validators)
    {
        return Decision::Whole;
    }
    match parse_range(range, len) {
        RangeSpec::Ignore => Decision::Whole,
        RangeSpec::Unsatisfiable => Decision::Unsatisfiable,
        RangeSpec::Bytes { start, len } => Decision::Partial { start, len },
    }
}

/// A Range header, read against a length.
#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Malformed, another unit or several ranges: served whole, as the
    /// RFC allows a server to do.
    Ignore,
    /// No byte of it exists.
    Unsatisfiable,
    /// One range of bytes.
    Bytes { start: u64, len: u64 },
}

/// Reads `bytes=first-last`, `bytes=first-` or `bytes=-suffix`.
fn parse_range(value: &str, len: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeSpec::Ignore;
    };
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // A suffix: the last `n` bytes.
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                RangeSpec::Unsatisfiable
            } else {
                let n = n.min(len);
                RangeSpec::Bytes {
                    start: len - n,
                    len: n,
                }
            }
        }
        (false, Some(start), None) if last.trim().is_empty() => {
            if start >= len {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Bytes {
                    start,
                    len: len - start,
                }
            }
        }
        (false, Some(start), Some(end)) if start <= end => {
            if start >= len {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Bytes {
                    start,
                    len: end.min(len - 1) - start + 1,
                }
            }
        }
        _ => RangeSpec::Ignore,
    }
}

/// Whether an If-Range validator still names this representation: an
/// ETag compared strongly, or a date equal to the last modification.
fn if_range_holds(value: &str, v: Validators<'_>) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        etag_list_matches(value, v.etag, true)
    } else {
        httpdate::parse_http_date(value).is_ok_and(|d| d == whole_seconds(v.last_modified))
    }
}

/// Whether a list of entity tags (or `*`) holds `etag`; `strong` refuses
/// weak tags.
fn etag_list_matches(list: &str, etag: &str, strong: bool) -> bool {
    if list.trim() == "*" {
        return true;
    }
    list.split(',')
        .map(str::trim)
        .any(|tag| match tag.strip_prefix("W/") {
            Some(weak) => !strong && weak == etag,
            None => tag == etag,
        })
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `t` without its fraction of a second, as HTTP dates carry it.
pub fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETAG: &str = "\"abc\"";

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
    }

    fn decide_with(pairs: &[(header::HeaderName, &str)], len: u64) -> Decision {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(k, v.parse().unwrap_or_else(|_| panic!("{v}")));
        }
        decide(
            &headers,
            Validators {
                etag: ETAG,
                last_modified: at(1_000_000_000),
            },
            len,
        )
    }

    #[test]
    fn ranges() {
        let r = |v: &str| decide_with(&[(header::RANGE, v)], 100);
        let part = |start, len| Decision::Partial { start, len };
        assert_eq!(r("bytes=0-9"), part(0, 10));
        assert_eq!(r("bytes=40-59"), part(40, 20));
        assert_eq!(r("bytes=90-"), part(90, 10));
        assert_eq!(r("bytes=90-1000"), part(90, 10));
        assert_eq!(r("bytes=-10"), part(90, 10));
        assert_eq!(r("bytes=-1000"), part(0, 100));
        assert_eq!(r("bytes=99-99"), part(99, 1));
        assert_eq!(r("bytes=100-"), Decision::Unsatisfiable);
        assert_eq!(r("bytes=100-200"), Decision::Unsatisfiable);
        assert_eq!(r("bytes=-0"), Decision::Unsatisfiable);
        for ignored in [
            "bytes=9-1",
            "items=0-1",
            "bytes=a-b",
            "bytes=0-1,5-6",
            "bytes=-",
        ] {
            assert_eq!(r(ignored), Decision::Whole, "{ignored}");
        }
        assert_eq!(
            decide_with(&[(header::RANGE, "bytes=0-")], 0),
            Decision::Unsatisfiable
        );
    }

    #[test]
    fn conditionals() {
        let d = decide_with;
        assert_eq!(
            d(&[(header::IF_NONE_MATCH, ETAG)], 5),
            Decision::NotModified
        );
        assert_eq!(
            d(&[(header::IF_NONE_MATCH, "\"x\", W/\"abc\"")], 5),
            Decision::NotModified
        );
        assert_eq!(d(&[(header::IF_NONE_MATCH, "*")], 5), Decision::NotModified);
        assert_eq!(d(&[(header::IF_NONE_MATCH, "\"x\"")], 5), Decision::Whole);
        let date = httpdate::fmt_http_date(at(1_000_000_000));
        let earlier = httpdate::fmt_http_date(at(999_999_999));
        assert_eq!(
            d(&[(header::IF_MODIFIED_SINCE, &date)], 5),
            Decision::NotModified
        );
        assert_eq!(
            d(&[(header::IF_MODIFIED_SINCE, &earlier)], 5),
            Decision::Whole
        );
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            d(
                &[
                    (header::IF_NONE_MATCH, "\"x\""),
                    (header::IF_MODIFIED_SINCE, &date)
                ],
                5
            ),
            Decision::Whole
        );
        // If-Range: the current ETag or date keeps the range; a stale one,
        // or a weak tag, gets the whole body.
        let range = (header::RANGE, "bytes=1-2");
        let part = Decision::Partial { start: 1, len: 2 };
        assert_eq!(d(&[range.clone(), (header::IF_RANGE, ETAG)], 5), part);
        assert_eq!(d(&[range.clone(), (header::IF_RANGE, &date)], 5), part);
        for stale in ["\"old\"", "W/\"abc\"", earlier.as_str()] {
            assert_eq!(
                d(&[range.clone(), (header::IF_RANGE, stale)], 5),
                Decision::Whole
            );
        }
    }
}
