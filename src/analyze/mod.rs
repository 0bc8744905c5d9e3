//! Content analysis: what the bytes are ([`sniff`]) and what they tell
//! ([`image`]: dimensions, EXIF, GPS, density).
//!
//! Pure functions over a reader: no database, no gRPC. They run on the
//! blocking pool, reading the staged bytes of an upload before it is
//! committed, so a media is stored with its analysis in one row. A file
//! that cannot be parsed is still stored: the reason goes into
//! `Analysis::error` and the fields stay empty.

pub mod image;
pub mod sniff;

use std::io::{self, BufReader, Read, Seek, SeekFrom};

use crate::domain::{Analysis, MediaType};

pub use self::sniff::Sniffed;

/// Bytes read per system call while parsing.
const READ_BUFFER: usize = 64 * 1024;

/// A positional read: fills the buffer from the offset, returns how much.
type ReadAt<'a> = Box<dyn Fn(&mut [u8], u64) -> io::Result<usize> + 'a>;

/// Anything readable at an offset (a staged upload, a stored blob), seen
/// as a `Read + Seek` stream for parsers.
pub struct ReadAtCursor<'a> {
    read_at: ReadAt<'a>,
    len: u64,
    pos: u64,
}

impl std::fmt::Debug for ReadAtCursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAtCursor")
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish()
    }
}

impl<'a> ReadAtCursor<'a> {
    /// A cursor at the start of `len` bytes read through `read_at`.
    pub fn new(len: u64, read_at: impl Fn(&mut [u8], u64) -> io::Result<usize> + 'a) -> Self {
        Self {
            read_at: Box::new(read_at),
            len,
            pos: 0,
        }
    }
}

impl Read for ReadAtCursor<'_> {
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

impl Seek for ReadAtCursor<'_> {
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
pub fn analyze(source: ReadAtCursor<'_>, sniffed: &Sniffed) -> Analysis {
    let mut a = Analysis::default();
    let mut r = BufReader::with_capacity(READ_BUFFER, source);
    let result = match sniffed.kind {
        MediaType::Image => image::analyze(&mut r, &sniffed.mime, &mut a),
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
    matches!(sniffed.kind, MediaType::Image)
}
