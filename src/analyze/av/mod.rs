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

use super::{ReadAtCursor, cursor::Cur};

// One container family per file: the MP4/MOV box reader, the EBML reader,
// and the symphonia glue for the audio formats.
mod audio;
mod mkv;
mod mp4;
pub mod recorded;

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
    /// Width in pixels of the first video track, as displayed: after its
    /// `rotation`.
    pub width: Option<u32>,
    /// Height in pixels of the first video track, as displayed.
    pub height: Option<u32>,
    /// Clockwise rotation a player applies to the first video track (90,
    /// 180, 270; phones record portrait video as landscape frames turned
    /// by 90).
    pub rotation: Option<u32>,
    /// Maker of the recording device (QuickTime `©mak` or
    /// `com.apple.quicktime.make`).
    pub make: Option<String>,
    /// Model of the recording device.
    pub model: Option<String>,
    /// When it was recorded: the recorder's own date and offset
    /// (`com.apple.quicktime.creationdate`), else the movie header's
    /// creation time (UTC).
    pub recorded: Option<recorded::Moment>,
    /// Where it was recorded (`©xyz`, `com.apple.quicktime.location.ISO6709`).
    pub place: Option<recorded::Place>,
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

/// [`probe_source`] without its `catch_unwind` guard, so that a panic in
/// our readers (or symphonia's) fails a test or a fuzz target instead of
/// becoming an error.
pub(crate) fn probe_unguarded(source: ReadAtCursor, mime: &str) -> Result<AvInfo, String> {
    let (source, container) = open(source, mime)?;
    read_container(source, container, mime)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
