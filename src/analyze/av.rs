//! Video and audio probes: duration, frame rate, codecs, dimensions, sample
//! rate, channels, bitrate and title/artist/album tags, read from the
//! container's headers without decoding a single frame.
//!
//! # Which reader for which container, and why
//!
//! - **MP4, MOV, M4A, 3GP (ISO base media file format)**: a small parser
//!   of our own (module `mp4`). The boxes needed (`mvhd`, `tkhd`, `mdhd`,
//!   `hdlr`, `stsd`, `stts`, `esds`, `udta`/`meta`/`ilst`/`keys`) are
//!   fixed layouts; reading only those lets us seek past `mdat` and stream
//!   `stts` entry by entry, so memory stays bounded whatever the file
//!   claims. The `mp4` crate materialises every sample table (`stts`,
//!   `stsz`, `stco`, ...) as vectors, megabytes for long videos, to give
//!   us a handful of numbers; symphonia's `isomp4` demuxer is built for
//!   audio tracks.
//! - **WebM and Matroska**: a small EBML reader of our own (module `mkv`).
//!   It reads the EBML header, `Info`, `Tracks` and `Tags` (found through
//!   the `SeekHead` when they follow the clusters) and never reads a
//!   cluster: about 20 element IDs, no dependency. symphonia's `mkv`
//!   demuxer reports audio tracks only, so it could not give the video
//!   codec, size or frame rate.
//! - **MP3, WAV, AIFF, FLAC, Ogg (Vorbis, Opus, FLAC)**: the `symphonia`
//!   demuxers (module `audio`), with only the `mp3`, `flac`, `ogg`, `wav`,
//!   `aiff`, `id3v1` and `id3v2` features (the `mp3` and `flac` features
//!   also build their decoders, which are never called). Its probe reads
//!   ID3 tags and Vorbis comments, and its demuxers give the duration from
//!   the container: FLAC `STREAMINFO`, the last Ogg page's granule
//!   position, the WAV data size, the MP3 Xing/VBRI header or, without
//!   one, an estimate from the file size and the first frames. A WAV's
//!   LIST/INFO tags are read here (symphonia 0.6.1 parses them but does
//!   not hand them over). MPEG-2/4 ADTS `.aac` files are not supported
//!   (that would need the `aac` feature).
//!
//! # Hostile input
//!
//! Every read is bounded: a box or element body is read into memory only
//! up to `MAX_BODY` (64 KiB) bytes, sample tables are streamed entry by
//! entry, the number of children visited is capped, one probe makes at
//! most a million reads, nothing recurses more than a few fixed levels, and sizes are checked against the parent and
//! the file before any seek. The file is read through a 16 KiB buffer
//! (symphonia uses its own 64 KiB one), never whole.
//! Truncated or corrupt files give an error sentence or partial
//! information. Every reader (ours and symphonia's) runs inside
//! [`std::panic::catch_unwind`], so a panic in a dependency becomes an
//! error too (this relies on the default `panic = "unwind"`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use super::ReadAtCursor;

/// symphonia reads through its own trait, for any seekable source.
impl symphonia::core::io::MediaSource for ReadAtCursor {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        Some(self.len())
    }
}

/// What a video or audio probe found. Every field optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AvInfo {
    /// Duration of the whole file in milliseconds.
    pub duration_ms: Option<i64>,
    /// Average frame rate of the first video track, rounded to 3 decimals.
    pub fps: Option<f64>,
    /// Codec of the first video track: "h264", "hevc", "av1", "vp8", "vp9", "mpeg4", ...
    pub video_codec: Option<String>,
    /// Codec of the first audio track: "aac", "mp3", "flac", "vorbis", "opus", "pcm_s16le", ...
    pub audio_codec: Option<String>,
    /// Width in pixels of the first video track.
    pub width: Option<u32>,
    /// Height in pixels of the first video track.
    pub height: Option<u32>,
    /// Sample rate in Hz of the first audio track.
    pub sample_rate: Option<u32>,
    /// Channel count of the first audio track.
    pub channels: Option<u32>,
    /// Overall bitrate in bits per second: file size × 8 / duration.
    pub bitrate: Option<u64>,
    /// "title", "artist" and "album" when the file has them.
    pub tags: BTreeMap<String, String>,
}

/// Probes `path`, whose content was sniffed as `mime` (e.g. "video/mp4", "video/quicktime",
/// "video/webm", "video/x-matroska", "audio/mpeg", "audio/x-wav", "audio/x-flac", "audio/ogg", "audio/m4a"/"audio/mp4").
/// Errors are a readable sentence (e.g. "the MP4 has no moov box"), never a panic, for truncated/corrupt input.
///
/// The container is recognised from the file's first bytes when they are
/// unambiguous (`ftyp`, the EBML magic), else from `mime`. For MP3 files
/// without a Xing/VBRI header the duration is estimated from the file size
/// and the average size of the first frames, as symphonia does; it is exact
/// for constant bitrate files and approximate for VBR ones.
pub fn probe(path: &Path, mime: &str) -> Result<AvInfo, String> {
    let file = File::open(path).map_err(|e| format!("cannot open the file: {e}"))?;
    let source = ReadAtCursor::file(file).map_err(|e| format!("cannot read the file: {e}"))?;
    probe_source(source, mime)
}

/// [`probe`] over bytes read through `source`.
pub fn probe_source(source: ReadAtCursor, mime: &str) -> Result<AvInfo, String> {
    let (source, container) = open(source, mime)?;
    let run = AssertUnwindSafe(|| read_container(source, container, mime));
    match catch_unwind(run) {
        Ok(result) => result,
        Err(_) => Err(format!(
            "the {} reader failed on malformed data",
            container.name()
        )),
    }
}

/// The container families, each with its own reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    /// ISO base media file format: MP4, MOV, M4A, 3GP.
    IsoBmff,
    /// EBML: Matroska and WebM.
    Matroska,
    /// Anything symphonia reads: MP3, WAV, AIFF, FLAC, Ogg.
    Symphonia,
}

impl Container {
    fn name(self) -> &'static str {
        match self {
            Container::IsoBmff => "MP4",
            Container::Matroska => "WebM/Matroska",
            Container::Symphonia => "audio",
        }
    }

    /// The container that the first bytes prove, if they do.
    fn sniff(head: &[u8]) -> Option<Container> {
        if head.get(4..8) == Some(b"ftyp") {
            return Some(Container::IsoBmff);
        }
        if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
            return Some(Container::Matroska);
        }
        let audio_magic: [&[u8]; 5] = [b"RIFF", b"ID3", b"fLaC", b"OggS", b"FORM"];
        if audio_magic.iter().any(|m| head.starts_with(m)) {
            return Some(Container::Symphonia);
        }
        None
    }

    /// The container a sniffed MIME type names.
    fn from_mime(mime: &str) -> Option<Container> {
        let essence = mime
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "video/mp4" | "video/quicktime" | "video/x-m4v" | "video/3gpp" | "video/3gpp2"
            | "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "audio/3gpp" | "audio/3gpp2" => {
                Some(Container::IsoBmff)
            }
            "video/webm" | "video/x-matroska" | "audio/webm" | "audio/x-matroska" => {
                Some(Container::Matroska)
            }
            "application/ogg" | "video/ogg" => Some(Container::Symphonia),
            other if other.starts_with("audio/") => Some(Container::Symphonia),
            _ => None,
        }
    }
}

/// Decides which reader gets `source`.
fn open(mut source: ReadAtCursor, mime: &str) -> Result<(ReadAtCursor, Container), String> {
    if source.is_empty() {
        return Err("the file is empty".to_owned());
    }
    let mut head = Vec::with_capacity(12);
    (&mut source)
        .take(12)
        .read_to_end(&mut head)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    source
        .seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot read the file: {e}"))?;
    let container = Container::sniff(&head)
        .or_else(|| Container::from_mime(mime))
        .ok_or_else(|| format!("{mime} is not a video or audio type that can be probed"))?;
    Ok((source, container))
}

/// Runs the container's reader and fills in the overall bitrate.
fn read_container(
    source: ReadAtCursor,
    container: Container,
    mime: &str,
) -> Result<AvInfo, String> {
    let len = source.len();
    let mut info = match container {
        Container::IsoBmff => mp4::probe(&mut Input::new(source, len))?,
        Container::Matroska => mkv::probe(&mut Input::new(source, len))?,
        Container::Symphonia => audio::probe(source, mime)?,
    };
    if info.bitrate.is_none() {
        info.bitrate = overall_bitrate(len, info.duration_ms);
    }
    Ok(info)
}

/// Most bytes of one box or element body that are read into memory.
const MAX_BODY: u64 = 64 * 1024;
/// Most children of one box or element visited.
const MAX_CHILDREN: usize = 4096;

/// Bits per second over the whole file, as ffprobe's `format.bit_rate`.
fn overall_bitrate(len: u64, duration_ms: Option<i64>) -> Option<u64> {
    let ms = u128::try_from(duration_ms?).ok().filter(|&ms| ms > 0)?;
    u64::try_from(u128::from(len) * 8 * 1000 / ms).ok()
}

/// Milliseconds in `units` of a clock ticking `timescale` times a second.
fn ticks_to_ms(units: u64, timescale: u64) -> Option<i64> {
    if timescale == 0 {
        return None;
    }
    i64::try_from(u128::from(units) * 1000 / u128::from(timescale)).ok()
}

/// `value` rounded to 3 decimals, if finite and positive.
fn round3(value: f64) -> Option<f64> {
    (value.is_finite() && value > 0.0).then(|| (value * 1000.0).round() / 1000.0)
}

/// A text value with trailing NULs removed; `None` when empty.
fn clean_text(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches('\0').trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// A buffered file that knows its length and checks every read against it.
#[derive(Debug)]
struct Input<R> {
    r: BufReader<R>,
    pos: u64,
    len: u64,
    /// Reads left before the file is deemed too fragmented to probe, so a
    /// file of millions of tiny boxes cannot keep a probe busy for long.
    reads_left: u32,
}

/// Most reads (box or element headers, small bodies, 4 KiB table chunks)
/// one probe makes.
const MAX_READS: u32 = 1_000_000;

impl<R: Read + Seek> Input<R> {
    fn new(r: R, len: u64) -> Self {
        Input {
            r: BufReader::with_capacity(16 * 1024, r),
            // Unknown: the first read seeks to an absolute position.
            pos: u64::MAX,
            len,
            reads_left: MAX_READS,
        }
    }

    fn seek(&mut self, pos: u64) -> Result<(), String> {
        if self.pos == u64::MAX {
            // A new reader, or a failed read left the position unknown.
            self.r
                .seek(SeekFrom::Start(pos))
                .map_err(|e| format!("cannot seek in the file: {e}"))?;
            self.pos = pos;
        } else if pos != self.pos {
            let delta = i64::try_from(i128::from(pos) - i128::from(self.pos))
                .map_err(|_| "an offset is out of range".to_owned())?;
            self.r
                .seek_relative(delta)
                .map_err(|e| format!("cannot seek in the file: {e}"))?;
            self.pos = pos;
        }
        Ok(())
    }

    /// Fills `buf` from `pos`; an error if the file ends first.
    fn read_exact_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<(), String> {
        let end = pos.saturating_add(buf.len() as u64);
        if end > self.len {
            return Err(format!(
                "the file ends at byte {} before byte {end}",
                self.len
            ));
        }
        self.reads_left = self.reads_left.checked_sub(1).ok_or_else(|| {
            format!("the file has too many boxes or elements to probe ({MAX_READS} reads)")
        })?;
        self.seek(pos)?;
        self.r.read_exact(buf).map_err(|e| {
            self.pos = u64::MAX;
            format!("cannot read the file: {e}")
        })?;
        self.pos = end;
        Ok(())
    }

    /// The bytes from `pos` to `end`, at most `cap` of them.
    fn read_capped(&mut self, pos: u64, end: u64, cap: u64) -> Result<Vec<u8>, String> {
        let n = end.saturating_sub(pos).min(cap);
        let n = usize::try_from(n).map_err(|_| "a size is out of range".to_owned())?;
        let mut buf = vec![0; n];
        self.read_exact_at(pos, &mut buf)?;
        Ok(buf)
    }

    fn u8_at(&mut self, pos: u64) -> Result<u8, String> {
        let mut b = [0; 1];
        self.read_exact_at(pos, &mut b)?;
        Ok(b[0])
    }
}

/// A big-endian cursor over a byte slice; every read is `None` past the end.
#[derive(Debug, Clone)]
struct Cur<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Cur<'a> {
    fn new(b: &'a [u8]) -> Self {
        Cur { b, p: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.p..self.p.checked_add(n)?)?;
        self.p += n;
        Some(s)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn fourcc(&mut self) -> Option<[u8; 4]> {
        self.take(4)?.try_into().ok()
    }

    fn rest(&self) -> &'a [u8] {
        self.b.get(self.p..).unwrap_or(&[])
    }
}

/// A most-significant-bit-first reader, for the AAC AudioSpecificConfig.
#[derive(Debug)]
struct Bits<'a> {
    b: &'a [u8],
    bit: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.b.get(self.bit / 8)?;
            let bit = (byte >> (7 - (self.bit % 8))) & 1;
            v = (v << 1) | u32::from(bit);
            self.bit += 1;
        }
        Some(v)
    }
}

/// ISO base media file format (MP4, MOV, M4A, 3GP).
mod mp4 {
    use super::{
        AvInfo, BTreeMap, Bits, Cur, Input, MAX_BODY, MAX_CHILDREN, Read, Seek, clean_text, round3,
        ticks_to_ms,
    };

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
            Some(1) => c
                .skip(3 + 16)
                .and_then(|_| Some((c.u32()?, known(c.u64()?, u64::MAX)))),
            _ => c
                .skip(3 + 8)
                .and_then(|_| Some((c.u32()?, known(u64::from(c.u32()?), u64::from(u32::MAX))))),
        };
        if let Some((timescale, duration)) = parsed {
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
                    tkhd_size = parse_tkhd(&body);
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

    /// The presentation width and height from a `tkhd`, when non-zero.
    fn parse_tkhd(body: &[u8]) -> Option<(u32, u32)> {
        let mut c = Cur::new(body);
        match c.u8()? {
            1 => c.skip(3 + 32)?,
            _ => c.skip(3 + 20)?,
        }
        c.skip(8 + 2 + 2 + 2 + 2 + 36)?;
        let (w, h) = (c.u32()? >> 16, c.u32()? >> 16);
        (w > 0 && h > 0).then_some((w, h))
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

    /// Tag names we keep, by `ilst` item type or QuickTime `udta` box type.
    fn tag_for_item(kind: &[u8; 4]) -> Option<&'static str> {
        match kind {
            b"\xA9nam" => Some("title"),
            b"\xA9ART" => Some("artist"),
            b"\xA9alb" => Some("album"),
            _ => None,
        }
    }

    /// Tag names we keep, by QuickTime metadata key (`mdta` handler).
    fn tag_for_key(key: &str) -> Option<&'static str> {
        match key {
            "com.apple.quicktime.title" => Some("title"),
            "com.apple.quicktime.artist" => Some("artist"),
            "com.apple.quicktime.album" => Some("album"),
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
    fn summarise(movie: Movie) -> AvInfo {
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
        AvInfo {
            duration_ms,
            fps,
            video_codec: video.and_then(|v| v.codec.clone()),
            audio_codec: audio.and_then(|a| a.codec.clone()),
            width: video.and_then(|v| v.width),
            height: video.and_then(|v| v.height),
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
}

/// Matroska and WebM (EBML).
mod mkv {
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
        let end = if unknown {
            parent_end
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
            "the WebM/Matroska file has no Tracks element (the file is truncated or corrupt)"
                .to_owned()
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
        }
    }
}

/// MP3, WAV, AIFF, FLAC and Ogg through symphonia's demuxers.
mod audio {
    use super::{AvInfo, BTreeMap, Input, MAX_CHILDREN, Read, ReadAtCursor, Seek, clean_text};
    use symphonia::core::codecs::CodecParameters;
    use symphonia::core::codecs::audio::AudioCodecId;
    use symphonia::core::codecs::audio::well_known as codec;
    use symphonia::core::common::Limit;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
    use symphonia::core::meta::{MetadataOptions, MetadataRevision, StandardTag};
    use symphonia::core::units::TimeBase;

    /// Probes `file` with symphonia's registered demuxers.
    pub(super) fn probe(source: ReadAtCursor, mime: &str) -> Result<AvInfo, String> {
        let len = source.len();
        let riff = Some(source.clone());
        let mss = MediaSourceStream::new(Box::new(source), MediaSourceStreamOptions::default());
        let mut hint = Hint::new();
        hint.mime_type(mime);
        let meta_opts = MetadataOptions::default()
            .limit_tag_bytes(Limit::Maximum(64 * 1024))
            .limit_visual_bytes(Limit::Maximum(0));
        let mut format = symphonia::default::get_probe()
            .probe(&hint, mss, FormatOptions::default(), meta_opts)
            .map_err(|e| format!("the audio file cannot be read: {e}"))?;
        let track = format
            .default_track(TrackType::Audio)
            .or_else(|| format.first_track(TrackType::Audio))
            .ok_or_else(|| "the file has no audio track".to_owned())?;
        let track_id = track.id;
        let mut info = AvInfo::default();
        let mut sample_rate = None;
        if let Some(CodecParameters::Audio(params)) = &track.codec_params {
            info.audio_codec = codec_name(params.codec);
            sample_rate = params.sample_rate.filter(|&r| r > 0);
            info.sample_rate = sample_rate;
            info.channels = params
                .channels
                .as_ref()
                .and_then(|c| u32::try_from(c.count()).ok())
                .filter(|&c| c > 0);
        }
        let time_base = track
            .time_base
            .or_else(|| sample_rate.and_then(TimeBase::try_from_recip));
        let length = track.duration.map(|d| d.get()).or(track.num_frames);
        info.duration_ms = match (time_base, length) {
            (Some(tb), Some(units)) => tb
                .calc_duration(units.into())
                .and_then(|t| i64::try_from(t.as_millis()).ok()),
            _ => None,
        };
        let mut metadata = format.metadata();
        let mut revisions = Vec::new();
        if let Some(rev) = metadata.current() {
            revisions.push(rev.clone());
        }
        while metadata.pop().is_some() {
            if let Some(rev) = metadata.current() {
                revisions.push(rev.clone());
            }
        }
        // Later revisions win: ID3v2 (read after the trailing ID3v1) over ID3v1.
        for rev in &revisions {
            apply_tags(rev, u64::from(track_id), &mut info);
        }
        // symphonia 0.6.1 parses a WAV's LIST/INFO chunk but drops it before
        // returning the reader; read those tags here.
        if info.tags.is_empty()
            && let Some(riff) = riff
        {
            info.tags = riff_info_tags(&mut Input::new(riff, len));
        }
        Ok(info)
    }

    /// Title, artist and album from a RIFF WAVE file's LIST/INFO chunk
    /// (INAM, IART, IPRD); empty when there is none or it is malformed.
    pub(super) fn riff_info_tags<R: Read + Seek>(inp: &mut Input<R>) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        let mut head = [0; 12];
        if inp.read_exact_at(0, &mut head).is_err()
            || &head[..4] != b"RIFF"
            || &head[8..] != b"WAVE"
        {
            return tags;
        }
        let chunk = |inp: &mut Input<R>, pos: u64| -> Option<([u8; 4], u64)> {
            let mut h = [0; 8];
            inp.read_exact_at(pos, &mut h).ok()?;
            let id = [h[0], h[1], h[2], h[3]];
            Some((id, u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]))))
        };
        let mut pos = 12;
        for _ in 0..MAX_CHILDREN {
            let Some((id, size)) = chunk(inp, pos) else {
                break;
            };
            let end = (pos + 8).saturating_add(size).min(inp.len);
            let mut form = [0; 4];
            if &id == b"LIST" && inp.read_exact_at(pos + 8, &mut form).is_ok() && &form == b"INFO" {
                let mut sub = pos + 12;
                for _ in 0..MAX_CHILDREN {
                    let Some((id, size)) = chunk(inp, sub).filter(|_| sub + 8 <= end) else {
                        break;
                    };
                    let key = match &id {
                        b"INAM" => "title",
                        b"IART" => "artist",
                        b"IPRD" => "album",
                        _ => "",
                    };
                    let body_end = (sub + 8).saturating_add(size).min(end);
                    if !key.is_empty()
                        && let Ok(text) = inp.read_capped(sub + 8, body_end, 4096)
                        && let Some(text) = clean_text(&text)
                    {
                        tags.insert(key.to_owned(), text);
                    }
                    sub = body_end.saturating_add(size & 1);
                }
            }
            pos = end.saturating_add(size & 1);
            if pos >= inp.len {
                break;
            }
        }
        tags
    }

    fn apply_tags(rev: &MetadataRevision, track_id: u64, info: &mut AvInfo) {
        let track_tags = rev
            .per_track
            .iter()
            .filter(|t| t.track_id == track_id)
            .flat_map(|t| t.metadata.tags.iter());
        for tag in rev.media.tags.iter().chain(track_tags) {
            let (key, value) = match &tag.std {
                Some(StandardTag::TrackTitle(v)) => ("title", v),
                Some(StandardTag::Artist(v)) => ("artist", v),
                Some(StandardTag::Album(v)) => ("album", v),
                _ => continue,
            };
            let value = value.trim_end_matches('\0').trim();
            if !value.is_empty() {
                info.tags.insert(key.to_owned(), value.to_owned());
            }
        }
    }

    /// The short name of a symphonia audio codec.
    fn codec_name(id: AudioCodecId) -> Option<String> {
        let name = match id {
            codec::CODEC_ID_MP1 => "mp1",
            codec::CODEC_ID_MP2 => "mp2",
            codec::CODEC_ID_MP3 => "mp3",
            codec::CODEC_ID_AAC => "aac",
            codec::CODEC_ID_FLAC => "flac",
            codec::CODEC_ID_VORBIS => "vorbis",
            codec::CODEC_ID_OPUS => "opus",
            codec::CODEC_ID_SPEEX => "speex",
            codec::CODEC_ID_ALAC => "alac",
            codec::CODEC_ID_AC3 => "ac3",
            codec::CODEC_ID_EAC3 => "eac3",
            codec::CODEC_ID_WAVPACK => "wavpack",
            codec::CODEC_ID_PCM_S8 => "pcm_s8",
            codec::CODEC_ID_PCM_U8 => "pcm_u8",
            codec::CODEC_ID_PCM_S16LE => "pcm_s16le",
            codec::CODEC_ID_PCM_S16BE => "pcm_s16be",
            codec::CODEC_ID_PCM_S24LE => "pcm_s24le",
            codec::CODEC_ID_PCM_S24BE => "pcm_s24be",
            codec::CODEC_ID_PCM_S32LE => "pcm_s32le",
            codec::CODEC_ID_PCM_S32BE => "pcm_s32be",
            codec::CODEC_ID_PCM_U16LE => "pcm_u16le",
            codec::CODEC_ID_PCM_U16BE => "pcm_u16be",
            codec::CODEC_ID_PCM_U24LE => "pcm_u24le",
            codec::CODEC_ID_PCM_U24BE => "pcm_u24be",
            codec::CODEC_ID_PCM_U32LE => "pcm_u32le",
            codec::CODEC_ID_PCM_U32BE => "pcm_u32be",
            codec::CODEC_ID_PCM_F32LE => "pcm_f32le",
            codec::CODEC_ID_PCM_F32BE => "pcm_f32be",
            codec::CODEC_ID_PCM_F64LE => "pcm_f64le",
            codec::CODEC_ID_PCM_F64BE => "pcm_f64be",
            codec::CODEC_ID_PCM_ALAW => "pcm_alaw",
            codec::CODEC_ID_PCM_MULAW => "pcm_mulaw",
            codec::CODEC_ID_ADPCM_MS => "adpcm_ms",
            codec::CODEC_ID_ADPCM_IMA_WAV => "adpcm_ima_wav",
            codec::CODEC_ID_ADPCM_IMA_QT => "adpcm_ima_qt",
            _ => return None,
        };
        Some(name.to_owned())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::mp4::build::{self, bx, full};
    use super::*;
    use std::io::Write;

    use crate::analyze::fixture;

    /// The tags every audio fixture carries.
    fn tone_tags() -> BTreeMap<String, String> {
        tags(&[
            ("title", "Test Tone"),
            ("artist", "Mediastore"),
            ("album", "Fixtures"),
        ])
    }

    fn temp_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        f
    }

    /// Probes without the `catch_unwind` guard, so a panic in our readers
    /// (or symphonia's) fails the test instead of becoming an error.
    fn probe_unguarded(path: &Path, mime: &str) -> Result<AvInfo, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let (source, container) = open(ReadAtCursor::file(file).map_err(|e| e.to_string())?, mime)?;
        read_container(source, container, mime)
    }

    fn probe_bytes(bytes: &[u8], mime: &str) -> Result<AvInfo, String> {
        let f = temp_with(bytes);
        probe_unguarded(f.path(), mime)
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn assert_near(actual: Option<i64>, expected: i64, tolerance: i64, what: &str) {
        let actual = actual.unwrap_or_else(|| panic!("{what}: no duration"));
        assert!(
            (actual - expected).abs() <= tolerance,
            "{what}: duration {actual} ms, expected {expected} ± {tolerance}"
        );
    }

    /// A 16-bit PCM WAV with a LIST/INFO chunk before the data.
    fn wav(rate: u32, channels: u16, frames: u32, info: &[(&[u8; 4], &str)]) -> Vec<u8> {
        let block = channels * 2;
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&1u16.to_le_bytes());
        fmt.extend_from_slice(&channels.to_le_bytes());
        fmt.extend_from_slice(&rate.to_le_bytes());
        fmt.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        fmt.extend_from_slice(&block.to_le_bytes());
        fmt.extend_from_slice(&16u16.to_le_bytes());
        let chunk = |id: &[u8], body: &[u8]| {
            let mut c = id.to_vec();
            c.extend_from_slice(&(body.len() as u32).to_le_bytes());
            c.extend_from_slice(body);
            if body.len() % 2 == 1 {
                c.push(0);
            }
            c
        };
        let mut list = b"INFO".to_vec();
        for (id, text) in info {
            let mut z = text.as_bytes().to_vec();
            z.push(0);
            list.extend(chunk(*id, &z));
        }
        let samples: Vec<u8> = (0..frames * u32::from(channels))
            .flat_map(|i| (((i % 64) as i16 - 32) * 500).to_le_bytes())
            .collect();
        let mut body = b"WAVE".to_vec();
        body.extend(chunk(b"fmt ", &fmt));
        if !info.is_empty() {
            body.extend(chunk(b"LIST", &list));
        }
        body.extend(chunk(b"data", &samples));
        chunk(b"RIFF", &body)
    }

    #[test]
    fn wav_written_in_code() {
        let bytes = wav(
            8000,
            2,
            12_000,
            &[
                (b"INAM", "Code Tone"),
                (b"IART", "Mediastore"),
                (b"IPRD", "Unit Tests"),
            ],
        );
        let info = probe_bytes(&bytes, "audio/x-wav").unwrap();
        assert_eq!(info.duration_ms, Some(1500));
        assert_eq!(info.audio_codec.as_deref(), Some("pcm_s16le"));
        assert_eq!(info.sample_rate, Some(8000));
        assert_eq!(info.channels, Some(2));
        assert_eq!(info.bitrate, Some(bytes.len() as u64 * 8 * 1000 / 1500));
        assert_eq!(
            info.tags,
            tags(&[
                ("title", "Code Tone"),
                ("artist", "Mediastore"),
                ("album", "Unit Tests")
            ])
        );
        assert_eq!(
            (info.video_codec, info.width, info.height, info.fps),
            (None, None, None, None)
        );
    }

    #[test]
    fn mp4_written_in_code() {
        let bytes = build::sample_mp4();
        let info = probe_bytes(&bytes, "video/mp4").unwrap();
        assert_eq!(
            info,
            AvInfo {
                duration_ms: Some(2000),
                fps: Some(25.0),
                video_codec: Some("h264".to_owned()),
                audio_codec: Some("aac".to_owned()),
                width: Some(160),
                height: Some(120),
                sample_rate: Some(22050),
                channels: Some(1),
                bitrate: Some(bytes.len() as u64 * 8 / 2),
                tags: tags(&[
                    ("title", "Hand Made"),
                    ("artist", "Mediastore"),
                    ("album", "Unit Tests")
                ]),
            }
        );
    }

    /// The sample MP4 with its `mdat` before `moov`, as cameras write it.
    fn moov_last(mdat_len: usize) -> Vec<u8> {
        let bytes = build::sample_mp4();
        let ftyp_len = 32;
        let moov_len = bytes.len() - ftyp_len - 1008;
        let ftyp = &bytes[..ftyp_len];
        let moov = &bytes[ftyp_len..ftyp_len + moov_len];
        [ftyp, &bx(b"mdat", &vec![0x55; mdat_len]), moov].concat()
    }

    #[test]
    fn mp4_moov_after_mdat() {
        let info = probe_bytes(&moov_last(5000), "video/quicktime").unwrap();
        assert_eq!(info.duration_ms, Some(2000));
        assert_eq!(info.video_codec.as_deref(), Some("h264"));
        // Cut inside mdat: the moov box is gone.
        let cut = moov_last(5000);
        let err = probe_bytes(&cut[..3000], "video/mp4").unwrap_err();
        assert!(err.contains("no moov box"), "{err}");
        // Cut inside moov.
        let err = probe_bytes(&cut[..cut.len() - 20], "video/mp4").unwrap_err();
        assert!(err.contains("moov box is cut short"), "{err}");
    }

    #[test]
    fn mp4_skips_a_huge_mdat_by_seeking() {
        // A sparse 4 GiB mdat (64-bit size) before moov: read without reading the mdat.
        let bytes = build::sample_mp4();
        let moov = &bytes[32..bytes.len() - 1008];
        let mdat_len: u64 = (4 << 30) + 16;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes[..32]).unwrap();
        f.write_all(&1u32.to_be_bytes()).unwrap();
        f.write_all(b"mdat").unwrap();
        f.write_all(&mdat_len.to_be_bytes()).unwrap();
        f.as_file().set_len(32 + mdat_len).unwrap();
        f.seek(SeekFrom::Start(32 + mdat_len)).unwrap();
        f.write_all(moov).unwrap();
        f.flush().unwrap();
        let info = probe_unguarded(f.path(), "video/mp4").unwrap();
        assert_eq!(info.duration_ms, Some(2000));
        assert_eq!(info.width, Some(160));
        assert_eq!(
            info.bitrate,
            Some((32 + mdat_len + moov.len() as u64) * 8 / 2)
        );
    }

    #[test]
    fn mp4_hostile_sizes_are_errors_not_allocations() {
        let ftyp = bx(b"ftyp", b"isom\0\0\0\0");
        // A top-level box claiming 4 GB in a small file: no moov.
        let mut claim = ftyp.clone();
        claim.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
        claim.extend_from_slice(b"moov");
        claim.extend_from_slice(&[0; 64]);
        let err = probe_bytes(&claim, "video/mp4").unwrap_err();
        assert!(err.contains("cut short"), "{err}");
        // A 64-bit size of 2^62.
        let mut huge = ftyp.clone();
        huge.extend_from_slice(&1u32.to_be_bytes());
        huge.extend_from_slice(b"mdat");
        huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
        let err = probe_bytes(&huge, "video/mp4").unwrap_err();
        assert!(err.contains("no moov"), "{err}");
        // A size smaller than its own header.
        let mut tiny = ftyp.clone();
        tiny.extend_from_slice(&4u32.to_be_bytes());
        tiny.extend_from_slice(b"moov");
        let err = probe_bytes(&tiny, "video/mp4").unwrap_err();
        assert!(err.contains("impossible size"), "{err}");
        // A child larger than its parent.
        let mut child = vec![0, 0, 0, 40];
        child.extend_from_slice(b"mvhd");
        let bad_moov = bx(b"moov", &child);
        let err = probe_bytes(&[ftyp.clone(), bad_moov].concat(), "video/mp4").unwrap_err();
        assert!(err.contains("more than its parent"), "{err}");
        // stts and stsd claiming 4 billion entries in a few bytes.
        let mut stts = u32::MAX.to_be_bytes().to_vec();
        stts.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 1]);
        let entry = build::visual_entry(b"avc1", 64, 48, &[]);
        let trak = build::trak(b"vide", 10, 100, &entry, &[], (64, 48));
        let trak = {
            // Replace the empty stts with the lying one.
            let empty = full(b"stts", &0u32.to_be_bytes());
            let pos = trak.windows(empty.len()).position(|w| w == empty).unwrap();
            let mut t = trak[..pos].to_vec();
            t.extend(full(b"stts", &stts));
            // Fix the sizes of trak, mdia, minf and stbl (each grew by 8 bytes).
            for kind in [b"trak", b"mdia", b"minf", b"stbl"] {
                let at = t.windows(4).position(|w| w == kind).unwrap() - 4;
                let size = u32::from_be_bytes(t[at..at + 4].try_into().unwrap()) + 8;
                t[at..at + 4].copy_from_slice(&size.to_be_bytes());
            }
            t
        };
        let moov = bx(b"moov", &[build::mvhd(10, 100), trak].concat());
        let info = probe_bytes(&[ftyp, moov].concat(), "video/mp4").unwrap();
        // 10 samples of 1 tick at 10 ticks a second.
        assert_eq!(info.fps, Some(10.0));
        assert_eq!((info.width, info.height), (Some(64), Some(48)));
    }

    #[test]
    fn mp4_with_millions_of_boxes_stops_at_the_read_budget() {
        // 2 million empty `free` boxes (16 MB): bounded work.
        let free = bx(b"free", &[]);
        let many: Vec<u8> = free
            .iter()
            .copied()
            .cycle()
            .take(free.len() * 2_000_000)
            .collect();
        // Inside moov: only the first 4096 children of udta are visited.
        let mut bytes = bx(b"ftyp", b"isom\0\0\0\0");
        bytes.extend(bx(
            b"moov",
            &[build::mvhd(1000, 5000), bx(b"udta", &many)].concat(),
        ));
        let info = probe_bytes(&bytes, "video/mp4").unwrap();
        assert_eq!(info.duration_ms, Some(5000));
        // At the top level, with no moov: the walk stops at the child cap.
        let mut bytes = bx(b"ftyp", b"isom\0\0\0\0");
        bytes.extend(&many);
        let err = probe_bytes(&bytes, "video/mp4").unwrap_err();
        assert!(err.contains("no moov"), "{err}");
        // 300 tracks of 4096 boxes each: the read budget ends the probe.
        let trak = bx(b"trak", &many[..free.len() * 4096]);
        let traks: Vec<u8> = trak
            .iter()
            .copied()
            .cycle()
            .take(trak.len() * 300)
            .collect();
        let mut bytes = bx(b"ftyp", b"isom\0\0\0\0");
        bytes.extend(bx(b"moov", &traks));
        let err = probe_bytes(&bytes, "video/mp4").unwrap_err();
        assert!(err.contains("too many boxes"), "{err}");
    }

    #[test]
    fn mp4_fragmented_duration_comes_from_mehd() {
        let mut mehd = vec![0; 4];
        mehd.extend_from_slice(&4500u32.to_be_bytes());
        let mvex = bx(b"mvex", &full(b"mehd", &mehd[4..]));
        let entry = build::visual_entry(b"vp09", 320, 240, &[]);
        let moov = bx(
            b"moov",
            &[
                build::mvhd(1000, 0),
                build::trak(b"vide", 90000, 0, &entry, &[], (320, 240)),
                mvex,
            ]
            .concat(),
        );
        let info =
            probe_bytes(&[bx(b"ftyp", b"iso6\0\0\0\0"), moov].concat(), "video/mp4").unwrap();
        assert_eq!(info.duration_ms, Some(4500));
        assert_eq!(info.video_codec.as_deref(), Some("vp9"));
        assert_eq!(info.fps, None);
    }

    /// A movie with one audio track whose sample entry is `entry`, and `extra` boxes in moov.
    fn audio_movie(entry: &[u8], extra: &[u8]) -> Vec<u8> {
        let trak = build::trak(b"soun", 48000, 96000, entry, &[(96000, 1)], (0, 0));
        let moov = bx(
            b"moov",
            &[build::mvhd(600, 1200), trak, extra.to_vec()].concat(),
        );
        [bx(b"ftyp", b"qt  \0\0\0\0"), moov].concat()
    }

    #[test]
    fn mp4_quicktime_v2_lpcm_entry_and_keys_metadata() {
        // A QuickTime version 2 sound description: 48 kHz, 2 channels, 24-bit
        // signed little-endian integers (flags: signed | packed).
        let mut e = vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0];
        e.extend_from_slice(&[0, 3, 0, 16, 0xFF, 0xFE, 0, 0, 0, 1, 0, 0]);
        e.extend_from_slice(&72u32.to_be_bytes());
        e.extend_from_slice(&48000f64.to_bits().to_be_bytes());
        for v in [2u32, 0x7F00_0000, 24, 0x4 | 0x8, 6, 1] {
            e.extend_from_slice(&v.to_be_bytes());
        }
        // QuickTime `mdta` metadata: a `meta` without version, `keys`, and
        // `ilst` items named by 1-based key index.
        let mut hdlr = vec![0; 8];
        hdlr.extend_from_slice(b"mdta");
        hdlr.extend_from_slice(&[0; 13]);
        let mut keys = vec![0, 0, 0, 0, 0, 0, 0, 2];
        for key in ["com.apple.quicktime.make", "com.apple.quicktime.title"] {
            keys.extend_from_slice(&(key.len() as u32 + 8).to_be_bytes());
            keys.extend_from_slice(b"mdta");
            keys.extend_from_slice(key.as_bytes());
        }
        let data = |text: &str| {
            bx(
                b"data",
                &[&[0, 0, 0, 1, 0, 0, 0, 0][..], text.as_bytes()].concat(),
            )
        };
        let ilst = bx(
            b"ilst",
            &[
                bx(&1u32.to_be_bytes(), &data("Apple")),
                bx(&2u32.to_be_bytes(), &data("Holiday")),
            ]
            .concat(),
        );
        let meta = bx(
            b"meta",
            &[bx(b"hdlr", &hdlr), bx(b"keys", &keys), ilst].concat(),
        );
        let info = probe_bytes(&audio_movie(&bx(b"lpcm", &e), &meta), "video/quicktime").unwrap();
        assert_eq!(info.audio_codec.as_deref(), Some("pcm_s24le"));
        assert_eq!((info.sample_rate, info.channels), (Some(48000), Some(2)));
        assert_eq!(info.duration_ms, Some(2000));
        assert_eq!(info.tags, tags(&[("title", "Holiday")]));
    }

    #[test]
    fn mp4_quicktime_v1_entry_with_wave_esds() {
        // Version 1 sound description: 16 more bytes before the children, and
        // the esds inside a `wave` box. The entry says 22050 Hz mono; the
        // AudioSpecificConfig (AAC LC, 44100 Hz, stereo) wins, as for a decoder.
        let mut e = vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0];
        e.extend_from_slice(&[0, 1, 0, 16, 0xFF, 0xFE, 0, 0]);
        e.extend_from_slice(&(22050u32 << 16).to_be_bytes());
        e.extend_from_slice(&[0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let frma = b"mp4a".to_vec();
        let wave = bx(
            b"wave",
            &[
                bx(b"frma", &frma),
                build::esds(0x40, &[0x12, 0x10]),
                vec![0; 8],
            ]
            .concat(),
        );
        e.extend(wave);
        let info = probe_bytes(&audio_movie(&bx(b"mp4a", &e), &[]), "video/quicktime").unwrap();
        assert_eq!(info.audio_codec.as_deref(), Some("aac"));
        assert_eq!((info.sample_rate, info.channels), (Some(44100), Some(2)));
    }

    #[test]
    fn fixture_mp3_with_xing_header() {
        let info = probe_unguarded(&fixture("tone.mp3"), "audio/mpeg").unwrap();
        // ffprobe says 2.096 s; symphonia subtracts the encoder delay and padding
        // that the LAME tag declares.
        assert_near(info.duration_ms, 2095, 10, "tone.mp3");
        assert_eq!(info.audio_codec.as_deref(), Some("mp3"));
        assert_eq!(info.sample_rate, Some(22050));
        assert_eq!(info.channels, Some(1));
        let kbps = info.bitrate.unwrap() / 1000;
        assert!((30..=36).contains(&kbps), "{kbps} kb/s");
        assert_eq!(info.tags, tone_tags());
        assert_eq!(info.video_codec, None);
    }

    #[test]
    fn fixture_mp3_without_xing_header_is_estimated() {
        let info = probe_unguarded(&fixture("tone-noxing.mp3"), "audio/mpeg").unwrap();
        // ffprobe: 2.064 s, also estimated.
        assert_near(info.duration_ms, 2064, 10, "tone-noxing.mp3");
        assert_eq!(info.audio_codec.as_deref(), Some("mp3"));
        assert_eq!((info.sample_rate, info.channels), (Some(22050), Some(1)));
        assert_eq!(
            info.tags.get("title").map(String::as_str),
            Some("Test Tone")
        );
    }

    #[test]
    fn fixture_flac() {
        let info = probe_unguarded(&fixture("tone.flac"), "audio/x-flac").unwrap();
        assert_eq!(info.duration_ms, Some(1500));
        assert_eq!(info.audio_codec.as_deref(), Some("flac"));
        assert_eq!((info.sample_rate, info.channels), (Some(16000), Some(2)));
        assert_eq!(info.bitrate, Some(32633 * 8 * 1000 / 1500));
        assert_eq!(info.tags, tone_tags());
    }

    #[test]
    fn fixture_ogg_vorbis() {
        let info = probe_unguarded(&fixture("tone.ogg"), "audio/ogg").unwrap();
        assert_near(info.duration_ms, 2000, 1, "tone.ogg");
        assert_eq!(info.audio_codec.as_deref(), Some("vorbis"));
        assert_eq!((info.sample_rate, info.channels), (Some(22050), Some(1)));
        assert_eq!(info.tags, tone_tags());
    }

    #[test]
    fn fixture_ogg_opus() {
        let info = probe_unguarded(&fixture("tone.opus"), "audio/ogg").unwrap();
        // ffprobe: 2.0065 s.
        assert_near(info.duration_ms, 2006, 2, "tone.opus");
        assert_eq!(info.audio_codec.as_deref(), Some("opus"));
        assert_eq!((info.sample_rate, info.channels), (Some(48000), Some(1)));
        assert_eq!(info.tags, tone_tags());
    }

    #[test]
    fn fixture_m4a() {
        let info = probe_unguarded(&fixture("tone.m4a"), "audio/mp4").unwrap();
        assert_eq!(info.duration_ms, Some(2000));
        assert_eq!(info.audio_codec.as_deref(), Some("aac"));
        assert_eq!((info.sample_rate, info.channels), (Some(22050), Some(1)));
        assert_eq!((info.video_codec, info.fps, info.width), (None, None, None));
        assert_eq!(info.bitrate, Some(9483 * 8 / 2));
        assert_eq!(info.tags, tone_tags());
    }

    #[test]
    fn fixture_mp4_h264_aac() {
        let info = probe_unguarded(&fixture("video-h264-aac.mp4"), "video/mp4").unwrap();
        assert_eq!(
            info,
            AvInfo {
                duration_ms: Some(2000),
                fps: Some(25.0),
                video_codec: Some("h264".to_owned()),
                audio_codec: Some("aac".to_owned()),
                width: Some(160),
                height: Some(120),
                sample_rate: Some(22050),
                channels: Some(1),
                bitrate: Some(14596 * 8 / 2),
                tags: tags(&[
                    ("title", "Test Video"),
                    ("artist", "Mediastore"),
                    ("album", "Fixtures")
                ]),
            }
        );
    }

    #[test]
    fn fixture_mp4_hevc_without_audio() {
        let info = probe_unguarded(&fixture("video-hevc.mp4"), "video/mp4").unwrap();
        assert_eq!(info.duration_ms, Some(1000));
        assert_eq!(info.fps, Some(24.0));
        assert_eq!(info.video_codec.as_deref(), Some("hevc"));
        assert_eq!((info.width, info.height), (Some(128), Some(96)));
        assert_eq!(
            (info.audio_codec, info.sample_rate, info.channels),
            (None, None, None)
        );
    }

    #[test]
    fn fixture_mov_mpeg4_pcm() {
        let info = probe_unguarded(&fixture("video-mpeg4-pcm.mov"), "video/quicktime").unwrap();
        assert_eq!(info.duration_ms, Some(1001));
        assert_eq!(info.fps, Some(29.97));
        assert_eq!(info.video_codec.as_deref(), Some("mpeg4"));
        assert_eq!(info.audio_codec.as_deref(), Some("pcm_s16le"));
        assert_eq!((info.width, info.height), (Some(96), Some(64)));
        assert_eq!((info.sample_rate, info.channels), (Some(8000), Some(1)));
        assert_eq!(info.tags, tags(&[("title", "Test Movie")]));
    }

    #[test]
    fn fixture_webm_vp9_opus() {
        let info = probe_unguarded(&fixture("video-vp9-opus.webm"), "video/webm").unwrap();
        assert_eq!(info.duration_ms, Some(2008));
        assert_eq!(info.fps, Some(25.0));
        assert_eq!(info.video_codec.as_deref(), Some("vp9"));
        assert_eq!(info.audio_codec.as_deref(), Some("opus"));
        assert_eq!((info.width, info.height), (Some(160), Some(120)));
        assert_eq!((info.sample_rate, info.channels), (Some(48000), Some(1)));
        assert_eq!(info.bitrate, Some(10838 * 8 * 1000 / 2008));
        assert_eq!(
            info.tags,
            tags(&[
                ("title", "Test Web"),
                ("artist", "Mediastore"),
                ("album", "Fixtures")
            ])
        );
    }

    #[test]
    fn fixture_mkv_av1_vorbis() {
        let info = probe_unguarded(&fixture("video-av1-vorbis.mkv"), "video/x-matroska").unwrap();
        assert_eq!(info.duration_ms, Some(1003));
        assert_eq!(info.fps, Some(24.0));
        assert_eq!(info.video_codec.as_deref(), Some("av1"));
        assert_eq!(info.audio_codec.as_deref(), Some("vorbis"));
        assert_eq!((info.width, info.height), (Some(128), Some(72)));
        assert_eq!((info.sample_rate, info.channels), (Some(44100), Some(2)));
        assert_eq!(
            info.tags,
            tags(&[("title", "Test Matroska"), ("artist", "Mediastore")])
        );
    }

    #[test]
    fn mime_only_decides_when_the_bytes_do_not() {
        // An MP4 labelled as WebM is still read as an MP4.
        let info = probe_unguarded(&fixture("video-hevc.mp4"), "video/webm").unwrap();
        assert_eq!(info.video_codec.as_deref(), Some("hevc"));
        let err = probe_unguarded(&fixture("pages5-objstm.pdf"), "application/pdf").unwrap_err();
        assert!(err.contains("not a video or audio type"), "{err}");
        let err = probe_bytes(b"", "video/mp4").unwrap_err();
        assert_eq!(err, "the file is empty");
        let err = probe(Path::new("/nonexistent/x.mp4"), "video/mp4").unwrap_err();
        assert!(err.starts_with("cannot open the file"), "{err}");
    }

    /// A tiny deterministic generator for the corruption tests.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Truncated and bit-flipped versions of `bytes`.
    fn corrupted(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut variants: Vec<Vec<u8>> = vec![
            bytes[..bytes.len() / 2].to_vec(),
            bytes[..100.min(bytes.len())].to_vec(),
            bytes[..10.min(bytes.len())].to_vec(),
        ];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ bytes.len() as u64);
        for round in 0..150 {
            let mut v = bytes.to_vec();
            for _ in 0..=(round % 8) {
                // Most headers are near the start: flip there more often.
                let span = if round % 2 == 0 {
                    v.len().min(600)
                } else {
                    v.len()
                };
                let at = (rng.next() % span as u64) as usize;
                v[at] ^= 1 << (rng.next() % 8);
            }
            if round % 5 == 0 {
                let at = (rng.next() % v.len() as u64) as usize;
                let n = (rng.next() % 4) as usize + 1;
                for b in v.iter_mut().skip(at).take(n) {
                    *b = 0xFF;
                }
            }
            variants.push(v);
        }
        variants
    }

    #[test]
    fn corrupt_and_truncated_containers_never_panic_in_our_readers() {
        // Our MP4 and EBML readers run unguarded here: a panic fails the test.
        let cases = [
            ("tone.m4a", "audio/mp4"),
            ("video-h264-aac.mp4", "video/mp4"),
            ("video-hevc.mp4", "video/mp4"),
            ("video-mpeg4-pcm.mov", "video/quicktime"),
            ("video-vp9-opus.webm", "video/webm"),
            ("video-av1-vorbis.mkv", "video/x-matroska"),
        ];
        let mut inputs: Vec<(Vec<u8>, &str)> = cases
            .iter()
            .map(|(name, mime)| (std::fs::read(fixture(name)).unwrap(), *mime))
            .collect();
        inputs.push((build::sample_mp4(), "video/mp4"));
        for (bytes, mime) in inputs {
            for v in corrupted(&bytes) {
                let _ = probe_bytes(&v, mime);
            }
        }
        // Our WAV LIST/INFO reader, unguarded too.
        let bytes = wav(8000, 1, 800, &[(b"INAM", "x"), (b"IART", "y")]);
        for v in corrupted(&bytes) {
            let len = v.len() as u64;
            let _ = audio::riff_info_tags(&mut Input::new(std::io::Cursor::new(v), len));
        }
    }

    #[test]
    fn corrupt_and_truncated_audio_gives_errors_not_panics() {
        // symphonia can panic on corrupt input (e.g. an arithmetic overflow
        // in its WAV fmt chunk check in debug builds): `probe` must turn that
        // into an error.
        let cases = [
            ("tone.mp3", "audio/mpeg"),
            ("tone-noxing.mp3", "audio/mpeg"),
            ("tone.flac", "audio/x-flac"),
            ("tone.ogg", "audio/ogg"),
            ("tone.opus", "audio/ogg"),
        ];
        let mut inputs: Vec<(Vec<u8>, &str)> = cases
            .iter()
            .map(|(name, mime)| (std::fs::read(fixture(name)).unwrap(), *mime))
            .collect();
        inputs.push((wav(8000, 1, 800, &[(b"INAM", "x")]), "audio/x-wav"));
        for (bytes, mime) in inputs {
            for v in corrupted(&bytes) {
                let f = temp_with(&v);
                let _ = probe(f.path(), mime);
            }
        }
    }

    #[test]
    fn truncated_files_give_errors_or_partial_information() {
        // A faststart MP4 cut in half keeps its moov: full information.
        let bytes = std::fs::read(fixture("video-h264-aac.mp4")).unwrap();
        let info = probe_bytes(&bytes[..bytes.len() / 2], "video/mp4").unwrap();
        assert_eq!(info.video_codec.as_deref(), Some("h264"));
        assert_eq!(info.duration_ms, Some(2000));
        let err = probe_bytes(&bytes[..100], "video/mp4").unwrap_err();
        assert!(err.contains("moov"), "{err}");
        // A WebM cut in half keeps its headers.
        let bytes = std::fs::read(fixture("video-vp9-opus.webm")).unwrap();
        let info = probe_bytes(&bytes[..bytes.len() / 2], "video/webm").unwrap();
        assert_eq!(info.video_codec.as_deref(), Some("vp9"));
        assert_eq!((info.width, info.height), (Some(160), Some(120)));
        let err = probe_bytes(&bytes[..100], "video/webm").unwrap_err();
        assert!(err.contains("WebM/Matroska"), "{err}");
        // Audio cut at 100 bytes: no audio frames left to describe.
        for (name, mime) in [("tone.flac", "audio/x-flac"), ("tone.ogg", "audio/ogg")] {
            let bytes = std::fs::read(fixture(name)).unwrap();
            assert!(probe_bytes(&bytes[..40], mime).is_err(), "{name}");
        }
    }

    /// An EBML element with a one- or more-byte ID and an 8-byte size.
    fn ebml(id: u32, body: &[u8]) -> Vec<u8> {
        let id_bytes = id.to_be_bytes();
        let skip = id_bytes.iter().position(|&b| b != 0).unwrap_or(3);
        let mut out = id_bytes[skip..].to_vec();
        out.push(0x01);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
        out.extend_from_slice(body);
        out
    }

    fn ebml_uint(id: u32, v: u64) -> Vec<u8> {
        ebml(id, &v.to_be_bytes())
    }

    fn webm_header() -> Vec<u8> {
        ebml(0x1A45_DFA3, &ebml(0x4282, b"webm"))
    }

    #[test]
    fn ebml_live_stream_with_unknown_sizes() {
        // MediaRecorder-style: unknown-size Segment and Cluster, no Duration.
        let tracks = ebml(
            0x1654_AE6B,
            &ebml(
                0xAE,
                &[
                    ebml_uint(0x83, 1),
                    ebml(0x86, b"V_VP8"),
                    ebml(0xE0, &[ebml_uint(0xB0, 640), ebml_uint(0xBA, 480)].concat()),
                ]
                .concat(),
            ),
        );
        let mut bytes = webm_header();
        bytes.extend_from_slice(&[
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        bytes.extend(ebml(0x1549_A966, &ebml_uint(0x2A_D7B1, 1_000_000)));
        bytes.extend(tracks);
        bytes.extend_from_slice(&[0x1F, 0x43, 0xB6, 0x75, 0xFF]);
        bytes.extend_from_slice(&[0; 200]);
        let info = probe_bytes(&bytes, "video/webm").unwrap();
        assert_eq!(info.video_codec.as_deref(), Some("vp8"));
        assert_eq!((info.width, info.height), (Some(640), Some(480)));
        assert_eq!(
            (info.duration_ms, info.bitrate, info.fps),
            (None, None, None)
        );
    }

    #[test]
    fn ebml_hostile_sizes() {
        // Tracks claiming 2^55 bytes inside a small segment.
        let mut bytes = webm_header();
        let mut seg = vec![0x16, 0x54, 0xAE, 0x6B, 0x01, 0x7F, 0, 0, 0, 0, 0, 0];
        seg.extend_from_slice(&[0; 32]);
        bytes.extend(ebml(0x1853_8067, &seg));
        let err = probe_bytes(&bytes, "video/webm").unwrap_err();
        assert!(
            err.contains("Tracks element is truncated or corrupt"),
            "{err}"
        );
        // An invalid element ID (a zero first byte).
        let mut bytes = webm_header();
        bytes.extend(ebml(0x1853_8067, &[0, 0, 0, 0]));
        assert!(probe_bytes(&bytes, "video/webm").is_err());
        // A doc type that is not Matroska.
        let bytes = ebml(0x1A45_DFA3, &ebml(0x4282, b"other"));
        let err = probe_bytes(&bytes, "video/webm").unwrap_err();
        assert!(err.contains("'other'"), "{err}");
        // An integer element of 100 bytes.
        let mut bytes = webm_header();
        let info = ebml(0x1549_A966, &ebml(0x2A_D7B1, &[1; 100]));
        bytes.extend(ebml(0x1853_8067, &info));
        let err = probe_bytes(&bytes, "video/webm").unwrap_err();
        assert!(err.contains("100 bytes long"), "{err}");
    }

    #[test]
    fn ebml_duration_falls_back_to_track_tags() {
        let tracks = ebml(
            0x1654_AE6B,
            &ebml(
                0xAE,
                &[ebml_uint(0x83, 2), ebml(0x86, b"A_OPUS"), ebml(0xE1, &[])].concat(),
            ),
        );
        let simple = |name: &str, value: &str| {
            ebml(
                0x67C8,
                &[
                    ebml(0x45A3, name.as_bytes()),
                    ebml(0x4487, value.as_bytes()),
                ]
                .concat(),
            )
        };
        let tag_elems = ebml(
            0x1254_C367,
            &[
                ebml(
                    0x7373,
                    &[
                        ebml(0x63C0, &ebml_uint(0x63C5, 7)),
                        simple("DURATION", "00:01:02.500000000"),
                    ]
                    .concat(),
                ),
                ebml(
                    0x7373,
                    &[
                        ebml(0x63C0, &[]),
                        simple("ARTIST", "Someone"),
                        simple("COMMENT", "x"),
                    ]
                    .concat(),
                ),
            ]
            .concat(),
        );
        let mut bytes = webm_header();
        bytes.extend(ebml(0x1853_8067, &[tracks, tag_elems].concat()));
        let info = probe_bytes(&bytes, "audio/webm").unwrap();
        assert_eq!(info.duration_ms, Some(62_500));
        assert_eq!(info.audio_codec.as_deref(), Some("opus"));
        // Matroska defaults: 8000 Hz, one channel.
        assert_eq!((info.sample_rate, info.channels), (Some(8000), Some(1)));
        assert_eq!(info.tags, tags(&[("artist", "Someone")]));
    }
}
