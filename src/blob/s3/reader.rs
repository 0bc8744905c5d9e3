//! Reading a stored object: ranged GETs, with read-ahead for sequential
//! reads.
//!
//! A download asks for 1 MiB at a time, one after the other; a GET per
//! chunk would wait for the store's latency every MiB. Once a read starts
//! where the previous one ended, the reader keeps `AHEAD` windows of
//! `WINDOW` bytes in flight past it, so the next chunks are already here
//! (at most `AHEAD * WINDOW` bytes held per open download). Any other read
//! is one GET of what it asks, and drops the read-ahead.

use std::{
    collections::VecDeque,
    io,
    sync::{Arc, Mutex},
};

use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

use super::Shared;
use crate::blob::BlobReader;

/// Bytes of one read-ahead GET.
const WINDOW: usize = 4 * 1024 * 1024;
/// Read-ahead GETs in flight.
const AHEAD: usize = 4;

/// One stored blob.
#[derive(Debug)]
pub(super) struct S3Reader {
    shared: Arc<Shared>,
    key: Arc<str>,
    len: u64,
    ahead: Mutex<Ahead>,
}

/// The read-ahead state.
#[derive(Debug, Default)]
struct Ahead {
    /// Where the last read ended.
    last_end: Option<u64>,
    /// Windows fetched or being fetched, in order: start and bytes.
    windows: VecDeque<(u64, Window)>,
    /// Where the next window to schedule starts.
    next: u64,
}

#[derive(Debug)]
enum Window {
    Pending(JoinHandle<io::Result<Bytes>>),
    Ready(Bytes),
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Ahead {
    /// Drops every window, cancelling their GETs.
    fn stop(&mut self) {
        for (_, w) in self.windows.drain(..) {
            if let Window::Pending(h) = w {
                h.abort();
            }
        }
    }
}

impl S3Reader {
    pub(super) fn new(shared: Arc<Shared>, key: String, len: u64) -> Self {
        Self {
            shared,
            key: key.into(),
            len,
            ahead: Mutex::new(Ahead::default()),
        }
    }

    fn get(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let s = &self.shared;
        s.block(s.get_range(&self.key, offset, len))
    }

    /// `len` bytes at `offset`, within the blob; fewer is
    /// `UnexpectedEof`.
    fn read(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let bytes = self.read_ahead(offset, len)?;
        if bytes.len() != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} gave {} bytes at {offset}, not {len}",
                    self.key,
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    /// What the store gives of `len` bytes at `offset`: from the
    /// read-ahead for a sequential read, else by a GET of its own.
    fn read_ahead(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        let sequential = ahead.last_end == Some(offset);
        ahead.last_end = Some(offset + len as u64);
        if !sequential {
            ahead.stop();
            ahead.next = offset + len as u64;
            drop(ahead);
            return self.get(offset, len);
        }
        let mut out = BytesMut::new();
        let mut at = offset;
        let end = offset + len as u64;
        while at < end {
            // Windows that end before `at` are spent.
            while let Some((start, w)) = ahead.windows.front() {
                let wlen = match w {
                    Window::Ready(b) => b.len() as u64,
                    Window::Pending(_) => WINDOW as u64,
                };
                if start + wlen <= at {
                    if let Some((_, Window::Pending(h))) = ahead.windows.pop_front() {
                        h.abort();
                    }
                } else {
                    break;
                }
            }
            if ahead.windows.front().is_none_or(|(start, _)| *start > at) {
                ahead.stop();
                ahead.next = at;
            }
            self.schedule(&mut ahead);
            let Some((start, window)) = ahead.windows.front_mut() else {
                break;
            };
            let start = *start;
            if let Window::Pending(h) = window {
                let fetched = self
                    .shared
                    .block(h)
                    .map_err(io::Error::other)
                    .and_then(|r| r);
                match fetched {
                    Ok(b) => *window = Window::Ready(b),
                    Err(e) => {
                        ahead.stop();
                        ahead.last_end = None;
                        return Err(e);
                    }
                }
            }
            let Window::Ready(bytes) = window else {
                break;
            };
            let from = usize::try_from(at - start).unwrap_or(usize::MAX);
            let to = usize::try_from(end - start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            if from >= to {
                break;
            }
            if out.is_empty() && at == offset && to - from == len {
                // The whole read in one window: no copy.
                return Ok(bytes.slice(from..to));
            }
            out.extend_from_slice(&bytes[from..to]);
            at = start + to as u64;
        }
        // Short reads are refused by `read`, the only caller.
        Ok(out.freeze())
    }

    /// Keeps `AHEAD` windows in flight.
    fn schedule(&self, ahead: &mut Ahead) {
        while ahead.windows.len() < AHEAD && ahead.next < self.len {
            let start = ahead.next;
            let n = usize::try_from(self.len - start)
                .unwrap_or(WINDOW)
                .min(WINDOW);
            let shared = Arc::clone(&self.shared);
            let key = Arc::clone(&self.key);
            let task = self
                .shared
                .rt
                .spawn(async move { shared.get_range(&key, start, n).await });
            ahead.windows.push_back((start, Window::Pending(task)));
            ahead.next = start + n as u64;
        }
    }
}

impl BlobReader for S3Reader {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = usize::try_from(self.len - offset)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let bytes = self.read(offset, n)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        Ok(bytes.len())
    }

    fn read_bytes(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        super::super::range_in(offset, len, usize::try_from(self.len).unwrap_or(usize::MAX))?;
        self.read(offset, len)
    }
}
