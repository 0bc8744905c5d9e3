//! Protobuf <-> domain conversions: where client input is validated.

use std::collections::BTreeMap;

use prost_types::{ListValue, Struct, Timestamp, Value, value::Kind};

use crate::{
    domain::{
        Binding, ContentHash, Facts, Filename, Folder, FolderId, MAX_CREDIT_CHARS,
        MAX_METADATA_BYTES, MAX_PROJECT_ID_CHARS, MAX_TITLE_CHARS, Md5Digest, Media, MediaPatch,
        MediaType, Principal, Rendition, Slot, SlotPolicy, UploadSpec, check_text, normalize_tags,
        parse_code,
    },
    error::{Error, Reason, Result},
    library::{Library, RenditionRequest},
    pb::v1 as pb,
    render::{Fit, OutputFormat, RenditionSpec},
};

/// Content type recorded when the client declares none.
const DEFAULT_MIME: &str = "application/octet-stream";

/// Validates an upload header.
pub fn upload_spec(principal: &Principal, h: pb::UploadHeader) -> Result<UploadSpec> {
    let folder = if h.parent_folder_id.is_empty() {
        None
    } else {
        Some(FolderId::parse(
            "header.parent_folder_id",
            &h.parent_folder_id,
        )?)
    };
    let filename = Filename::parse("header.filename", &h.filename)?;
    check_text("header.title", &h.title, MAX_TITLE_CHARS)?;
    let tags = normalize_tags("header.tags", &h.tags)?;
    let mime_type = if h.content_type.is_empty() {
        DEFAULT_MIME.to_string()
    } else {
        parse_mime("header.content_type", &h.content_type)?
    };
    let expected_blake3 = non_empty(&h.expected_blake3)
        .map(|s| ContentHash::parse("header.expected_blake3", s))
        .transpose()?;
    let expected_md5 = non_empty(&h.expected_md5)
        .map(|s| Md5Digest::parse("header.expected_md5", s))
        .transpose()?;
    let metadata = h
        .metadata
        .map(|s| struct_to_json("header.metadata", s))
        .transpose()?;
    check_text("header.author", &h.author, MAX_CREDIT_CHARS)?;
    check_text("header.copyright", &h.copyright, MAX_CREDIT_CHARS)?;
    Ok(UploadSpec {
        tenant: principal.tenant,
        folder,
        filename,
        title: h.title.trim().to_string(),
        tags,
        declared_size: h.size_bytes,
        mime_type,
        expected_blake3,
        expected_md5,
        metadata,
        author: non_empty(&h.author).map(str::to_string),
        copyright: non_empty(&h.copyright).map(str::to_string),
        public: h.public,
        created_by: principal.name.clone(),
        created_role: principal.role.clone(),
        project_id: project_id("header.project_id", &h.project_id)?,
        slot: h
            .slot
            .as_ref()
            .map(|s| slot("header.slot", s))
            .transpose()?,
        slot_policy: match pb::SlotPolicy::try_from(h.slot_policy) {
            Ok(pb::SlotPolicy::Unspecified) => SlotPolicy::Replace,
            Ok(pb::SlotPolicy::KeepReplaced) => SlotPolicy::ReplaceKeep,
            Ok(pb::SlotPolicy::Refuse) => SlotPolicy::Refuse,
            Err(_) => {
                return Err(Error::invalid(
                    "header.slot_policy",
                    format!("{} is not a slot policy", h.slot_policy),
                ));
            }
        },
        code: non_empty(&h.code)
            .map(|c| parse_code("header.code", c))
            .transpose()?,
    })
}

/// A slot a client named in `field`.
pub fn slot(field: &str, s: &pb::MediaSlot) -> Result<Slot> {
    Slot::parse(field, &s.resource, &s.key)
}

/// A checked project id: at most 200 characters, no control characters,
/// trimmed.
fn project_id(field: &str, s: &str) -> Result<String> {
    check_text(field, s, MAX_PROJECT_ID_CHARS)?;
    Ok(s.trim().to_string())
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// Checks `type/subtype` (parameters allowed) and lowercases the type.
fn parse_mime(field: &str, s: &str) -> Result<String> {
    let essence = s
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let valid_token = |t: &str| {
        !t.is_empty()
            && t.len() <= 127
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    match essence.split_once('/') {
        Some((top, sub)) if valid_token(top) && valid_token(sub) => Ok(essence),
        _ => Err(Error::invalid(
            field,
            format!(
                "{:?} is not a content type; write it as type/subtype, e.g. image/jpeg",
                crate::domain::truncate_for_message(s)
            ),
        )),
    }
}

/// Converts custom metadata to JSON, bounding its size.
pub fn struct_to_json(field: &str, s: Struct) -> Result<serde_json::Value> {
    let json = serde_json::Value::Object(
        s.fields
            .into_iter()
            .map(|(k, v)| (k, value_to_json(v)))
            .collect(),
    );
    let size = json.to_string().len();
    if size > MAX_METADATA_BYTES {
        return Err(Error::invalid(
            field,
            format!("metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}"),
        ));
    }
    Ok(json)
}

fn value_to_json(v: Value) -> serde_json::Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::StructValue(s)) => serde_json::Value::Object(
            s.fields
                .into_iter()
                .map(|(k, v)| (k, value_to_json(v)))
                .collect(),
        ),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.into_iter().map(value_to_json).collect())
        }
    }
}

fn json_to_value(v: &serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    Value { kind: Some(kind) }
}

/// A JSON object as a protobuf `Struct`.
pub(super) fn json_to_struct(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// The change an `UpdateMedia` asks for: the masked fields of `m`,
/// validated as an upload header's are.
pub fn media_patch(
    principal: &Principal,
    m: pb::Media,
    paths: &std::collections::HashSet<String>,
) -> Result<MediaPatch> {
    if paths.is_empty() {
        return Err(Error::required(
            "update_mask",
            "name the fields to change in update_mask, e.g. paths: [\"title\", \"tags\"]",
        ));
    }
    let mut patch = MediaPatch {
        updated_by: principal.name.clone(),
        ..Default::default()
    };
    if paths.contains("title") {
        check_text("media.title", &m.title, MAX_TITLE_CHARS)?;
        patch.title = Some(m.title.trim().to_string());
    }
    if paths.contains("tags") {
        patch.tags = Some(normalize_tags("media.tags", &m.tags)?);
    }
    if paths.contains("author") {
        check_text("media.author", &m.author, MAX_CREDIT_CHARS)?;
        patch.author = Some(non_empty(&m.author).map(str::to_string));
    }
    if paths.contains("copyright") {
        check_text("media.copyright", &m.copyright, MAX_CREDIT_CHARS)?;
        patch.copyright = Some(non_empty(&m.copyright).map(str::to_string));
    }
    if paths.contains("metadata") {
        patch.metadata = Some(
            m.metadata
                .map(|s| struct_to_json("media.metadata", s))
                .transpose()?,
        );
    }
    if paths.contains("public") {
        patch.public = Some(m.public);
    }
    if paths.contains("project_id") {
        patch.project_id = Some(project_id("media.project_id", &m.project_id)?);
    }
    Ok(patch)
}

/// A domain folder as the API shows it.
pub fn folder_to_pb(f: Folder) -> pb::Folder {
    pb::Folder {
        id: f.id.to_string(),
        parent_folder_id: f.parent.map(|p| p.to_string()).unwrap_or_default(),
        name: f.name,
        path: f.path.as_str().to_string(),
        depth: f.depth,
        media_count: f.media_count,
        size_bytes: f.size_bytes,
        created_by: f.created_by,
        updated_by: f.updated_by,
        created_role: f.created_role,
        public: f.public,
        create_time: Some(timestamp(f.created_at)),
        update_time: Some(timestamp(f.updated_at)),
    }
}

/// A folder as a tree node, `base` being the depth of the tree's top.
pub fn tree_node_to_pb(f: &Folder, base: u32) -> pb::FolderTreeNode {
    pb::FolderTreeNode {
        id: f.id.to_string(),
        parent_folder_id: f.parent.map(|p| p.to_string()).unwrap_or_default(),
        name: f.name.clone(),
        level: f.depth.saturating_sub(base),
        media_count: f.media_count,
        size_bytes: f.size_bytes,
    }
}

/// A domain binding as the API shows it.
pub fn binding_to_pb(b: Binding) -> pb::Binding {
    pb::Binding {
        media_id: b.key.media.to_string(),
        module: b.key.module,
        object_id: b.key.object_id,
        create_time: Some(timestamp(b.created_at)),
    }
}

/// A µs timestamp as a protobuf `Timestamp`.
pub fn timestamp(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

fn media_type(t: MediaType) -> pb::MediaType {
    match t {
        MediaType::Image => pb::MediaType::Image,
        MediaType::Video => pb::MediaType::Video,
        MediaType::Audio => pb::MediaType::Audio,
        MediaType::Document => pb::MediaType::Document,
        MediaType::Other => pb::MediaType::Other,
    }
}

/// A domain media as the API shows it, with its `url` when the server
/// makes URLs.
pub fn media_out(library: &Library, m: Media) -> pb::Media {
    let url = library.url_of(&m);
    let mut out = media_to_pb(m);
    out.url = url.unwrap_or_default();
    out
}

/// A domain media as the API shows it, without its `url`.
pub fn media_to_pb(m: Media) -> pb::Media {
    let a = m.analysis;
    let exif = match a.exif {
        Some(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
        _ => Default::default(),
    };
    let unsigned = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    pb::Media {
        url: String::new(),
        id: m.id.to_string(),
        parent_folder_id: m.folder.to_string(),
        media_type: media_type(m.media_type) as i32,
        filename: m.filename,
        original_filename: m.original_filename,
        title: m.title,
        mime_type: m.mime_type,
        size_bytes: m.size,
        blake3: m.content.to_hex(),
        md5: m.md5.unwrap_or_default(),
        width: unsigned(a.width),
        height: unsigned(a.height),
        duration_ms: a
            .duration_ms
            .and_then(|d| u64::try_from(d).ok())
            .unwrap_or(0),
        fps: a.fps.unwrap_or(0.0),
        video_codec: a.video_codec.unwrap_or_default(),
        audio_codec: a.audio_codec.unwrap_or_default(),
        exif,
        latitude: a.latitude,
        longitude: a.longitude,
        altitude: a.altitude,
        taken_time: a.taken_at.map(timestamp),
        taken_year: unsigned(a.taken_year),
        taken_month: unsigned(a.taken_month),
        orientation: unsigned(a.orientation),
        dpi_x: a.dpi_x.unwrap_or(0.0),
        dpi_y: a.dpi_y.unwrap_or(0.0),
        tags: m.tags,
        author: m.author.unwrap_or_default(),
        copyright: m.copyright.unwrap_or_default(),
        metadata: match m.metadata {
            Some(serde_json::Value::Object(map)) => Some(json_to_struct(&map)),
            _ => None,
        },
        create_time: Some(timestamp(m.created_at)),
        update_time: Some(timestamp(m.updated_at)),
        created_by: m.created_by,
        updated_by: m.updated_by,
        created_role: m.created_role,
        project_id: m.project_id,
        slot: m.slot.map(|s| pb::MediaSlot {
            resource: s.resource,
            key: s.key,
        }),
        code: m.code.unwrap_or_default(),
        ready: m.ready,
        public: m.public,
        layout: layout(a.width, a.height, a.orientation) as i32,
        camera: camera(&a.facts),
        taken_time_offset: a.facts.taken_offset.unwrap_or_default(),
        sample_rate: a.facts.sample_rate.unwrap_or(0),
        channels: a.facts.channels.unwrap_or(0),
        bitrate: a.facts.bitrate.unwrap_or(0),
        page_count: a.facts.page_count.unwrap_or(0),
        analysis_error: a.error.unwrap_or_default(),
        embedded_tags: a.facts.tags.into_iter().collect(),
        analysis_warnings: a.facts.warnings,
        rotation: a.facts.rotation.unwrap_or(0),
        // Read separately, by GetMedia.
        renditions: Vec::new(),
    }
}

/// Validates a rendition request: a preset alone, or a size, fit, format
/// and quality.
pub fn rendition_request(r: &pb::GetRenditionRequest) -> Result<RenditionRequest> {
    rendition_fields(&RenditionFields {
        preset: &r.preset,
        width: r.width,
        height: r.height,
        fit: r.fit,
        format: r.format,
        quality: r.quality,
    })
}

/// The fields that describe a rendition, in GetRendition and GetMediaUrl.
#[derive(Debug, Clone, Copy)]
pub struct RenditionFields<'a> {
    /// A preset's name.
    pub preset: &'a str,
    /// Box width.
    pub width: u32,
    /// Box height.
    pub height: u32,
    /// `RenditionFit`.
    pub fit: i32,
    /// `RenditionFormat`.
    pub format: i32,
    /// JPEG quality.
    pub quality: u32,
}

impl RenditionFields<'_> {
    /// Whether any field is set.
    pub fn any(&self) -> bool {
        !self.preset.trim().is_empty()
            || self.width != 0
            || self.height != 0
            || self.fit != 0
            || self.format != 0
            || self.quality != 0
    }
}

/// A rendition request from its fields, as GetRendition reads them.
pub fn rendition_fields(r: &RenditionFields<'_>) -> Result<RenditionRequest> {
    let preset = r.preset.trim();
    let explicit = r.width != 0 || r.height != 0 || r.fit != 0 || r.format != 0 || r.quality != 0;
    if !preset.is_empty() {
        if explicit {
            return Err(Error::bad(
                Reason::FieldConflict,
                "preset",
                "give either a preset or width, height, fit, format and quality, not both",
            ));
        }
        return Ok(RenditionRequest::Preset(preset.to_string()));
    }
    let fit = match pb::RenditionFit::try_from(r.fit) {
        Ok(pb::RenditionFit::Unspecified | pb::RenditionFit::Contain) => Fit::Contain,
        Ok(pb::RenditionFit::Cover) => Fit::Cover,
        Ok(pb::RenditionFit::Fill) => Fit::Fill,
        Ok(pb::RenditionFit::ScaleDown) => Fit::ScaleDown,
        Err(_) => {
            return Err(Error::invalid(
                "fit",
                format!("{} is not a RenditionFit", r.fit),
            ));
        }
    };
    let format = match pb::RenditionFormat::try_from(r.format) {
        Ok(pb::RenditionFormat::Unspecified | pb::RenditionFormat::Jpeg) => OutputFormat::Jpeg,
        Ok(pb::RenditionFormat::Png) => OutputFormat::Png,
        Ok(pb::RenditionFormat::Webp) => OutputFormat::Webp,
        Err(_) => {
            return Err(Error::invalid(
                "format",
                format!("{} is not a RenditionFormat", r.format),
            ));
        }
    };
    let quality = match r.quality {
        0 => DEFAULT_QUALITY,
        q @ 1..=100 => q as u8,
        q => {
            return Err(Error::invalid(
                "quality",
                format!("quality {q} is out of range; use 1-100 (or 0 for {DEFAULT_QUALITY})"),
            ));
        }
    };
    Ok(RenditionRequest::Spec(RenditionSpec {
        width: r.width,
        height: r.height,
        fit,
        format,
        quality,
    }))
}

/// JPEG quality when a request leaves it at 0.
const DEFAULT_QUALITY: u8 = 80;

/// A rendition as clients see it.
pub fn rendition_to_pb(r: Rendition) -> pb::Rendition {
    pb::Rendition {
        key: r.key,
        mime_type: r.mime_type,
        width: r.width,
        height: r.height,
        size_bytes: r.size,
        blake3: r.content.to_hex(),
        create_time: Some(timestamp(r.created_at)),
    }
}

/// Landscape or portrait as shown: orientations 5-8 turn the picture a
/// quarter, swapping width and height.
fn layout(width: Option<i32>, height: Option<i32>, orientation: Option<i32>) -> pb::Layout {
    let (Some(w), Some(h)) = (width, height) else {
        return pb::Layout::Unspecified;
    };
    let (w, h) = if matches!(orientation, Some(5..=8)) {
        (h, w)
    } else {
        (w, h)
    };
    match w.cmp(&h) {
        std::cmp::Ordering::Greater => pb::Layout::Landscape,
        std::cmp::Ordering::Less => pb::Layout::Portrait,
        std::cmp::Ordering::Equal => pb::Layout::Square,
    }
}

fn camera(f: &Facts) -> Option<pb::Camera> {
    let c = pb::Camera {
        make: f.camera_make.clone().unwrap_or_default(),
        model: f.camera_model.clone().unwrap_or_default(),
        lens: f.lens_model.clone().unwrap_or_default(),
        flash_fired: f.flash_fired,
        exposure_time_seconds: f.exposure_time,
        f_number: f.f_number,
        iso: f.iso,
        focal_length_mm: f.focal_length_mm,
    };
    (c != pb::Camera::default()).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types_are_checked() {
        assert_eq!(
            parse_mime("f", "Image/JPEG; charset=x").expect("valid"),
            "image/jpeg"
        );
        assert!(parse_mime("f", "jpeg").is_err());
        assert!(parse_mime("f", "image/").is_err());
        assert!(parse_mime("f", "image/jp eg").is_err());
    }

    #[test]
    fn metadata_round_trips() {
        let json = serde_json::json!({"a": 1.5, "b": [true, null, "x"], "c": {"d": "e"}});
        let serde_json::Value::Object(map) = &json else {
            panic!("object")
        };
        let back = struct_to_json("m", json_to_struct(map)).expect("fits");
        assert_eq!(back, json);
    }

    #[test]
    fn timestamps_split_micros() {
        let t = timestamp(1_500_000_250);
        assert_eq!((t.seconds, t.nanos), (1500, 250_000));
        let t = timestamp(-1);
        assert_eq!((t.seconds, t.nanos), (-1, 999_999_000));
    }
}
