//! A blob's bytes as a stream of chunks, for the edges that send them
//! (gRPC's `ReadMedia` and `GetRendition`, HTTP bodies): memory stays
//! bounded by a few chunks whatever the size, and reading stops as soon
//! as the receiver goes away.

use std::io;

use bytes::Bytes;
use futures_util::{Stream, future::Either};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::BlobReader;

/// Bytes per chunk.
pub const CHUNK_SIZE: usize = 1024 * 1024;
/// Chunks read ahead of the receiver; bounds memory per stream.
const READ_AHEAD: usize = 4;

/// `length` bytes of `reader` from `start`, [`CHUNK_SIZE`] at a time;
/// ends after the first error. Bytes already in memory (an inline blob)
/// are sliced on the caller's task, without a copy or a trip to the
/// blocking pool; a file is read by a blocking thread into a bounded
/// channel.
pub fn chunks(
    reader: Box<dyn BlobReader>,
    start: u64,
    length: u64,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let chunks = Chunks {
        reader,
        offset: start,
        end: start + length,
    };
    if chunks.reader.bytes().is_some() {
        return Either::Left(futures_util::stream::iter(chunks));
    }
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        for data in chunks {
            // Stop when the receiver went away.
            if tx.blocking_send(data).is_err() {
                return;
            }
        }
    });
    Either::Right(ReceiverStream::new(rx))
}

/// The bytes of `offset..end` of a blob, `CHUNK_SIZE` at a time; ends
/// after the first error.
struct Chunks {
    reader: Box<dyn BlobReader>,
    offset: u64,
    end: u64,
}

impl Iterator for Chunks {
    type Item = io::Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.end {
            return None;
        }
        let want = CHUNK_SIZE.min(usize::try_from(self.end - self.offset).unwrap_or(CHUNK_SIZE));
        let read = self.reader.read_bytes(self.offset, want);
        self.offset = if read.is_ok() {
            self.offset + want as u64
        } else {
            self.end
        };
        Some(read)
    }
}
