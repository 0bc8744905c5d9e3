//! Media queries: which media a listing returns, in which order, and where
//! a page resumes.

use super::{FolderId, Media, MediaId, MediaType};

/// Most tags in a `tags_all` filter (each one is a join).
pub const MAX_TAGS_ALL: usize = 20;
/// Most values in any other list filter.
pub const MAX_FILTER_VALUES: usize = 100;
/// Longest text query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// The key a listing sorts by; the media id breaks ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Creation time (the default: "latest media" is this, descending).
    #[default]
    Created,
    /// Last change.
    Updated,
    /// Time taken, else creation time.
    Taken,
    /// Size in bytes.
    Size,
    /// Title.
    Title,
    /// Display filename.
    Filename,
}

impl SortKey {
    /// The media's value of this key, for the next page's cursor; the
    /// repository sorts by the same expressions (`Taken` falls back to the
    /// creation time there too).
    pub fn value_of(self, m: &Media) -> SortValue {
        match self {
            SortKey::Created => SortValue::Int(m.created_at),
            SortKey::Updated => SortValue::Int(m.updated_at),
            SortKey::Taken => SortValue::Int(m.analysis.taken_at.unwrap_or(m.created_at)),
            SortKey::Size => SortValue::Int(i64::try_from(m.size).unwrap_or(i64::MAX)),
            SortKey::Title => SortValue::Text(m.title.clone()),
            SortKey::Filename => SortValue::Text(m.filename.clone()),
        }
    }
}

/// A sort key's value in one row, as a page cursor holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortValue {
    /// Times and sizes.
    Int(i64),
    /// Titles and filenames.
    Text(String),
}

/// Where the next page starts: strictly after this row in the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    /// The last row's sort key.
    pub value: SortValue,
    /// The last row's id.
    pub id: MediaId,
}

/// An inclusive-exclusive range of µs timestamps; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    /// First µs included.
    pub start: Option<i64>,
    /// First µs excluded.
    pub end: Option<i64>,
}

/// An inclusive range; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bounds {
    /// Smallest value included.
    pub min: Option<i64>,
    /// Largest value included.
    pub max: Option<i64>,
}

/// Conditions a media must meet, all at once. Validated at the edge.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaFilter {
    /// Any of these types.
    pub types: Vec<MediaType>,
    /// Any of these exact MIME types.
    pub mime_types: Vec<String>,
    /// Any MIME type starting with one of these (from "image/*": "image/").
    pub mime_prefixes: Vec<String>,
    /// At least one of these tags.
    pub tags_any: Vec<String>,
    /// All of these tags.
    pub tags_all: Vec<String>,
    /// Year taken (else created).
    pub year: Option<i32>,
    /// Month taken (else created).
    pub month: Option<i32>,
    /// Creation time.
    pub created: TimeRange,
    /// Time taken.
    pub taken: TimeRange,
    /// Size in bytes.
    pub size: Bounds,
    /// Width in pixels.
    pub width: Bounds,
    /// Height in pixels.
    pub height: Bounds,
    /// Lower-cased text the title, filename or a tag contains.
    pub text: Option<String>,
    /// Made by any of these principals.
    pub created_by: Vec<String>,
    /// Made by a principal with any of these roles.
    pub created_roles: Vec<String>,
    /// In any of these projects.
    pub project_ids: Vec<String>,
    /// Public, or not.
    pub public: Option<bool>,
    /// In a slot of this resource.
    pub slot_resource: Option<String>,
    /// With `slot_resource`: in a slot whose key starts with this.
    pub slot_key_prefix: Option<String>,
    /// With any of these codes.
    pub codes: Vec<String>,
}

/// A whole listing request, minus the page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaQuery {
    /// Only media in this folder (and below it, if `recursive`).
    pub folder: Option<FolderId>,
    /// Include subfolders.
    pub recursive: bool,
    /// Conditions.
    pub filter: MediaFilter,
    /// Sort key.
    pub order: SortKey,
    /// Smallest first.
    pub ascending: bool,
}

/// A change to a media's descriptive fields; `None` leaves a field as is.
#[derive(Debug, Default, Clone)]
pub struct MediaPatch {
    /// New title.
    pub title: Option<String>,
    /// New tags (normalized).
    pub tags: Option<Vec<String>>,
    /// New author (inner `None` clears it).
    pub author: Option<Option<String>>,
    /// New copyright (inner `None` clears it).
    pub copyright: Option<Option<String>>,
    /// New custom metadata (inner `None` clears it).
    pub metadata: Option<Option<serde_json::Value>>,
    /// New public flag.
    pub public: Option<bool>,
    /// New project id.
    pub project_id: Option<String>,
    /// Who changes it.
    pub updated_by: String,
}
