//! ISO base media file format (MP4, MOV, M4A, 3GP).

use super::{
    AvInfo, BTreeMap, Bits, Cur, Input, MAX_BODY, MAX_CHILDREN, Read, Seek, clean_text, recorded,
    round3, ticks_to_ms,
};

/// Seconds from 1904-01-01 (the QuickTime epoch) to 1970-01-01.
const QUICKTIME_EPOCH: u64 = 2_082_844_800;

/// A box header: its type and where its body starts and ends.
#[derive(Debug, Clone, Copy)]
struct BoxHdr {
    kind: [u8; 4],
    body: u64,
    end: u64,
}

/// What one `trak` box says.
#[derive(Debug, Default)]
struct Track {
    handler: [u8; 4],
    timescale: u32,
    duration: u64,
    codec: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    /// Clockwise quarter turns the `tkhd` matrix applies, in degrees.
    rotation: Option<u32>,
    sample_rate: Option<u32>,
    channels: Option<u32>,
    samples: u64,
    ticks: u64,
}

/// What the `moov` box says.
#[derive(Debug, Default)]
struct Movie {
    timescale: u32,
    duration: Option<u64>,
    /// `mvhd` creation time, seconds since 1904 (0, "unknown", is `None`).
    created: Option<u64>,
    fragment_duration: Option<u64>,
    tracks: Vec<Track>,
    tags: BTreeMap<String, String>,
}

fn fourcc_text(kind: [u8; 4]) -> String {
    kind.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Reads the header of the box at `pos`, which must end by `parent_end`
/// unless `top` (a top-level box may overrun a truncated file: the caller
/// decides). `None` when fewer than 8 bytes are left.
fn header<R: Read + Seek>(
    inp: &mut Input<R>,
    pos: u64,
    parent_end: u64,
    top: bool,
) -> Result<Option<BoxHdr>, String> {
    if parent_end.saturating_sub(pos) < 8 {
        return Ok(None);
    }
    let mut h = [0; 8];
    inp.read_exact_at(pos, &mut h)?;
    let mut c = Cur::new(&h);
    let size32 = c.u32().unwrap_or(0);
    let kind = c.fourcc().unwrap_or(*b"    ");
    let (body, size) = match size32 {
        0 => (pos + 8, parent_end - pos),
        1 => {
            let mut l = [0; 8];
            inp.read_exact_at(pos + 8, &mut l)?;
            (pos + 16, u64::from_be_bytes(l))
        }
        n => (pos + 8, u64::from(n)),
    };
    if size < body - pos {
        return Err(format!(
            "the MP4 box '{}' at byte {pos} has an impossible size ({size} bytes)",
            fourcc_text(kind)
        ));
    }
    let end = pos.saturating_add(size);
    if end > parent_end && !top {
        return Err(format!(
            "the MP4 box '{}' at byte {pos} claims {size} bytes, more than its parent holds",
            fourcc_text(kind)
        ));
    }
    Ok(Some(BoxHdr { kind, body, end }))
}

/// The children of the box body between `start` and `end`.
fn children<R: Read + Seek>(
    inp: &mut Input<R>,
    start: u64,
    end: u64,
) -> Result<Vec<BoxHdr>, String> {
    let mut out = Vec::new();
    let mut pos = start;
    while out.len() < MAX_CHILDREN {
        let Some(b) = header(inp, pos, end, false)? else {
            break;
        };
        out.push(b);
        pos = b.end;
    }
    Ok(out)
}

/// Probes an ISO base media file.
pub(super) fn probe<R: Read + Seek>(inp: &mut Input<R>) -> Result<AvInfo, String> {
    let moov = find_moov(inp)?;
    let movie = parse_moov(inp, moov)?;
    Ok(summarise(movie))
}

/// Finds the top-level `moov` box, skipping `mdat` and the rest by seeking.
fn find_moov<R: Read + Seek>(inp: &mut Input<R>) -> Result<BoxHdr, String> {
    let mut pos = 0;
    for index in 0..MAX_CHILDREN {
        let Some(b) = header(inp, pos, inp.len, true)? else {
            break;
        };
        if index == 0 && !b.kind.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
            return Err("the file does not start with an MP4 box".to_owned());
        }
        if &b.kind == b"moov" {
            if b.end > inp.len {
                return Err(format!(
                    "the MP4's moov box is cut short: it claims to end at byte {} but the file has {} bytes",
                    b.end, inp.len
                ));
            }
            return Ok(b);
        }
        if b.end >= inp.len {
            break;
        }
        pos = b.end;
    }
    Err("the MP4 has no moov box (the file is truncated or not an MP4)".to_owned())
}

fn parse_moov<R: Read + Seek>(inp: &mut Input<R>, moov: BoxHdr) -> Result<Movie, String> {
    let mut movie = Movie::default();
    for child in children(inp, moov.body, moov.end)? {
        match &child.kind {
            b"mvhd" => {
                let body = inp.read_capped(child.body, child.end, 128)?;
                parse_mvhd(&body, &mut movie);
            }
            b"trak" => movie.tracks.push(parse_trak(inp, child)?),
            b"udta" => parse_udta(inp, child, &mut movie.tags)?,
            b"meta" => parse_meta(inp, child, &mut movie.tags)?,
            b"mvex" => {
                for c in children(inp, child.body, child.end)? {
                    if &c.kind == b"mehd" {
                        let body = inp.read_capped(c.body, c.end, 16)?;
                        let mut cur = Cur::new(&body);
                        movie.fragment_duration = match cur.u8() {
                            Some(1) => cur.skip(3).and_then(|_| cur.u64()),
                            _ => cur.skip(3).and_then(|_| cur.u32()).map(u64::from),
                        };
                    }
                }
            }
            _ => {}
        }
    }
    Ok(movie)
}

/// A duration field is "unknown" when it is zero or all ones.
fn known(duration: u64, all_ones: u64) -> Option<u64> {
    (duration != 0 && duration != all_ones).then_some(duration)
}

fn parse_mvhd(body: &[u8], movie: &mut Movie) {
    let mut c = Cur::new(body);
    let parsed = match c.u8() {
        Some(1) => c.skip(3).and_then(|_| {
            let created = c.u64()?;
            c.skip(8)?;
            Some((created, c.u32()?, known(c.u64()?, u64::MAX)))
        }),
        _ => c.skip(3).and_then(|_| {
            let created = u64::from(c.u32()?);
            c.skip(4)?;
            Some((
                created,
                c.u32()?,
                known(u64::from(c.u32()?), u64::from(u32::MAX)),
            ))
        }),
    };
    if let Some((created, timescale, duration)) = parsed {
        movie.created = (created > 0).then_some(created);
        movie.timescale = timescale;
        movie.duration = duration;
    }
}

fn parse_trak<R: Read + Seek>(inp: &mut Input<R>, trak: BoxHdr) -> Result<Track, String> {
    let mut track = Track::default();
    let mut tkhd_size = None;
    let mut stsd = None;
    for child in children(inp, trak.body, trak.end)? {
        match &child.kind {
            b"tkhd" => {
                let body = inp.read_capped(child.body, child.end, 128)?;
                (tkhd_size, track.rotation) = parse_tkhd(&body);
            }
            b"mdia" => parse_mdia(inp, child, &mut track, &mut stsd, 0)?,
            _ => {}
        }
    }
    if let Some(stsd) = stsd {
        parse_stsd(&stsd, &mut track);
    }
    if track.width.is_none()
        && let Some((w, h)) = tkhd_size
    {
        track.width = Some(w);
        track.height = Some(h);
    }
    Ok(track)
}

/// What a `tkhd` says: the presentation width and height, when non-zero,
/// and the clockwise rotation of its matrix: 90, 180 or 270 for the
/// matrices of a quarter, half or three-quarter turn, `None` for none (or
/// a matrix that also mirrors or scales). The matrix's `a b c d` are 16.16
/// fixed point; a player maps a point (x, y) to (ax + cy, bx + dy), so
/// a = d = 0, b = 1, c = -1 is a quarter turn clockwise (what a phone held
/// upright writes).
fn parse_tkhd(body: &[u8]) -> (Option<(u32, u32)>, Option<u32>) {
    let mut c = Cur::new(body);
    let mut matrix = || -> Option<[i32; 4]> {
        match c.u8()? {
            1 => c.skip(3 + 32)?,
            _ => c.skip(3 + 20)?,
        }
        c.skip(8 + 2 + 2 + 2 + 2)?;
        // a b u c d v x y w: keep a, b, c, d.
        let (a, b) = (c.u32()?.cast_signed(), c.u32()?.cast_signed());
        c.skip(4)?;
        let (cc, d) = (c.u32()?.cast_signed(), c.u32()?.cast_signed());
        c.skip(16)?;
        Some([a, b, cc, d])
    };
    let Some(m) = matrix() else {
        return (None, None);
    };
    // 0x1_0000 is 1.0.
    let rotation = match m {
        [0, 0x1_0000, -0x1_0000, 0] => Some(90),
        [-0x1_0000, 0, 0, -0x1_0000] => Some(180),
        [0, -0x1_0000, 0x1_0000, 0] => Some(270),
        _ => None,
    };
    let size = c
        .u32()
        .zip(c.u32())
        .map(|(w, h)| (w >> 16, h >> 16))
        .filter(|&(w, h)| w > 0 && h > 0);
    (size, rotation)
}

/// Walks `mdia`, `minf` and `stbl`, keeping the `stsd` bytes for later
/// (the handler type may come after them).
fn parse_mdia<R: Read + Seek>(
    inp: &mut Input<R>,
    parent: BoxHdr,
    track: &mut Track,
    stsd: &mut Option<Vec<u8>>,
    depth: u32,
) -> Result<(), String> {
    if depth > 3 {
        return Ok(());
    }
    for child in children(inp, parent.body, parent.end)? {
        match &child.kind {
            b"mdhd" => {
                let body = inp.read_capped(child.body, child.end, 64)?;
                let mut c = Cur::new(&body);
                let parsed = match c.u8() {
                    Some(1) => c
                        .skip(3 + 16)
                        .and_then(|_| Some((c.u32()?, known(c.u64()?, u64::MAX)))),
                    _ => c.skip(3 + 8).and_then(|_| {
                        Some((c.u32()?, known(u64::from(c.u32()?), u64::from(u32::MAX))))
                    }),
                };
                if let Some((timescale, duration)) = parsed {
                    track.timescale = timescale;
                    track.duration = duration.unwrap_or(0);
                }
            }
            // QuickTime's `minf` has a data handler `hdlr` too: only `mdia`'s counts.
            b"hdlr" if depth == 0 => {
                let body = inp.read_capped(child.body, child.end, 12)?;
                if let Some(h) = body.get(8..12).and_then(|s| s.try_into().ok()) {
                    track.handler = h;
                }
            }
            b"minf" | b"stbl" => parse_mdia(inp, child, track, stsd, depth + 1)?,
            b"stsd" => *stsd = Some(inp.read_capped(child.body, child.end, MAX_BODY)?),
            b"stts" => {
                let (samples, ticks) = read_stts(inp, child)?;
                track.samples = samples;
                track.ticks = ticks;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Total samples and total ticks of an `stts`, streamed entry by entry.
fn read_stts<R: Read + Seek>(inp: &mut Input<R>, stts: BoxHdr) -> Result<(u64, u64), String> {
    let mut head = [0; 8];
    if stts.end.saturating_sub(stts.body) < 8 {
        return Ok((0, 0));
    }
    inp.read_exact_at(stts.body, &mut head)?;
    let claimed = u64::from(u32::from_be_bytes([head[4], head[5], head[6], head[7]]));
    let present = (stts.end - stts.body - 8) / 8;
    let (mut samples, mut ticks) = (0u64, 0u64);
    // 512 entries (4 KiB) per read.
    let mut chunk = [0; 8 * 512];
    let mut done = 0;
    let total = claimed.min(present);
    while done < total {
        let n = (total - done).min(512) as usize;
        let buf = &mut chunk[..n * 8];
        inp.read_exact_at(stts.body + 8 + done * 8, buf)?;
        for entry in buf.chunks_exact(8) {
            let count = u64::from(u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]));
            let delta = u64::from(u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]));
            samples = samples.saturating_add(count);
            ticks = ticks.saturating_add(count.saturating_mul(delta));
        }
        done += n as u64;
    }
    Ok((samples, ticks))
}

/// The boxes inside a byte slice, from `start`; stops at the first
/// box that does not fit.
fn slice_boxes(b: &[u8], start: usize) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut pos = start;
    while out.len() < 64 {
        let mut c = Cur::new(b.get(pos..).unwrap_or(&[]));
        let (Some(size), Some(kind)) = (c.u32(), c.fourcc()) else {
            break;
        };
        let size = size as usize;
        let Some(body) = (size >= 8)
            .then(|| b.get(pos + 8..pos.checked_add(size)?))
            .flatten()
        else {
            break;
        };
        out.push((kind, body));
        pos += size;
    }
    out
}

/// The first box of type `kind` inside the slice boxes, looking one level
/// into QuickTime `wave` and encryption `sinf` boxes.
fn find_box<'a>(boxes: &[([u8; 4], &'a [u8])], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let direct =
        |boxes: &[([u8; 4], &'a [u8])]| boxes.iter().find(|(k, _)| k == kind).map(|(_, b)| *b);
    direct(boxes).or_else(|| {
        boxes
            .iter()
            .filter(|(k, _)| k == b"wave" || k == b"sinf")
            .find_map(|(_, b)| direct(&slice_boxes(b, 0)))
    })
}

/// Children of a sample entry, trying each candidate start offset and
/// keeping the first one where a well-formed box begins.
fn entry_children<'a>(entry: &'a [u8], starts: &[usize]) -> Vec<([u8; 4], &'a [u8])> {
    starts
        .iter()
        .map(|&s| slice_boxes(entry, s))
        .find(|boxes| !boxes.is_empty())
        .unwrap_or_default()
}

/// Codec, size, sample rate and channels from the first sample entry.
fn parse_stsd(stsd: &[u8], track: &mut Track) -> Option<()> {
    let mut c = Cur::new(stsd);
    c.skip(8)?;
    let rest = c.rest();
    let size = (Cur::new(rest).u32()? as usize).min(rest.len());
    let entry = rest.get(..size)?;
    let mut e = Cur::new(entry);
    e.skip(4)?;
    let mut format = e.fourcc()?;
    e.skip(8)?;
    match &track.handler {
        b"vide" => {
            e.skip(16)?;
            let (w, h) = (u32::from(e.u16()?), u32::from(e.u16()?));
            if w > 0 && h > 0 {
                track.width = Some(w);
                track.height = Some(h);
            }
            let boxes = entry_children(entry, &[86]);
            if &format == b"encv"
                && let Some(frma) = find_box(&boxes, b"frma")
            {
                format = Cur::new(frma).fourcc()?;
            }
            let oti = find_box(&boxes, b"esds").and_then(|b| parse_esds(b).map(|d| d.0));
            track.codec = video_codec(format, oti);
        }
        b"soun" => {
            let version = e.u16()?;
            e.skip(6)?;
            let channels = u32::from(e.u16()?);
            let bits = u32::from(e.u16()?);
            e.skip(4)?;
            let mut rate = e.u32()? >> 16;
            let (mut channels, mut bits, mut lpcm_flags) = (channels, bits, 0);
            if version == 2 {
                e.skip(4)?;
                rate = f64::from_bits(e.u64()?) as u32;
                channels = e.u32()?;
                e.skip(4)?;
                bits = e.u32()?;
                lpcm_flags = e.u32()?;
            }
            let extra = match version {
                1 => 16,
                2 => 36,
                _ => 0,
            };
            let boxes = entry_children(entry, &[36 + extra, 36]);
            if &format == b"enca"
                && let Some(frma) = find_box(&boxes, b"frma")
            {
                format = Cur::new(frma).fourcc()?;
            }
            let esds = find_box(&boxes, b"esds").and_then(parse_esds);
            if let Some((_, Some((asc_rate, asc_channels)))) = esds {
                rate = asc_rate;
                if asc_channels > 0 {
                    channels = asc_channels;
                }
            }
            track.codec = audio_codec(format, esds.map(|d| d.0), bits, lpcm_flags);
            track.sample_rate = (rate > 0).then_some(rate);
            track.channels = (channels > 0).then_some(channels);
        }
        _ => {}
    }
    Some(())
}

/// Reads an MPEG-4 descriptor's tag and length, leaving the cursor at its body.
fn descriptor(c: &mut Cur<'_>) -> Option<(u8, usize)> {
    let tag = c.u8()?;
    let mut len = 0usize;
    for _ in 0..4 {
        let b = c.u8()?;
        len = (len << 7) | usize::from(b & 0x7F);
        if b & 0x80 == 0 {
            break;
        }
    }
    Some((tag, len))
}

/// The object type indication of an `esds`, and the sample rate and
/// channels of its AAC AudioSpecificConfig when it has one.
fn parse_esds(body: &[u8]) -> Option<(u8, Option<(u32, u32)>)> {
    let mut c = Cur::new(body);
    c.skip(4)?;
    let (tag, _) = descriptor(&mut c)?;
    if tag != 0x03 {
        return None;
    }
    c.skip(2)?;
    let flags = c.u8()?;
    if flags & 0x80 != 0 {
        c.skip(2)?;
    }
    if flags & 0x40 != 0 {
        let n = c.u8()?;
        c.skip(usize::from(n))?;
    }
    if flags & 0x20 != 0 {
        c.skip(2)?;
    }
    let (tag, _) = descriptor(&mut c)?;
    if tag != 0x04 {
        return None;
    }
    let oti = c.u8()?;
    c.skip(12)?;
    let asc = match descriptor(&mut c) {
        Some((0x05, len)) => c.take(len.min(c.rest().len())).and_then(parse_asc),
        _ => None,
    };
    Some((oti, asc))
}

/// Output sample rate and channels of an AAC AudioSpecificConfig.
fn parse_asc(asc: &[u8]) -> Option<(u32, u32)> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut b = Bits { b: asc, bit: 0 };
    let rate = |b: &mut Bits<'_>| match b.read(4)? {
        15 => b.read(24),
        i => RATES.get(i as usize).copied(),
    };
    let mut object_type = b.read(5)?;
    if object_type == 31 {
        object_type = 32 + b.read(6)?;
    }
    let mut sample_rate = rate(&mut b)?;
    let mut channels = b.read(4)?;
    if object_type == 5 || object_type == 29 {
        sample_rate = rate(&mut b)?;
        if object_type == 29 && channels == 1 {
            channels = 2;
        }
    }
    let channels = match channels {
        7 => 8,
        c @ 0..=6 => c,
        _ => 0,
    };
    (sample_rate > 0).then_some((sample_rate, channels))
}

/// A sample entry type as short text, for codecs without a name here.
fn fallback_name(format: [u8; 4]) -> Option<String> {
    let text = String::from_utf8_lossy(&format).trim().to_ascii_lowercase();
    (!text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .then_some(text)
}

/// The short name of a video sample entry type.
fn video_codec(format: [u8; 4], oti: Option<u8>) -> Option<String> {
    let name = match &format {
        b"avc1" | b"avc2" | b"avc3" | b"avc4" => "h264",
        b"hvc1" | b"hev1" | b"dvh1" | b"dvhe" => "hevc",
        b"av01" => "av1",
        b"vp08" => "vp8",
        b"vp09" => "vp9",
        b"vvc1" | b"vvi1" => "vvc",
        b"mp4v" => match oti {
            Some(0x60..=0x65) => "mpeg2video",
            Some(0x6A) => "mpeg1video",
            Some(0x6C) => "mjpeg",
            _ => "mpeg4",
        },
        b"s263" | b"h263" => "h263",
        b"jpeg" | b"mjpa" | b"mjpb" => "mjpeg",
        b"mjp2" => "jpeg2000",
        b"apch" | b"apcn" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "prores",
        b"png " => "png",
        b"raw " => "rawvideo",
        b"dvc " | b"dvcp" | b"dv5n" | b"dv5p" => "dvvideo",
        _ => return fallback_name(format),
    };
    Some(name.to_owned())
}

/// The short name of an audio sample entry type.
fn audio_codec(format: [u8; 4], oti: Option<u8>, bits: u32, lpcm_flags: u32) -> Option<String> {
    let pcm = |signed: bool, float: bool, big_endian: bool| {
        let kind = if float {
            'f'
        } else if signed {
            's'
        } else {
            'u'
        };
        let endian = if bits <= 8 {
            ""
        } else if big_endian {
            "be"
        } else {
            "le"
        };
        format!("pcm_{kind}{bits}{endian}")
    };
    let name = match &format {
        b"mp4a" => match oti {
            Some(0x69 | 0x6B) => "mp3",
            Some(0xA5) => "ac3",
            Some(0xA6) => "eac3",
            Some(0xA9..=0xAC) => "dts",
            Some(0xAD) => "opus",
            Some(0xDD) => "vorbis",
            Some(0xE1) => "qcelp",
            _ => "aac",
        },
        b".mp3" | b"ms\0\x55" => "mp3",
        b"ac-3" => "ac3",
        b"ec-3" => "eac3",
        b"ac-4" => "ac4",
        b"Opus" => "opus",
        b"fLaC" => "flac",
        b"alac" => "alac",
        b"samr" => "amr_nb",
        b"sawb" => "amr_wb",
        b"dtsc" | b"dtsh" | b"dtsl" | b"dtse" => "dts",
        b"mlpa" => "truehd",
        b"ima4" => "adpcm_ima_qt",
        b"ulaw" => "pcm_mulaw",
        b"alaw" => "pcm_alaw",
        b"in24" => "pcm_s24be",
        b"in32" => "pcm_s32be",
        b"fl32" => "pcm_f32be",
        b"fl64" => "pcm_f64be",
        b"raw " => "pcm_u8",
        b"sowt" if bits > 0 => return Some(pcm(true, false, false)),
        b"twos" if bits > 0 => return Some(pcm(true, false, true)),
        b"lpcm" if bits > 0 => {
            let float = lpcm_flags & 1 != 0;
            let big_endian = lpcm_flags & 2 != 0;
            let signed = lpcm_flags & 4 != 0;
            return Some(pcm(signed, float, big_endian));
        }
        _ => return fallback_name(format),
    };
    Some(name.to_owned())
}

/// Tags that describe the recording rather than the work: read into their
/// own fields, not kept as embedded tags.
const RECORDING_TAGS: [&str; 4] = ["make", "model", "location", "creationdate"];

/// Tag names we keep, by `ilst` item type or QuickTime `udta` box type
/// (`©mak`, `©mod` and `©xyz` are what Android phones and exiftool write).
fn tag_for_item(kind: &[u8; 4]) -> Option<&'static str> {
    match kind {
        b"\xA9nam" => Some("title"),
        b"\xA9ART" => Some("artist"),
        b"\xA9alb" => Some("album"),
        b"\xA9mak" => Some("make"),
        b"\xA9mod" => Some("model"),
        b"\xA9xyz" => Some("location"),
        _ => None,
    }
}

/// Tag names we keep, by QuickTime metadata key (`mdta` handler; what
/// iPhones write).
fn tag_for_key(key: &str) -> Option<&'static str> {
    match key {
        "com.apple.quicktime.title" => Some("title"),
        "com.apple.quicktime.artist" => Some("artist"),
        "com.apple.quicktime.album" => Some("album"),
        "com.apple.quicktime.make" => Some("make"),
        "com.apple.quicktime.model" => Some("model"),
        "com.apple.quicktime.location.ISO6709" => Some("location"),
        "com.apple.quicktime.creationdate" => Some("creationdate"),
        _ => None,
    }
}

fn parse_udta<R: Read + Seek>(
    inp: &mut Input<R>,
    udta: BoxHdr,
    tags: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    for child in children(inp, udta.body, udta.end)? {
        if &child.kind == b"meta" {
            parse_meta(inp, child, tags)?;
        } else if let Some(name) = tag_for_item(&child.kind) {
            let body = inp.read_capped(child.body, child.end, MAX_BODY)?;
            // ilst-style (a `data` box) or QuickTime-style (size, language, text).
            let value = if body.get(4..8) == Some(b"data") {
                data_box_text(&body)
            } else {
                let mut c = Cur::new(&body);
                c.u16()
                    .and_then(|len| {
                        c.skip(2)?;
                        c.take(usize::from(len).min(c.rest().len()))
                    })
                    .and_then(clean_text)
            };
            if let Some(value) = value {
                tags.entry(name.to_owned()).or_insert(value);
            }
        }
    }
    Ok(())
}

/// Reads a `meta` box: `ilst` items named by type (iTunes style) or by
/// index into a `keys` box (QuickTime `mdta` style).
fn parse_meta<R: Read + Seek>(
    inp: &mut Input<R>,
    meta: BoxHdr,
    tags: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    // ISO `meta` is a full box (4 bytes of version and flags); QuickTime's is not.
    let mut probe = [0; 8];
    let start = if meta.end.saturating_sub(meta.body) >= 8 {
        inp.read_exact_at(meta.body, &mut probe)?;
        if &probe[4..8] == b"hdlr" {
            meta.body
        } else {
            meta.body + 4
        }
    } else {
        return Ok(());
    };
    let boxes = children(inp, start, meta.end)?;
    let mut keys: Vec<String> = Vec::new();
    if let Some(k) = boxes.iter().find(|b| &b.kind == b"keys") {
        let body = inp.read_capped(k.body, k.end, MAX_BODY)?;
        // After the version, flags and entry count: (size, namespace, key) entries.
        let mut c = Cur::new(body.get(8..).unwrap_or(&[]));
        while keys.len() < 1024 {
            let Some(size) = c.u32() else { break };
            let Some(entry) = (size as usize).checked_sub(4).and_then(|n| c.take(n)) else {
                break;
            };
            keys.push(String::from_utf8_lossy(entry.get(4..).unwrap_or(&[])).into_owned());
        }
    }
    for ilst in boxes.iter().filter(|b| &b.kind == b"ilst") {
        for item in children(inp, ilst.body, ilst.end)? {
            let name = tag_for_item(&item.kind).or_else(|| {
                let index = u32::from_be_bytes(item.kind) as usize;
                keys.get(index.checked_sub(1)?).and_then(|k| tag_for_key(k))
            });
            let Some(name) = name else { continue };
            let body = inp.read_capped(item.body, item.end, MAX_BODY)?;
            if let Some(value) = data_box_text(&body) {
                tags.entry(name.to_owned()).or_insert(value);
            }
        }
    }
    Ok(())
}

/// The text of the first `data` box in `body` (UTF-8 or UTF-16BE).
fn data_box_text(body: &[u8]) -> Option<String> {
    let (_, data) = slice_boxes(body, 0)
        .into_iter()
        .find(|(k, _)| k == b"data")?;
    let mut c = Cur::new(data);
    let kind = c.u32()? & 0x00FF_FFFF;
    c.skip(4)?;
    let value = c.rest();
    match kind {
        1 => clean_text(value),
        2 => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            clean_text(String::from_utf16_lossy(&units).as_bytes())
        }
        _ => None,
    }
}

/// Turns what the boxes said into an [`AvInfo`].
fn summarise(mut movie: Movie) -> AvInfo {
    let timescale = u64::from(movie.timescale);
    let track_ms = movie
        .tracks
        .iter()
        .filter_map(|t| ticks_to_ms(t.duration, u64::from(t.timescale)))
        .max();
    let duration_ms = movie
        .duration
        .and_then(|d| ticks_to_ms(d, timescale))
        .or_else(|| {
            movie
                .fragment_duration
                .and_then(|d| ticks_to_ms(d, timescale))
        })
        .or(track_ms);
    let video = movie.tracks.iter().find(|t| &t.handler == b"vide");
    let audio = movie.tracks.iter().find(|t| &t.handler == b"soun");
    let fps = video.and_then(|v| {
        (v.samples > 0 && v.ticks > 0).then_some(())?;
        round3(v.samples as f64 * f64::from(v.timescale) / v.ticks as f64)
    });
    let rotation = video.and_then(|v| v.rotation);
    // The size as displayed: a quarter turn swaps the frame's sides.
    let (mut width, mut height) = (video.and_then(|v| v.width), video.and_then(|v| v.height));
    if matches!(rotation, Some(90 | 270)) {
        (width, height) = (height, width);
    }
    let mut recording = BTreeMap::new();
    for name in RECORDING_TAGS {
        if let Some(v) = movie.tags.remove(name) {
            recording.insert(name, v);
        }
    }
    // The recorder's own date, with its offset; else the movie header's.
    let recorded = recording
        .get("creationdate")
        .and_then(|s| recorded::iso8601(s))
        .or_else(|| {
            let unix = i64::try_from(movie.created?.checked_sub(QUICKTIME_EPOCH)?).ok()?;
            let micros = unix.checked_mul(1_000_000)?;
            let (year, month) = crate::domain::year_month(micros);
            Some(recorded::Moment {
                micros,
                offset: None,
                year,
                month,
            })
        });
    AvInfo {
        duration_ms,
        fps,
        video_codec: video.and_then(|v| v.codec.clone()),
        audio_codec: audio.and_then(|a| a.codec.clone()),
        width,
        height,
        rotation,
        make: recording.remove("make"),
        model: recording.remove("model"),
        recorded,
        place: recording.get("location").and_then(|s| recorded::iso6709(s)),
        sample_rate: audio.and_then(|a| a.sample_rate),
        channels: audio.and_then(|a| a.channels),
        bitrate: None,
        tags: movie.tags,
    }
}

/// Hand-written MP4 files for the tests.
#[cfg(test)]
pub(super) mod build {
    /// A box of type `kind` around `body`.
    pub fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    /// A full box (version 0, no flags) of type `kind` around `body`.
    pub fn full(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = vec![0; 4];
        b.extend_from_slice(body);
        bx(kind, &b)
    }

    fn be32(v: u32) -> [u8; 4] {
        v.to_be_bytes()
    }

    /// mvhd version 0 with a timescale and a duration.
    pub fn mvhd(timescale: u32, duration: u32) -> Vec<u8> {
        let mut b = vec![0; 8];
        b.extend_from_slice(&be32(timescale));
        b.extend_from_slice(&be32(duration));
        b.extend_from_slice(&[0; 80]);
        full(b"mvhd", &b)
    }

    /// tkhd version 0 with a presentation size.
    pub fn tkhd(width: u32, height: u32) -> Vec<u8> {
        let mut b = vec![0; 20 + 8 + 8 + 36];
        b.extend_from_slice(&be32(width << 16));
        b.extend_from_slice(&be32(height << 16));
        full(b"tkhd", &b)
    }

    /// A track: tkhd, mdia with mdhd, hdlr and minf/stbl with `stsd` and `stts`.
    pub fn trak(
        handler: &[u8; 4],
        timescale: u32,
        duration: u32,
        entry: &[u8],
        stts: &[(u32, u32)],
        size: (u32, u32),
    ) -> Vec<u8> {
        let mut mdhd = vec![0; 8];
        mdhd.extend_from_slice(&be32(timescale));
        mdhd.extend_from_slice(&be32(duration));
        mdhd.extend_from_slice(&[0; 4]);
        let mut hdlr = vec![0; 4];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 13]);
        let mut stsd = be32(1).to_vec();
        stsd.extend_from_slice(entry);
        let mut stts_body = be32(stts.len() as u32).to_vec();
        for (count, delta) in stts {
            stts_body.extend_from_slice(&be32(*count));
            stts_body.extend_from_slice(&be32(*delta));
        }
        let stbl = bx(
            b"stbl",
            &[full(b"stsd", &stsd), full(b"stts", &stts_body)].concat(),
        );
        let minf = bx(b"minf", &stbl);
        let mdia = bx(
            b"mdia",
            &[full(b"mdhd", &mdhd), full(b"hdlr", &hdlr), minf].concat(),
        );
        bx(b"trak", &[tkhd(size.0, size.1), mdia].concat())
    }

    /// A visual sample entry of type `format`, with child boxes.
    pub fn visual_entry(format: &[u8; 4], width: u16, height: u16, children: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&width.to_be_bytes());
        b.extend_from_slice(&height.to_be_bytes());
        b.extend_from_slice(&[0; 50]);
        b.extend_from_slice(children);
        bx(format, &b)
    }

    /// An audio sample entry (version 0) of type `format`, with child boxes.
    pub fn audio_entry(
        format: &[u8; 4],
        channels: u16,
        bits: u16,
        rate: u32,
        children: &[u8],
    ) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&channels.to_be_bytes());
        b.extend_from_slice(&bits.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&be32(rate << 16));
        b.extend_from_slice(children);
        bx(format, &b)
    }

    /// An esds with an object type and an AudioSpecificConfig.
    pub fn esds(oti: u8, asc: &[u8]) -> Vec<u8> {
        let dsi = [&[0x05, asc.len() as u8][..], asc].concat();
        let mut dcd = vec![oti, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        dcd.extend_from_slice(&dsi);
        let dcd = [&[0x04, dcd.len() as u8][..], &dcd].concat();
        let mut es = vec![0, 1, 0];
        es.extend_from_slice(&dcd);
        let es = [&[0x03, es.len() as u8][..], &es].concat();
        full(b"esds", &es)
    }

    /// An iTunes-style `udta/meta/ilst` with text items.
    pub fn udta(items: &[(&[u8; 4], &str)]) -> Vec<u8> {
        let mut ilst = Vec::new();
        for (kind, text) in items {
            let mut data = vec![0, 0, 0, 1, 0, 0, 0, 0];
            data.extend_from_slice(text.as_bytes());
            ilst.extend(bx(kind, &bx(b"data", &data)));
        }
        let mut hdlr = vec![0; 4];
        hdlr.extend_from_slice(b"mdir");
        hdlr.extend_from_slice(&[0; 13]);
        let meta = full(
            b"meta",
            &[full(b"hdlr", &hdlr), bx(b"ilst", &ilst)].concat(),
        );
        bx(b"udta", &meta)
    }

    /// A 2 s, 25 fps, 160x120 H.264 video with a 22050 Hz mono AAC
    /// track, tags, and `mdat` after `moov`.
    pub fn sample_mp4() -> Vec<u8> {
        let ftyp = bx(b"ftyp", b"isom\0\0\x02\0isomiso2avc1mp41");
        let avc = visual_entry(
            b"avc1",
            160,
            120,
            &bx(b"avcC", &[1, 0x64, 0, 0x0D, 0xFF, 0xE0, 0]),
        );
        // AAC LC (2), 22050 Hz (index 7), mono: 00010 0111 0001 000
        let mp4a = audio_entry(b"mp4a", 2, 16, 44100, &esds(0x40, &[0x13, 0x88]));
        let moov = bx(
            b"moov",
            &[
                mvhd(1000, 2000),
                trak(b"vide", 12800, 25600, &avc, &[(50, 512)], (160, 120)),
                trak(b"soun", 22050, 44100, &mp4a, &[(43, 1024), (1, 68)], (0, 0)),
                udta(&[
                    (b"\xA9nam", "Hand Made"),
                    (b"\xA9ART", "Mediastore"),
                    (b"\xA9alb", "Unit Tests"),
                ]),
            ]
            .concat(),
        );
        let mdat = bx(b"mdat", &[0x55; 1000]);
        [ftyp, moov, mdat].concat()
    }
}
