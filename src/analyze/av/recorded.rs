//! Where and when a video was recorded, from the text phones write into
//! QuickTime metadata: an ISO 6709 location (`©xyz`,
//! `com.apple.quicktime.location.ISO6709`) and an ISO 8601 date with its
//! UTC offset (`com.apple.quicktime.creationdate`).

use crate::domain::civil_to_micros;

/// A position: signed decimal degrees, and metres above sea level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    /// North positive.
    pub latitude: f64,
    /// East positive.
    pub longitude: f64,
    /// When the string carries one.
    pub altitude: Option<f64>,
}

/// Parses the decimal-degree form of ISO 6709 that phones write:
/// `+48.8584+002.2945+035.000/` (the altitude and the `/` are optional).
/// Other forms (degrees and minutes packed as `+4851.50`) are not guessed
/// at: they read as `None`.
pub fn iso6709(s: &str) -> Option<Place> {
    let s = s.trim().trim_end_matches('/');
    let mut parts = Vec::with_capacity(3);
    let mut start = 0;
    for (i, c) in s.char_indices().skip(1) {
        if c == '+' || c == '-' {
            parts.push(&s[start..i]);
            start = i;
        }
    }
    parts.push(&s[start..]);
    if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| p.starts_with(['+', '-'])) {
        return None;
    }
    let number = |p: &str| p.parse::<f64>().ok().filter(|v| v.is_finite());
    // Decimal degrees have at most two (latitude) or three (longitude)
    // digits before the point.
    let int_digits = |p: &str| p[1..].split('.').next().map_or(0, str::len);
    if int_digits(parts[0]) > 2 || int_digits(parts[1]) > 3 {
        return None;
    }
    let latitude = number(parts[0]).filter(|v| v.abs() <= 90.0)?;
    let longitude = number(parts[1]).filter(|v| v.abs() <= 180.0)?;
    Some(Place {
        latitude,
        longitude,
        altitude: parts.get(2).and_then(|p| number(p)),
    })
}

/// A moment as recorded: UTC microseconds, the offset as written
/// (`+02:00`), and the year and month the recorder's calendar showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    /// Microseconds since the Unix epoch, UTC.
    pub micros: i64,
    /// The UTC offset, normalised to `+HH:MM`; `None` for `Z` or none.
    pub offset: Option<String>,
    /// Local year.
    pub year: i32,
    /// Local month, 1-12.
    pub month: i32,
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff][Z|+HHMM|+HH:MM|+HH]`; a missing zone
/// reads as UTC.
pub fn iso8601(s: &str) -> Option<Moment> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut micros_frac = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let text = &frac[..digits];
        micros_frac = format!("{:0<6}", &text[..digits.min(6)]).parse().ok()?;
        rest = &frac[digits..];
    }
    let (offset_minutes, offset) = match rest {
        "" | "Z" => (0, None),
        zone => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
            if !matches!(digits.len(), 2 | 4) || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let h: i64 = digits[..2].parse().ok()?;
            let m: i64 = if digits.len() == 4 {
                digits[2..].parse().ok()?
            } else {
                0
            };
            if h > 14 || m > 59 {
                return None;
            }
            (
                sign * (h * 60 + m),
                Some(format!("{}{h:02}:{m:02}", if sign > 0 { '+' } else { '-' })),
            )
        }
    };
    Some(Moment {
        micros: civil_to_micros(year, month, day, hour * 3600 + minute * 60 + second)
            - offset_minutes * 60_000_000
            + micros_frac,
        offset,
        year: i32::try_from(year).ok()?,
        month: i32::try_from(month).ok()?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn locations_as_phones_write_them() {
        assert_eq!(
            iso6709("+48.8584+002.2945+035.000/"),
            Some(Place {
                latitude: 48.8584,
                longitude: 2.2945,
                altitude: Some(35.0)
            })
        );
        assert_eq!(
            iso6709("-33.8568+151.2153/"),
            Some(Place {
                latitude: -33.8568,
                longitude: 151.2153,
                altitude: None
            })
        );
        for bad in [
            "",
            "/",
            "+48.8584/",
            "48.8584+002.2945/",
            "+4851.50+00217.67/",
            "+91.0+000.0/",
            "+1+2+3+4/",
            "+a+b/",
        ] {
            assert_eq!(iso6709(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dates_with_and_without_offsets() {
        let m = iso8601("2024-07-14T18:30:05+0200").unwrap();
        // 16:30:05 UTC.
        assert_eq!(m.micros, 1_720_974_605_000_000);
        assert_eq!(m.offset.as_deref(), Some("+02:00"));
        assert_eq!((m.year, m.month), (2024, 7));
        assert_eq!(iso8601("2024-07-14T18:30:05+02:00").unwrap(), m);
        let z = iso8601("2024-07-14T16:30:05.250Z").unwrap();
        assert_eq!((z.micros, z.offset), (1_720_974_605_250_000, None));
        let west = iso8601("2024-12-31T23:30:00-05").unwrap();
        assert_eq!(west.offset.as_deref(), Some("-05:00"));
        // The local calendar's year, though UTC has moved on.
        assert_eq!((west.year, west.month), (2024, 12));
        for bad in [
            "",
            "2024-07-14",
            "2024-13-01T00:00:00Z",
            "2024-07-14T25:00:00",
            "2024-07-14T18:30:05+2",
            "2024/07/14T18:30:05",
            "2024-07-14T18:30:05+0200junk",
        ] {
            assert_eq!(iso8601(bad), None, "{bad:?}");
        }
    }
}
