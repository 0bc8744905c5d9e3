//! Matroska and WebM (EBML).

use super::{AvInfo, BTreeMap, Input, MAX_CHILDREN, Read, Seek, clean_text, round3};

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const TITLE: u32 = 0x7BA9;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const DEFAULT_DURATION: u32 = 0x23_E383;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const OUTPUT_SAMPLING_FREQUENCY: u32 = 0x78B5;
const CHANNELS: u32 = 0x9F;
const BIT_DEPTH: u32 = 0x6264;
const TAGS: u32 = 0x1254_C367;
const TAG: u32 = 0x7373;
const TARGETS: u32 = 0x63C0;
const TAG_UIDS: [u32; 4] = [0x63C5, 0x63C9, 0x63C4, 0x63C6];
const SIMPLE_TAG: u32 = 0x67C8;
const TAG_NAME: u32 = 0x45A3;
const TAG_STRING: u32 = 0x4487;
const CLUSTER: u32 = 0x1F43_B675;

/// Longest string element read.
const MAX_STRING: u64 = 4096;

/// An element header: its ID and where its body starts and ends.
#[derive(Debug, Clone, Copy)]
struct Elem {
    id: u32,
    body: u64,
    end: u64,
    /// The size was "unknown" (live streams); `end` is the parent's end.
    unknown: bool,
}

/// What `Info` says.
#[derive(Debug)]
struct Info {
    timestamp_scale: u64,
    duration: Option<f64>,
    title: Option<String>,
}

/// What one `TrackEntry` says.
#[derive(Debug, Default)]
struct Track {
    kind: u64,
    codec_id: String,
    default_duration: Option<u64>,
    width: Option<u64>,
    height: Option<u64>,
    sampling_frequency: Option<f64>,
    output_sampling_frequency: Option<f64>,
    channels: Option<u64>,
    bit_depth: Option<u64>,
}

/// Global tags, and the longest per-track `DURATION` tag in nanoseconds.
#[derive(Debug, Default)]
struct Tags {
    global: BTreeMap<String, String>,
    track_duration_ns: Option<u64>,
}

/// Reads an EBML variable-length integer at `pos`: (value, length).
/// For IDs the length marker is kept; for sizes it is removed.
fn vint<R: Read + Seek>(
    inp: &mut Input<R>,
    pos: u64,
    max_len: u32,
    keep_marker: bool,
) -> Result<(u64, u32, bool), String> {
    let first = inp.u8_at(pos)?;
    let len = first.leading_zeros() + 1;
    if len > max_len {
        return Err(format!(
            "the EBML data at byte {pos} is not a valid element"
        ));
    }
    let mut value = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & ((1u64 << (8 - len)) - 1)
    };
    let mut all_ones = value == (1u64 << (8 - len)) - 1;
    for i in 1..len {
        let b = inp.u8_at(pos + u64::from(i))?;
        all_ones &= b == 0xFF;
        value = (value << 8) | u64::from(b);
    }
    Ok((value, len, all_ones))
}

/// Reads the element header at `pos`; `None` at or past `parent_end`.
/// An element that overruns its parent is an error unless `lenient`.
fn header<R: Read + Seek>(
    inp: &mut Input<R>,
    pos: u64,
    parent_end: u64,
    lenient: bool,
) -> Result<Option<Elem>, String> {
    if pos >= parent_end {
        return Ok(None);
    }
    let (id, id_len, _) = vint(inp, pos, 4, true)?;
    let (size, size_len, unknown) = vint(inp, pos + u64::from(id_len), 8, false)?;
    let body = pos + u64::from(id_len) + u64::from(size_len);
    let id = u32::try_from(id).map_err(|_| "an EBML ID is too long".to_owned())?;
    // Never before `body`: an unknown-size element whose header runs past
    // its parent's end (found by fuzzing) would otherwise end before it
    // starts.
    let end = if unknown {
        parent_end.max(body)
    } else {
        body.saturating_add(size)
    };
    if end > parent_end && !lenient {
        return Err(format!(
            "the EBML element {id:#X} at byte {pos} claims {size} bytes, more than its parent holds (the file is truncated or corrupt)"
        ));
    }
    Ok(Some(Elem {
        id,
        body,
        end,
        unknown,
    }))
}

fn children<R: Read + Seek>(inp: &mut Input<R>, parent: Elem) -> Result<Vec<Elem>, String> {
    let mut out = Vec::new();
    let mut pos = parent.body;
    while out.len() < MAX_CHILDREN {
        let Some(e) = header(inp, pos, parent.end, false)? else {
            break;
        };
        out.push(e);
        if e.unknown {
            break;
        }
        pos = e.end;
    }
    Ok(out)
}

fn uint<R: Read + Seek>(inp: &mut Input<R>, e: Elem) -> Result<u64, String> {
    let len = e.end - e.body;
    if len > 8 {
        return Err(format!("the EBML integer {:#X} is {len} bytes long", e.id));
    }
    let bytes = inp.read_capped(e.body, e.end, 8)?;
    Ok(bytes.iter().fold(0, |v, &b| (v << 8) | u64::from(b)))
}

fn float<R: Read + Seek>(inp: &mut Input<R>, e: Elem) -> Result<Option<f64>, String> {
    if !matches!(e.end - e.body, 4 | 8) {
        return Ok(None);
    }
    let bytes = inp.read_capped(e.body, e.end, 8)?;
    Ok(match bytes.len() {
        4 => Some(f64::from(f32::from_be_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3],
        ]))),
        8 => Some(f64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]))),
        _ => None,
    }
    .filter(|v| v.is_finite() && *v >= 0.0))
}

fn string<R: Read + Seek>(inp: &mut Input<R>, e: Elem) -> Result<Option<String>, String> {
    if e.end - e.body > MAX_STRING {
        return Ok(None);
    }
    Ok(clean_text(&inp.read_capped(e.body, e.end, MAX_STRING)?))
}

/// Probes a Matroska or WebM file.
pub(super) fn probe<R: Read + Seek>(inp: &mut Input<R>) -> Result<AvInfo, String> {
    let len = inp.len;
    let ebml = header(inp, 0, len, true)?
        .filter(|e| e.id == EBML && e.end <= len)
        .ok_or_else(|| "the file does not start with an EBML header".to_owned())?;
    let mut doc_type = None;
    for c in children(inp, ebml)? {
        if c.id == DOC_TYPE {
            doc_type = string(inp, c)?;
        }
    }
    let doc_type = doc_type.unwrap_or_else(|| "matroska".to_owned());
    if doc_type != "webm" && doc_type != "matroska" {
        return Err(format!(
            "the EBML document type '{doc_type}' is not Matroska or WebM"
        ));
    }
    let segment = find_segment(inp, ebml.end)?;
    let (info, tracks, tags) = read_segment(inp, segment)?;
    Ok(summarise(info, tracks, tags))
}

fn find_segment<R: Read + Seek>(inp: &mut Input<R>, from: u64) -> Result<Elem, String> {
    let mut pos = from;
    for _ in 0..16 {
        let Some(e) = header(inp, pos, inp.len, true)? else {
            break;
        };
        if e.id == SEGMENT {
            // A truncated file still has its first elements: read what is there.
            return Ok(Elem {
                end: e.end.min(inp.len),
                ..e
            });
        }
        if e.unknown {
            break;
        }
        pos = e.end;
    }
    Err("the WebM/Matroska file has no Segment (the file is truncated)".to_owned())
}

type Found = (Option<Info>, Vec<Track>, Option<Tags>);

/// Reads the segment's top-level elements up to the first cluster, then
/// follows the `SeekHead` to any of Info, Tracks and Tags not yet seen.
fn read_segment<R: Read + Seek>(inp: &mut Input<R>, seg: Elem) -> Result<Found, String> {
    let (mut info, mut tracks, mut tags) = (None, None, None);
    let mut seeks: Vec<(u32, u64)> = Vec::new();
    let mut pos = seg.body;
    for _ in 0..MAX_CHILDREN {
        // A header cut by the end of a truncated file ends the walk.
        let Ok(Some(e)) = header(inp, pos, seg.end, true) else {
            break;
        };
        match e.id {
            SEEK_HEAD if e.end <= seg.end => seeks.extend(read_seek_head(inp, e)?),
            INFO | TRACKS if e.end > seg.end => {
                let name = if e.id == INFO { "Info" } else { "Tracks" };
                return Err(context(name, "it claims more bytes than the file holds"));
            }
            INFO => info = Some(read_info(inp, e).map_err(|e| context("Info", &e))?),
            TRACKS => tracks = Some(read_tracks(inp, e).map_err(|e| context("Tracks", &e))?),
            TAGS if e.end <= seg.end => tags = read_tags(inp, e).ok(),
            CLUSTER => break,
            _ => {}
        }
        if e.unknown || e.end >= seg.end {
            break;
        }
        pos = e.end;
    }
    for (id, offset) in seeks {
        let wanted = match id {
            INFO => info.is_none(),
            TRACKS => tracks.is_none(),
            TAGS => tags.is_none(),
            _ => false,
        };
        let Some(at) = seg
            .body
            .checked_add(offset)
            .filter(|&at| wanted && at < seg.end)
        else {
            continue;
        };
        let Ok(Some(e)) = header(inp, at, seg.end, false) else {
            continue;
        };
        match (id, e.id) {
            (INFO, INFO) => info = read_info(inp, e).ok(),
            (TRACKS, TRACKS) => tracks = read_tracks(inp, e).ok(),
            (TAGS, TAGS) => tags = read_tags(inp, e).ok(),
            _ => {}
        }
    }
    let tracks = tracks.ok_or_else(|| {
        "the WebM/Matroska file has no Tracks element (the file is truncated or corrupt)".to_owned()
    })?;
    Ok((info, tracks, tags))
}

fn context(element: &str, error: &str) -> String {
    format!("the WebM/Matroska {element} element is truncated or corrupt: {error}")
}

fn read_seek_head<R: Read + Seek>(
    inp: &mut Input<R>,
    head: Elem,
) -> Result<Vec<(u32, u64)>, String> {
    let mut out = Vec::new();
    for seek in children(inp, head)?.into_iter().filter(|e| e.id == SEEK) {
        let (mut id, mut position) = (None, None);
        for c in children(inp, seek)? {
            match c.id {
                SEEK_ID => id = u32::try_from(uint(inp, c)?).ok(),
                SEEK_POSITION => position = Some(uint(inp, c)?),
                _ => {}
            }
        }
        if let (Some(id), Some(position)) = (id, position) {
            out.push((id, position));
        }
    }
    Ok(out)
}

fn read_info<R: Read + Seek>(inp: &mut Input<R>, e: Elem) -> Result<Info, String> {
    let mut info = Info {
        timestamp_scale: 1_000_000,
        duration: None,
        title: None,
    };
    for c in children(inp, e)? {
        match c.id {
            TIMESTAMP_SCALE => info.timestamp_scale = uint(inp, c)?,
            DURATION => info.duration = float(inp, c)?,
            TITLE => info.title = string(inp, c)?,
            _ => {}
        }
    }
    Ok(info)
}

fn read_tracks<R: Read + Seek>(inp: &mut Input<R>, e: Elem) -> Result<Vec<Track>, String> {
    let mut tracks = Vec::new();
    for entry in children(inp, e)?
        .into_iter()
        .filter(|c| c.id == TRACK_ENTRY)
    {
        let mut t = Track::default();
        read_track_fields(inp, entry, &mut t, 0)?;
        tracks.push(t);
    }
    Ok(tracks)
}

fn read_track_fields<R: Read + Seek>(
    inp: &mut Input<R>,
    e: Elem,
    t: &mut Track,
    depth: u32,
) -> Result<(), String> {
    for c in children(inp, e)? {
        match c.id {
            TRACK_TYPE => t.kind = uint(inp, c)?,
            CODEC_ID => t.codec_id = string(inp, c)?.unwrap_or_default(),
            DEFAULT_DURATION => t.default_duration = Some(uint(inp, c)?),
            PIXEL_WIDTH => t.width = Some(uint(inp, c)?),
            PIXEL_HEIGHT => t.height = Some(uint(inp, c)?),
            SAMPLING_FREQUENCY => t.sampling_frequency = float(inp, c)?,
            OUTPUT_SAMPLING_FREQUENCY => t.output_sampling_frequency = float(inp, c)?,
            CHANNELS => t.channels = Some(uint(inp, c)?),
            BIT_DEPTH => t.bit_depth = Some(uint(inp, c)?),
            VIDEO | AUDIO if depth == 0 => read_track_fields(inp, c, t, depth + 1)?,
            _ => {}
        }
    }
    Ok(())
}

fn read_tags<R: Read + Seek>(inp: &mut Input<R>, e: Elem) -> Result<Tags, String> {
    let mut tags = Tags::default();
    for tag in children(inp, e)?.into_iter().filter(|c| c.id == TAG) {
        let mut global = true;
        let mut simple = Vec::new();
        for c in children(inp, tag)? {
            match c.id {
                TARGETS => {
                    for t in children(inp, c)? {
                        if TAG_UIDS.contains(&t.id) && uint(inp, t)? != 0 {
                            global = false;
                        }
                    }
                }
                SIMPLE_TAG => {
                    let (mut name, mut value) = (None, None);
                    for s in children(inp, c)? {
                        match s.id {
                            TAG_NAME => name = string(inp, s)?,
                            TAG_STRING => value = string(inp, s)?,
                            _ => {}
                        }
                    }
                    if let (Some(name), Some(value)) = (name, value) {
                        simple.push((name.to_ascii_uppercase(), value));
                    }
                }
                _ => {}
            }
        }
        for (name, value) in simple {
            if name == "DURATION" {
                if let Some(ns) = parse_hms(&value) {
                    tags.track_duration_ns = tags.track_duration_ns.max(Some(ns));
                }
            } else if global && matches!(name.as_str(), "TITLE" | "ARTIST" | "ALBUM") {
                tags.global
                    .entry(name.to_ascii_lowercase())
                    .or_insert(value);
            }
        }
    }
    Ok(tags)
}

/// Nanoseconds in a "HH:MM:SS.nnnnnnnnn" duration tag.
fn parse_hms(text: &str) -> Option<u64> {
    let mut parts = text.trim().split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits: String = frac.chars().take(9).collect();
    let nanos = if digits.is_empty() {
        0
    } else {
        digits.parse::<u64>().ok()? * 10u64.pow(9 - digits.len() as u32)
    };
    let secs = h
        .parse::<u64>()
        .ok()?
        .checked_mul(3600)?
        .checked_add(m.parse::<u64>().ok()?.checked_mul(60)?)?
        .checked_add(secs.parse::<u64>().ok()?)?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn video_codec(id: &str) -> Option<String> {
    let name = match id {
        "V_MPEG4/ISO/AVC" => "h264",
        "V_MPEGH/ISO/HEVC" => "hevc",
        "V_AV1" => "av1",
        "V_VP8" => "vp8",
        "V_VP9" => "vp9",
        "V_MPEGI/ISO/VVC" => "vvc",
        "V_MPEG4/ISO/SP" | "V_MPEG4/ISO/ASP" | "V_MPEG4/ISO/AP" => "mpeg4",
        "V_MPEG4/MS/V3" => "msmpeg4v3",
        "V_MPEG2" => "mpeg2video",
        "V_MPEG1" => "mpeg1video",
        "V_MJPEG" => "mjpeg",
        "V_THEORA" => "theora",
        "V_PRORES" => "prores",
        "V_FFV1" => "ffv1",
        "V_UNCOMPRESSED" => "rawvideo",
        "" => return None,
        other => return Some(other.trim_start_matches("V_").to_ascii_lowercase()),
    };
    Some(name.to_owned())
}

fn audio_codec(id: &str, bit_depth: Option<u64>) -> Option<String> {
    let bits = bit_depth.unwrap_or(16);
    let name = match id {
        "A_MPEG/L3" => "mp3",
        "A_MPEG/L2" => "mp2",
        "A_MPEG/L1" => "mp1",
        "A_FLAC" => "flac",
        "A_VORBIS" => "vorbis",
        "A_OPUS" => "opus",
        "A_AC3" | "A_AC3/BSID9" | "A_AC3/BSID10" => "ac3",
        "A_EAC3" => "eac3",
        "A_DTS" | "A_DTS/EXPRESS" | "A_DTS/LOSSLESS" => "dts",
        "A_TRUEHD" => "truehd",
        "A_ALAC" => "alac",
        "A_TTA1" => "tta",
        "A_WAVPACK4" => "wavpack",
        "A_PCM/INT/LIT" if bits <= 8 => "pcm_u8",
        "A_PCM/INT/LIT" => return Some(format!("pcm_s{bits}le")),
        "A_PCM/INT/BIG" => return Some(format!("pcm_s{bits}be")),
        "A_PCM/FLOAT/IEEE" => return Some(format!("pcm_f{bits}le")),
        id if id.starts_with("A_AAC") => "aac",
        "" => return None,
        other => return Some(other.trim_start_matches("A_").to_ascii_lowercase()),
    };
    Some(name.to_owned())
}

fn summarise(info: Option<Info>, tracks: Vec<Track>, tags: Option<Tags>) -> AvInfo {
    let video = tracks.iter().find(|t| t.kind == 1);
    let audio = tracks.iter().find(|t| t.kind == 2);
    let (timestamp_scale, duration, title) = match info {
        Some(i) => (i.timestamp_scale, i.duration, i.title),
        None => (1_000_000, None, None),
    };
    let tags = tags.unwrap_or_default();
    let duration_ms = duration
        .map(|d| d * timestamp_scale as f64 / 1e6)
        .filter(|ms| ms.is_finite() && *ms >= 0.0 && *ms < 9.2e18)
        .map(|ms| ms.round() as i64)
        .or_else(|| {
            tags.track_duration_ns
                .and_then(|ns| i64::try_from(ns / 1_000_000).ok())
        });
    let mut all_tags = tags.global;
    if let Some(title) = title {
        all_tags.insert("title".to_owned(), title);
    }
    let small = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok()).filter(|&v| v > 0);
    AvInfo {
        duration_ms,
        fps: video
            .and_then(|v| v.default_duration)
            .filter(|&d| d > 0)
            .and_then(|d| round3(1e9 / d as f64)),
        video_codec: video.and_then(|v| video_codec(&v.codec_id)),
        audio_codec: audio.and_then(|a| audio_codec(&a.codec_id, a.bit_depth)),
        width: small(video.and_then(|v| v.width)),
        height: small(video.and_then(|v| v.height)),
        sample_rate: audio.and_then(|a| {
            let hz = a
                .output_sampling_frequency
                .or(a.sampling_frequency)
                .unwrap_or(8000.0);
            (hz >= 1.0 && hz < f64::from(u32::MAX)).then(|| hz.round() as u32)
        }),
        channels: audio.map(|a| small(a.channels).unwrap_or(1)),
        bitrate: None,
        tags: all_tags,
        ..AvInfo::default()
    }
}
