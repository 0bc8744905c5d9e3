//! `ListMediaRequest` -> `MediaQuery`, page sizes, and field masks.

use std::collections::HashSet;

use prost_types::{FieldMask, Timestamp};

use crate::{
    domain::{
        Bounds, FolderId, MAX_FILTER_VALUES, MAX_PROJECT_ID_CHARS, MAX_QUERY_CHARS, MAX_SLOT_CHARS,
        MAX_TAGS_ALL, MediaFilter, MediaQuery, MediaType, Slot, SortKey, TimeRange, check_text,
        normalize_tags, parse_code,
    },
    error::{Error, Reason, Result},
    pb::v1 as pb,
};

/// Page size when the request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page (AIP-158): larger requests are refused, so a client
/// learns the limit instead of silently getting fewer rows.
pub const MAX_PAGE_SIZE: u64 = 1000;
/// Most ids in one batch request.
pub const MAX_BATCH_IDS: usize = 1000;

/// Validates a requested page size.
pub fn page_size(field: &str, n: i32) -> Result<u64> {
    match n {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 || n as u64 > MAX_PAGE_SIZE => Err(Error::invalid(
            field,
            format!(
                "{field} {n} is out of range; use 1-{MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}"
            ),
        )),
        n => Ok(n as u64),
    }
}

/// Validates a list of ids for a batch call.
pub fn batch_ids(field: &str, ids: &[String]) -> Result<Vec<crate::domain::MediaId>> {
    if ids.is_empty() {
        return Err(Error::required(field, "send at least one id"));
    }
    if ids.len() > MAX_BATCH_IDS {
        return Err(Error::invalid(
            field,
            format!(
                "{} ids were sent; the limit is {MAX_BATCH_IDS} per call",
                ids.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let id = crate::domain::MediaId::parse(&format!("{field}[{i}]"), id)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// An optional folder id: empty means none.
pub fn optional_folder(field: &str, s: &str) -> Result<Option<FolderId>> {
    if s.is_empty() {
        Ok(None)
    } else {
        FolderId::parse(field, s).map(Some)
    }
}

/// The query part of a `ListMediaRequest` (everything but the page).
pub fn media_query(req: &pb::ListMediaRequest) -> Result<MediaQuery> {
    let folder = optional_folder("parent_folder_id", &req.parent_folder_id)?;
    if req.recursive && folder.is_none() {
        return Err(Error::bad(
            Reason::FieldConflict,
            "recursive",
            "recursive needs a parent_folder_id; without one every media of the tenant is listed already",
        ));
    }
    let order = match pb::MediaOrderBy::try_from(req.order_by) {
        Ok(pb::MediaOrderBy::Unspecified | pb::MediaOrderBy::CreateTime) => SortKey::Created,
        Ok(pb::MediaOrderBy::UpdateTime) => SortKey::Updated,
        Ok(pb::MediaOrderBy::TakenTime) => SortKey::Taken,
        Ok(pb::MediaOrderBy::Size) => SortKey::Size,
        Ok(pb::MediaOrderBy::Title) => SortKey::Title,
        Ok(pb::MediaOrderBy::Filename) => SortKey::Filename,
        Err(_) => {
            return Err(Error::invalid(
                "order_by",
                format!("{} is not a MediaOrderBy value", req.order_by),
            ));
        }
    };
    let filter = match &req.filter {
        Some(f) => media_filter(f)?,
        None => MediaFilter::default(),
    };
    Ok(MediaQuery {
        folder,
        recursive: req.recursive,
        filter,
        order,
        ascending: req.ascending,
    })
}

fn media_filter(f: &pb::MediaFilter) -> Result<MediaFilter> {
    let at = |name: &str| format!("filter.{name}");
    for (name, n) in [
        ("media_types", f.media_types.len()),
        ("mime_types", f.mime_types.len()),
        ("tags_any", f.tags_any.len()),
        ("created_by", f.created_by.len()),
        ("created_roles", f.created_roles.len()),
        ("project_ids", f.project_ids.len()),
        ("codes", f.codes.len()),
    ] {
        if n > MAX_FILTER_VALUES {
            return Err(Error::invalid(
                at(name),
                format!("{n} values were sent; the limit is {MAX_FILTER_VALUES}"),
            ));
        }
    }
    if f.tags_all.len() > MAX_TAGS_ALL {
        return Err(Error::invalid(
            at("tags_all"),
            format!(
                "{} tags were sent; the limit is {MAX_TAGS_ALL}",
                f.tags_all.len()
            ),
        ));
    }
    let mut types = Vec::new();
    for (i, t) in f.media_types.iter().enumerate() {
        let t = match pb::MediaType::try_from(*t) {
            Ok(pb::MediaType::Image) => MediaType::Image,
            Ok(pb::MediaType::Video) => MediaType::Video,
            Ok(pb::MediaType::Audio) => MediaType::Audio,
            Ok(pb::MediaType::Document) => MediaType::Document,
            Ok(pb::MediaType::Other) => MediaType::Other,
            _ => {
                return Err(Error::invalid(
                    format!("filter.media_types[{i}]"),
                    format!(
                        "{t} is not a media type to filter on; use IMAGE, VIDEO, AUDIO, DOCUMENT or OTHER"
                    ),
                ));
            }
        };
        types.push(t);
    }
    let (mut mime_types, mut mime_prefixes) = (Vec::new(), Vec::new());
    for (i, m) in f.mime_types.iter().enumerate() {
        let field = format!("filter.mime_types[{i}]");
        let m = m.trim().to_ascii_lowercase();
        match m.strip_suffix("/*") {
            Some(family) if !family.is_empty() && !family.contains('/') => {
                mime_prefixes.push(format!("{family}/"));
            }
            _ if m
                .split_once('/')
                .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty()) =>
            {
                mime_types.push(m);
            }
            _ => {
                return Err(Error::invalid(
                    field,
                    format!(
                        "{m:?} is not a MIME type; use type/subtype (image/png) or a family (image/*)"
                    ),
                ));
            }
        }
    }
    let month = f.month.map(|m| m as i32);
    if let Some(m) = month
        && !(1..=12).contains(&m)
    {
        return Err(Error::invalid(
            at("month"),
            format!("month {m} is not 1-12"),
        ));
    }
    let text = if f.query.trim().is_empty() {
        None
    } else {
        check_text(&at("query"), f.query.trim(), MAX_QUERY_CHARS)?;
        Some(f.query.trim().to_lowercase())
    };
    Ok(MediaFilter {
        types,
        mime_types,
        mime_prefixes,
        tags_any: normalize_tags(&at("tags_any"), &f.tags_any)?,
        tags_all: normalize_tags(&at("tags_all"), &f.tags_all)?,
        year: f.year.map(|y| i32::try_from(y).unwrap_or(i32::MAX)),
        month,
        created: time_range(&at("create_time"), f.create_time.as_ref())?,
        taken: time_range(&at("taken_time"), f.taken_time.as_ref())?,
        size: bounds(&at("size_bytes"), f.min_size_bytes, f.max_size_bytes)?,
        width: bounds(
            &at("width"),
            f.min_width.map(u64::from),
            f.max_width.map(u64::from),
        )?,
        height: bounds(
            &at("height"),
            f.min_height.map(u64::from),
            f.max_height.map(u64::from),
        )?,
        text,
        created_by: exact_values(&at("created_by"), &f.created_by)?,
        created_roles: exact_values(&at("created_roles"), &f.created_roles)?,
        project_ids: exact_values(&at("project_ids"), &f.project_ids)?,
        public: f.public,
        slot_resource: (!f.slot_resource.is_empty())
            .then(|| Slot::parse(&at("slot"), &f.slot_resource, "").map(|s| s.resource))
            .transpose()?,
        slot_key_prefix: match (f.slot_key_prefix.is_empty(), f.slot_resource.is_empty()) {
            (true, _) => None,
            (false, true) => {
                return Err(Error::bad(
                    Reason::FieldConflict,
                    at("slot_key_prefix"),
                    "slot_key_prefix needs slot_resource",
                ));
            }
            (false, false) => {
                check_text(&at("slot_key_prefix"), &f.slot_key_prefix, MAX_SLOT_CHARS)?;
                Some(f.slot_key_prefix.clone())
            }
        },
        codes: f
            .codes
            .iter()
            .enumerate()
            .map(|(i, c)| parse_code(&at(&format!("codes[{i}]")), c))
            .collect::<Result<_>>()?,
    })
}

/// Values a filter matches exactly, as they are stored: trimmed, without
/// control characters.
fn exact_values(field: &str, values: &[String]) -> Result<Vec<String>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let field = format!("{field}[{i}]");
            check_text(&field, v, MAX_PROJECT_ID_CHARS.max(255))?;
            Ok(v.trim().to_string())
        })
        .collect()
}

pub fn micros(field: &str, t: &Timestamp) -> Result<i64> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(Error::invalid(field, "nanos must be 0-999,999,999"));
    }
    t.seconds
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add(i64::from(t.nanos / 1000)))
        .ok_or_else(|| Error::invalid(field, "the time is out of range"))
}

pub(super) fn time_range(field: &str, r: Option<&pb::TimeRange>) -> Result<TimeRange> {
    let Some(r) = r else {
        return Ok(TimeRange::default());
    };
    let start = r
        .start_time
        .as_ref()
        .map(|t| micros(field, t))
        .transpose()?;
    let end = r.end_time.as_ref().map(|t| micros(field, t)).transpose()?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(Error::invalid(field, "start_time is after end_time"));
    }
    Ok(TimeRange { start, end })
}

fn bounds(field: &str, min: Option<u64>, max: Option<u64>) -> Result<Bounds> {
    if let (Some(a), Some(b)) = (min, max)
        && a > b
    {
        return Err(Error::invalid(
            field,
            format!("the minimum {a} is above the maximum {b}"),
        ));
    }
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Ok(Bounds {
        min: min.map(clamp),
        max: max.map(clamp),
    })
}

/// The fields of a message a read mask may name (`$names`), and the
/// function that clears those a mask leaves out (`$apply`).
macro_rules! read_mask_fields {
    ($names:ident, $apply:ident, $message:ty; $($field:ident $(=> $name:literal)?),* $(,)?) => {
        #[doc = concat!("Every `", stringify!($message), "` field a read mask may name.")]
        pub const $names: &[&str] = &[$(read_mask_fields!(@name $field $($name)?)),*];

        /// Clears the fields that `keep` does not name (`id` stays).
        pub fn $apply(m: &mut $message, keep: &HashSet<String>) {
            $(
                if !keep.contains(read_mask_fields!(@name $field $($name)?)) {
                    m.$field = Default::default();
                }
            )*
        }
    };
    (@name $field:ident $name:literal) => { $name };
    (@name $field:ident) => { stringify!($field) };
}

read_mask_fields!(
    MEDIA_FIELDS,
    apply_read_mask,
    pb::Media;
    parent_folder_id,
    media_type,
    filename,
    original_filename,
    title,
    mime_type,
    size_bytes,
    blake3,
    md5,
    width,
    height,
    duration_ms,
    fps,
    video_codec,
    audio_codec,
    exif,
    latitude,
    longitude,
    altitude,
    taken_time,
    taken_year,
    taken_month,
    orientation,
    dpi_x,
    dpi_y,
    tags,
    author,
    copyright,
    metadata,
    create_time,
    update_time,
    created_by,
    updated_by,
    ready,
    public,
    camera,
    taken_time_offset,
    layout,
    sample_rate,
    channels,
    bitrate,
    page_count,
    analysis_error,
    embedded_tags,
    analysis_warnings,
    rotation,
    url,
    slot,
    code,
);

read_mask_fields!(
    JOB_FIELDS,
    apply_job_read_mask,
    pb::Job;
    kind,
    status,
    priority,
    progress,
    progress_message,
    attempts,
    max_attempts,
    last_error,
    unique_key,
    payload,
    result,
    scheduled_at,
    started_at,
    finished_at,
    created_at,
    updated_at,
    worker,
    lease_expires_at,
    cancel_requested,
    created_by,
);

/// The validated paths of a field mask over `Media`, from `allowed`.
pub fn mask_paths(
    field: &str,
    mask: Option<&FieldMask>,
    allowed: &[&str],
) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for (i, path) in mask
        .map(|m| m.paths.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if path != "id" && !allowed.contains(&path.as_str()) {
            return Err(Error::bad(
                Reason::FieldMaskInvalid,
                format!("{field}.paths[{i}]"),
                format!(
                    "{path:?} is not a field that can be named here; use {}",
                    allowed.join(", ")
                ),
            ));
        }
        out.insert(path.clone());
    }
    Ok(out)
}
