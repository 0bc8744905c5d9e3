//! Content analysis: what the bytes are ([`sniff`]) and what they tell:
//! [`image`] (dimensions, EXIF, GPS, density; [`svg`] and [`heif`] for
//! their formats), [`av`] (duration, frame
//! rate, codecs, sound, tags of video and audio) and [`pdf`] (pages).
//!
//! Pure functions over a reader: no database, no gRPC. They run on the
//! blocking pool, reading the staged bytes of an upload before it is
//! committed, so a media is stored with its analysis in one row. A file
//! that cannot be parsed is still stored: the reason goes into
//! `Analysis::error` and the fields stay empty.

pub mod av;
mod cursor;
pub mod heif;
pub mod image;
pub mod pdf;
pub mod sniff;
pub mod svg;

use std::{
    io::{self, BufReader, Read, Seek, SeekFrom},
    sync::Arc,
};

use crate::domain::{Analysis, MediaType};

pub use self::sniff::Sniffed;

/// Bytes read per system call while parsing.
const READ_BUFFER: usize = 64 * 1024;

/// A positional read: fills the buffer from the offset, returns how much.
type ReadAt = Arc<dyn Fn(&mut [u8], u64) -> io::Result<usize> + Send + Sync>;

/// Anything readable at an offset (a staged upload, a stored blob, a
/// file), seen as a `Read + Seek` stream for parsers. Clones read the same
/// bytes with their own position; owned, so parsers that want a
/// `'static` source (symphonia) can have one.
#[derive(Clone)]
pub struct ReadAtCursor {
    read_at: ReadAt,
    len: u64,
    pos: u64,
}

impl std::fmt::Debug for ReadAtCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAtCursor")
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish()
    }
}

impl ReadAtCursor {
    /// A cursor at the start of `len` bytes read through `read_at`.
    pub fn new(
        len: u64,
        read_at: impl Fn(&mut [u8], u64) -> io::Result<usize> + Send + Sync + 'static,
    ) -> Self {
        Self {
            read_at: Arc::new(read_at),
            len,
            pos: 0,
        }
    }

    /// A cursor over bytes in memory.
    pub fn bytes(data: impl Into<Vec<u8>>) -> Self {
        let data: Vec<u8> = data.into();
        Self::new(data.len() as u64, move |buf, at| {
            let at = usize::try_from(at).unwrap_or(usize::MAX).min(data.len());
            let n = buf.len().min(data.len() - at);
            buf[..n].copy_from_slice(&data[at..at + n]);
            Ok(n)
        })
    }

    /// A cursor over a whole file.
    pub fn file(file: std::fs::File) -> io::Result<Self> {
        use std::os::unix::fs::FileExt;
        let len = file.metadata()?.len();
        Ok(Self::new(len, move |buf, at| file.read_at(buf, at)))
    }

    /// Bytes in all.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for ReadAtCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let room = usize::try_from(self.len - self.pos).unwrap_or(usize::MAX);
        let n = buf.len().min(room);
        let n = (self.read_at)(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ReadAtCursor {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// Analyses content sniffed as `sniffed`, read through `source`.
pub fn analyze(source: ReadAtCursor, sniffed: &Sniffed) -> Analysis {
    let mut a = Analysis::default();
    let result = match sniffed.kind {
        MediaType::Image => {
            let mut r = BufReader::with_capacity(READ_BUFFER, source);
            image::analyze(&mut r, &sniffed.mime, &mut a)
        }
        MediaType::Video | MediaType::Audio => {
            av::probe_source(source, &sniffed.mime).map(|info| {
                a.duration_ms = info.duration_ms;
                a.fps = info.fps;
                a.video_codec = info.video_codec;
                a.audio_codec = info.audio_codec;
                a.width = info.width.and_then(|w| i32::try_from(w).ok());
                a.height = info.height.and_then(|h| i32::try_from(h).ok());
                a.facts.rotation = info.rotation;
                // Recorded like a photo: camera, date taken, place.
                a.facts.camera_make = info.make;
                a.facts.camera_model = info.model;
                if let Some(when) = info.recorded {
                    a.taken_at = Some(when.micros);
                    a.taken_year = Some(when.year);
                    a.taken_month = Some(when.month);
                    a.facts.taken_offset = when.offset;
                }
                if let Some(place) = info.place {
                    a.latitude = Some(place.latitude);
                    a.longitude = Some(place.longitude);
                    a.altitude = place.altitude;
                }
                a.facts.sample_rate = info.sample_rate;
                a.facts.channels = info.channels;
                a.facts.bitrate = info.bitrate;
                a.facts.tags = info.tags;
            })
        }
        MediaType::Document if sniffed.mime == "application/pdf" => pdf::page_count_source(source)
            .map(|c| {
                a.facts.page_count = Some(c.pages);
                a.facts.warnings.extend(c.warning());
            }),
        _ => Ok(()),
    };
    if let Err(e) = result {
        a.error = Some(e);
    }
    a
}

/// Whether [`analyze`] has anything to learn from content of this kind;
/// uploads of other content skip the blocking-pool round trip.
pub fn worth_analyzing(sniffed: &Sniffed) -> bool {
    matches!(
        sniffed.kind,
        MediaType::Image | MediaType::Video | MediaType::Audio
    ) || sniffed.mime == "application/pdf"
}

/// A committed test file (see `tests/fixtures/README.md`).
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
