//! Domain types and the rules that make a value valid.
//!
//! Requests are turned into these types at the gRPC edge (`service::convert`);
//! past that point a `MediaId` is a real UUID, a `Filename` is safe to show,
//! and a `ContentHash` is 32 bytes, so inner layers never re-check.

mod access;
mod binding;
mod dedupe;
mod folder;
mod job;
mod policy;
mod query;
mod slot;
mod upload;

use std::fmt;

use uuid::Uuid;

pub use self::{
    access::*, binding::*, dedupe::*, folder::*, job::*, policy::*, query::*, slot::*, upload::*,
};
use crate::error::{Error, Result};

/// Longest stored file name, in bytes (the common file-system limit).
pub const MAX_FILENAME_BYTES: usize = 255;
/// Longest original file name kept as sent, in bytes.
pub const MAX_ORIGINAL_FILENAME_BYTES: usize = 1024;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 1000;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 100;
/// Most tags on one media.
pub const MAX_TAGS: usize = 100;
/// Longest author or copyright text, in characters.
pub const MAX_CREDIT_CHARS: usize = 1000;
/// Largest custom metadata object, in bytes of JSON.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Owner of folders and media. Every row and every query carries one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TenantId(pub Uuid);

impl TenantId {
    /// The single tenant used until authentication assigns real ones.
    pub const DEFAULT: TenantId =
        TenantId(Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0001));

    /// A fresh, time-ordered id for a new tenant.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the tenant id a client sent in `field`.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(Error::required(field, "a tenant id is required"));
        }
        Uuid::try_parse(s).map(Self).map_err(|_| {
            Error::invalid(
                field,
                format!(
                    "{:?} is not a tenant id; ids are UUID strings",
                    truncate_for_message(s)
                ),
            )
        })
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! uuid_id {
    ($name:ident, $kind:literal) => {
        #[doc = concat!("Id of a ", $kind, ": a UUIDv7, so ids sort by creation time.")]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize,
            serde::Deserialize,
        )]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses the id a client sent in `field`.
            pub fn parse(field: &str, s: &str) -> Result<Self> {
                if s.is_empty() {
                    return Err(Error::required(field, concat!("a ", $kind, " id is required")));
                }
                Uuid::try_parse(s).map(Self).map_err(|_| {
                    Error::invalid(
                        field,
                        format!(
                            concat!("{:?} is not a ", $kind, " id; ids are UUID strings such as 0193a5c2-7c1e-7b3a-9f1e-2a4b6c8d0e1f"),
                            truncate_for_message(s)
                        ),
                    )
                })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(MediaId, "media");
uuid_id!(FolderId, "folder");
uuid_id!(UploadId, "upload");
uuid_id!(ApiKeyId, "API key");
uuid_id!(JobId, "job");

/// The ids of `asked` that are not among `found`, in `asked`'s order: what
/// a batch call reports as not found.
pub fn missing_ids(asked: &[MediaId], found: impl IntoIterator<Item = MediaId>) -> Vec<MediaId> {
    let found: std::collections::HashSet<MediaId> = found.into_iter().collect();
    asked
        .iter()
        .filter(|id| !found.contains(id))
        .copied()
        .collect()
}

/// Shortens client input quoted back in an error message.
pub fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push('…');
        t
    }
}

/// BLAKE3 hash of a blob's content: its name in the blob store.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// Lowercase hex, the form used in paths, rows and the API.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses 64 hex characters sent in `field`.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        blake3::Hash::from_hex(s.to_ascii_lowercase())
            .map(|h| Self(*h.as_bytes()))
            .map_err(|_| {
                Error::invalid(
                    field,
                    format!(
                        "{:?} is not a BLAKE3 hash; expected 64 hex characters",
                        truncate_for_message(s)
                    ),
                )
            })
    }
}

impl From<blake3::Hash> for ContentHash {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// MD5 of a blob's content, kept because the seed APIs expose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Md5Digest(pub [u8; 16]);

impl Md5Digest {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 32 hex characters sent in `field`.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                field,
                format!(
                    "{:?} is not an MD5 hash; expected 32 hex characters",
                    truncate_for_message(s)
                ),
            )
        };
        if s.len() != 32 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

/// Broad kind of a media. Stored as a small integer; values never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// Still or animated picture.
    Image = 1,
    /// Moving picture.
    Video = 2,
    /// Sound only.
    Audio = 3,
    /// Office or print document, or text: plain, CSV, JSON, XML, YAML.
    Document = 4,
    /// Anything else.
    Other = 5,
}

impl MediaType {
    /// From the stored integer; unknown values read as `Other`.
    pub fn from_i16(v: i16) -> Self {
        match v {
            1 => Self::Image,
            2 => Self::Video,
            3 => Self::Audio,
            4 => Self::Document,
            _ => Self::Other,
        }
    }

    /// Classifies a MIME type. Documents are office and print formats and
    /// every kind of text, structured text included (JSON, XML, YAML and
    /// their `+json`/`+xml` dialects), as CMS media libraries file them;
    /// SVG (`image/svg+xml`) stays an image. Migration 000008 applies the
    /// same rule to media stored before it.
    pub fn from_mime(mime: &str) -> Self {
        let (top, sub) = mime.split_once('/').unwrap_or((mime, ""));
        match top {
            "image" => Self::Image,
            "video" => Self::Video,
            "audio" => Self::Audio,
            "text" => Self::Document,
            "application"
                if sub == "pdf"
                    || sub == "msword"
                    || sub == "rtf"
                    || sub.starts_with("vnd.openxmlformats-officedocument")
                    || sub.starts_with("vnd.ms-")
                    || sub.starts_with("vnd.oasis.opendocument")
                    || matches!(sub, "json" | "xml" | "yaml" | "x-yaml")
                    || sub.ends_with("+json")
                    || sub.ends_with("+xml") =>
            {
                Self::Document
            }
            _ => Self::Other,
        }
    }
}

/// A file name that is safe to display and to put in a `Content-Disposition`.
///
/// Blobs are named by hash, so a name is never used as a path. Still, names
/// are stored without control characters, bounded, and reduced to their last
/// path component, so no client of ours can be tricked by one either.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Filename {
    /// The last path component, shown as the media's name.
    pub name: String,
    /// The name exactly as sent (already checked for control characters).
    pub original: String,
}

impl Filename {
    /// Validates the name sent in `field`.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(Error::required(
                field,
                "a filename is required, e.g. \"photo.jpg\"",
            ));
        }
        let too_long = |len: usize| {
            Error::invalid(
                field,
                format!(
                    "the filename is {len} bytes long; the limit is {MAX_FILENAME_BYTES} bytes"
                ),
            )
        };
        if s.len() > MAX_ORIGINAL_FILENAME_BYTES {
            return Err(too_long(s.len()));
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(Error::invalid(
                field,
                format!(
                    "the filename contains the control character U+{:04X}; remove it",
                    c as u32
                ),
            ));
        }
        let name = s.rsplit(['/', '\\']).next().unwrap_or(s).trim();
        if name.is_empty() || name == "." || name == ".." {
            return Err(Error::invalid(
                field,
                format!(
                    "{:?} does not end in a file name; send a name such as \"photo.jpg\"",
                    truncate_for_message(s)
                ),
            ));
        }
        if name.len() > MAX_FILENAME_BYTES {
            return Err(too_long(name.len()));
        }
        Ok(Self {
            name: name.to_string(),
            original: s.to_string(),
        })
    }

    /// The name without its extension: the default title.
    pub fn stem(&self) -> &str {
        match self.name.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem,
            _ => &self.name,
        }
    }
}

/// Checks a free text field's length and characters (newlines and tabs allowed).
pub fn check_text(field: &str, s: &str, max_chars: usize) -> Result<()> {
    let n = s.chars().count();
    if n > max_chars {
        return Err(Error::invalid(
            field,
            format!("{field} is {n} characters long; the limit is {max_chars}"),
        ));
    }
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(Error::invalid(
            field,
            format!("{field} contains control characters"),
        ));
    }
    Ok(())
}

/// Trims, validates and de-duplicates tags, keeping their first order.
pub fn normalize_tags(field: &str, tags: &[String]) -> Result<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid(
            field,
            format!("{} tags were sent; the limit is {MAX_TAGS}", tags.len()),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        let tag = tag.trim();
        let at = format!("{field}[{i}]");
        if tag.is_empty() {
            return Err(Error::invalid(at, "tags cannot be empty"));
        }
        check_text(&at, tag, MAX_TAG_CHARS)?;
        if tag.contains(['\n', '\t', '\r']) {
            return Err(Error::invalid(
                at,
                "tags cannot contain line breaks or tabs",
            ));
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_string());
        }
    }
    Ok(out)
}

/// A validated upload header: everything needed to create the media once
/// its bytes are stored. Serialisable, because a resumable upload keeps
/// it until it finishes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UploadSpec {
    /// Tenant that will own the media.
    pub tenant: TenantId,
    /// Target folder; `None` means the tenant's root.
    pub folder: Option<FolderId>,
    /// Display and original name.
    pub filename: Filename,
    /// Title (defaults to the filename's stem).
    pub title: String,
    /// Normalised tags.
    pub tags: Vec<String>,
    /// Exact size promised by the client, if any.
    pub declared_size: Option<u64>,
    /// MIME type to record.
    pub mime_type: String,
    /// Hash the content must have, if the client sent one.
    pub expected_blake3: Option<ContentHash>,
    /// MD5 the content must have; computing it is then on the upload's path.
    pub expected_md5: Option<Md5Digest>,
    /// Custom metadata (a JSON object).
    pub metadata: Option<serde_json::Value>,
    /// Author credit.
    pub author: Option<String>,
    /// Copyright notice.
    pub copyright: Option<String>,
    /// Served without credentials.
    pub public: bool,
    /// Principal creating the media.
    pub created_by: String,
    /// The creator's role (empty in specs stored before roles existed).
    #[serde(default)]
    pub created_role: String,
    /// The caller's project, a free string.
    #[serde(default)]
    pub project_id: String,
    /// The slot the new media takes, if any.
    #[serde(default)]
    pub slot: Option<Slot>,
    /// What happens to the media in that slot.
    #[serde(default)]
    pub slot_policy: SlotPolicy,
    /// The new media's unique code, if any.
    #[serde(default)]
    pub code: Option<String>,
}

/// A stored media as the domain sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// Id.
    pub id: MediaId,
    /// Owner.
    pub tenant: TenantId,
    /// Folder holding it.
    pub folder: FolderId,
    /// The name its bytes are stored under: `content`, or a name of the
    /// tenant's own under `DedupeScope::Tenant`.
    pub blob: ContentHash,
    /// BLAKE3 of its bytes, as the API reports it.
    pub content: ContentHash,
    /// Broad kind.
    pub media_type: MediaType,
    /// Display name.
    pub filename: String,
    /// Name as sent.
    pub original_filename: String,
    /// Title.
    pub title: String,
    /// MIME type.
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
    /// MD5, once computed.
    pub md5: Option<String>,
    /// Analysis results (filled by the analysis issue; empty until then).
    pub analysis: Analysis,
    /// Tags in their stored order.
    pub tags: Vec<String>,
    /// Author credit.
    pub author: Option<String>,
    /// Copyright notice.
    pub copyright: Option<String>,
    /// Custom metadata.
    pub metadata: Option<serde_json::Value>,
    /// Served without credentials.
    pub public: bool,
    /// Content durable and readable.
    pub ready: bool,
    /// Creation time, µs since the Unix epoch.
    pub created_at: i64,
    /// Last change, µs since the Unix epoch.
    pub updated_at: i64,
    /// Creator.
    pub created_by: String,
    /// Last editor.
    pub updated_by: String,
    /// The creator's role.
    pub created_role: String,
    /// The caller's project, a free string ("" for none).
    pub project_id: String,
    /// The client's slot it sits in.
    pub slot: Option<Slot>,
    /// The client's unique code.
    pub code: Option<String>,
}

/// Longest project id, in characters.
pub const MAX_PROJECT_ID_CHARS: usize = 200;

/// A cached rendition of some content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    /// The content it was made from.
    pub source: ContentHash,
    /// The request it answers (`render::RenditionSpec::key`).
    pub key: String,
    /// The name its own bytes are stored under (see `Media::blob`).
    pub blob: ContentHash,
    /// BLAKE3 of its bytes.
    pub content: ContentHash,
    /// Its MIME type.
    pub mime_type: String,
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// Size in bytes.
    pub size: u64,
    /// When it was made, µs since the epoch.
    pub created_at: i64,
}

/// What content analysis found. Every field is optional: a file that could
/// not be analysed is still stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Pixels across.
    pub width: Option<i32>,
    /// Pixels down.
    pub height: Option<i32>,
    /// Play time.
    pub duration_ms: Option<i64>,
    /// Frames per second.
    pub fps: Option<f64>,
    /// Video codec.
    pub video_codec: Option<String>,
    /// Audio codec.
    pub audio_codec: Option<String>,
    /// Readable EXIF tags.
    pub exif: Option<serde_json::Value>,
    /// GPS latitude.
    pub latitude: Option<f64>,
    /// GPS longitude.
    pub longitude: Option<f64>,
    /// GPS altitude.
    pub altitude: Option<f64>,
    /// Date taken, µs since the Unix epoch.
    pub taken_at: Option<i64>,
    /// Year taken (else created).
    pub taken_year: Option<i32>,
    /// Month taken (else created).
    pub taken_month: Option<i32>,
    /// EXIF orientation.
    pub orientation: Option<i32>,
    /// Horizontal dpi.
    pub dpi_x: Option<f64>,
    /// Vertical dpi.
    pub dpi_y: Option<f64>,
    /// Camera and sound facts without a column of their own.
    pub facts: Facts,
    /// Why analysis failed, when it did; the fields it could not fill
    /// are then empty.
    pub error: Option<String>,
}

/// What analysis found that no query filters on: stored together as one
/// JSON value, so adding a fact needs no migration.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Facts {
    /// Camera maker (EXIF `Make`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera_make: Option<String>,
    /// Camera model (EXIF `Model`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera_model: Option<String>,
    /// Lens model (EXIF `LensModel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lens_model: Option<String>,
    /// Whether the flash fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash_fired: Option<bool>,
    /// Exposure time in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure_time: Option<f64>,
    /// Aperture as an f-number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f_number: Option<f64>,
    /// ISO speed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iso: Option<u32>,
    /// Focal length in millimetres.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub focal_length_mm: Option<f64>,
    /// UTC offset of the date taken as recorded, e.g. `+02:00`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_offset: Option<String>,
    /// Clockwise rotation a player applies to a video: 90, 180 or 270.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<u32>,
    /// Audio samples per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// Audio channels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    /// Bits per second of the whole file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u64>,
    /// Pages of a document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_count: Option<u32>,
    /// Title, artist, album and the like from audio and video tags.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
    /// What analysis skipped while reading the rest (a malformed EXIF
    /// entry, say): the fields it did read are filled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Facts {
    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Year and month (UTC) of a µs timestamp, by the civil-from-days algorithm
/// (H. Hinnant), so no calendar crate is needed for two numbers.
pub fn year_month(micros: i64) -> (i32, i32) {
    let days = micros.div_euclid(86_400_000_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month as i32)
}

/// Days since 1970-01-01 of a civil (proleptic Gregorian) date, the
/// inverse of the algorithm in [`year_month`] (H. Hinnant).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since the Unix epoch of a civil date and a second of
/// that day, read as UTC (subtract the local offset for local times).
pub fn civil_to_micros(year: i64, month: i64, day: i64, second_of_day: i64) -> i64 {
    (days_from_civil(year, month, day) * 86_400 + second_of_day) * 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_reduce_to_their_last_component() {
        let f = Filename::parse("f", "../../etc/passwd").expect("valid");
        assert_eq!(f.name, "passwd");
        assert_eq!(f.original, "../../etc/passwd");
        let f = Filename::parse("f", r"C:\fakepath\a b.jpg").expect("valid");
        assert_eq!(f.name, "a b.jpg");
        assert_eq!(f.stem(), "a b");
    }

    #[test]
    fn bad_filenames_are_refused() {
        for bad in [
            "",
            "..",
            "a/..",
            "dir/",
            "a\0b",
            &"x".repeat(10_000),
            &"y".repeat(256),
        ] {
            assert!(Filename::parse("f", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn text_of_every_kind_is_a_document() {
        for mime in [
            "text/plain",
            "text/csv",
            "text/markdown",
            "text/xml",
            "application/json",
            "application/xml",
            "application/yaml",
            "application/x-yaml",
            "application/ld+json",
            "application/atom+xml",
            "application/pdf",
            "application/vnd.oasis.opendocument.text",
        ] {
            assert_eq!(MediaType::from_mime(mime), MediaType::Document, "{mime}");
        }
        assert_eq!(MediaType::from_mime("image/svg+xml"), MediaType::Image);
        assert_eq!(
            MediaType::from_mime("application/octet-stream"),
            MediaType::Other
        );
        assert_eq!(MediaType::from_mime("application/zip"), MediaType::Other);
    }

    #[test]
    fn year_month_matches_known_dates() {
        assert_eq!(year_month(0), (1970, 1));
        // 2024-02-29T12:00:00Z
        assert_eq!(year_month(1_709_208_000_000_000), (2024, 2));
        // 1999-12-31T23:59:59Z
        assert_eq!(year_month(946_684_799_000_000), (1999, 12));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 2, 29) * 86_400, 1_709_164_800);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = ContentHash::from(blake3::hash(b"abc"));
        assert_eq!(ContentHash::parse("h", &h.to_hex()).expect("hex"), h);
        assert!(ContentHash::parse("h", "zz").is_err());
        let m = Md5Digest::parse("m", "900150983cd24fb0d6963f7d28e17f72").expect("hex");
        assert_eq!(m.to_hex(), "900150983cd24fb0d6963f7d28e17f72");
        assert!(Md5Digest::parse("m", "900150983cd24fb0d6963f7d28e17f7g").is_err());
    }
}
