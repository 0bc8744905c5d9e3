//! The `ReadMedia` server stream: metadata first, then the bytes.

use bytes::Bytes;
use futures_util::{Stream, future::Either};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::convert::media_to_pb;
use crate::{blob::BlobReader, error::Error, library::OpenedMedia, pb::v1 as pb};

/// Bytes per response message.
pub const CHUNK_SIZE: usize = 1024 * 1024;
/// Messages read ahead of the network; bounds memory per download.
const READ_AHEAD: usize = 4;

/// Streams an opened media: its metadata, then the range's bytes.
pub(super) fn stream(
    opened: OpenedMedia,
) -> impl Stream<Item = Result<pb::ReadMediaResponse, Status>> {
    let OpenedMedia {
        media,
        start,
        length,
        reader,
    } = opened;
    let what = format!("media {}", media.id);
    let first = pb::ReadMediaResponse {
        content_range: Some(pb::ContentRange {
            start,
            length,
            complete_length: media.size,
        }),
        media: Some(media_to_pb(media)),
        data: Bytes::new(),
    };
    stream_blob(reader, start, length, what, first, |data| {
        pb::ReadMediaResponse {
            media: None,
            content_range: None,
            data,
        }
    })
}

/// Streams `first`, then `length` bytes of `reader` from `start`, each
/// chunk wrapped by `chunk`. A blocking reader thread fills a bounded
/// channel and stops as soon as the client goes away. `what` names the
/// content in errors.
pub(super) fn stream_blob<T: Send + 'static>(
    reader: Box<dyn BlobReader>,
    start: u64,
    length: u64,
    what: String,
    first: T,
    chunk: fn(Bytes) -> T,
) -> impl Stream<Item = Result<T, Status>> {
    let chunks = Chunks {
        reader,
        offset: start,
        end: start + length,
        what,
    };
    // Bytes in memory already (an inline blob) go out as they are, sliced
    // on this task: no reading, no copy, no trip to the blocking pool.
    if chunks.reader.bytes().is_some() {
        let rest = chunks.map(move |r| r.map(chunk).map_err(Status::from));
        return Either::Left(futures_util::stream::iter(
            std::iter::once(Ok(first)).chain(rest),
        ));
    }
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        if tx.blocking_send(Ok(first)).is_err() {
            return;
        }
        for data in chunks {
            let failed = data.is_err();
            if tx
                .blocking_send(data.map(chunk).map_err(Status::from))
                .is_err()
                || failed
            {
                // The client went away, or the read failed.
                return;
            }
        }
    });
    Either::Right(ReceiverStream::new(rx))
}

/// The bytes of `offset..end` of a blob, `CHUNK_SIZE` at a time; ends
/// after the first error. `what` names the content in errors.
struct Chunks {
    reader: Box<dyn BlobReader>,
    offset: u64,
    end: u64,
    what: String,
}

impl Iterator for Chunks {
    type Item = Result<Bytes, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.end {
            return None;
        }
        let want = CHUNK_SIZE.min(usize::try_from(self.end - self.offset).unwrap_or(CHUNK_SIZE));
        match self.reader.read_bytes(self.offset, want) {
            Ok(data) => {
                self.offset += want as u64;
                Some(Ok(data))
            }
            Err(e) => {
                self.offset = self.end;
                Some(Err(Error::reading(format!("reading {}", self.what), e)))
            }
        }
    }
}
