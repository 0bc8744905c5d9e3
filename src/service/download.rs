//! The `ReadMedia` server stream: metadata first, then the bytes.

use bytes::Bytes;
use futures_util::{Stream, future::Either};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::convert::media_to_pb;
use crate::{
    blob::BlobReader,
    error::{Error, Reason},
    library::OpenedMedia,
    pb::v1 as pb,
};

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
    // Bytes in memory already (an inline blob) go out as they are: no
    // reading, no copy, no trip to the blocking pool.
    if let Some(all) = reader.bytes() {
        let messages = match crate::blob::range_in(start, length as usize, all.len()) {
            Ok(range) => {
                let mut messages = vec![Ok(first)];
                let mut at = range.start;
                while at < range.end {
                    let next = (at + CHUNK_SIZE).min(range.end);
                    messages.push(Ok(chunk(all.slice(at..next))));
                    at = next;
                }
                messages
            }
            Err(e) => vec![Err(Error::data_loss(
                Reason::BlobTruncated,
                format!("the stored content of {what} is shorter than recorded: {e}"),
            )
            .into())],
        };
        return Either::Left(futures_util::stream::iter(messages));
    }
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        if tx.blocking_send(Ok(first)).is_err() {
            return;
        }
        let end = start + length;
        let mut offset = start;
        while offset < end {
            let want = CHUNK_SIZE.min((end - offset) as usize);
            let data = match reader.read_bytes(offset, want) {
                Ok(data) => data,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    let err = Error::data_loss(
                        Reason::BlobTruncated,
                        format!("the stored content of {what} ended early: {e}"),
                    );
                    let _ = tx.blocking_send(Err(err.into()));
                    return;
                }
                Err(e) => {
                    let err = Error::io(format!("reading {what}"), e);
                    let _ = tx.blocking_send(Err(err.into()));
                    return;
                }
            };
            offset += want as u64;
            if tx.blocking_send(Ok(chunk(data))).is_err() {
                // The client went away.
                return;
            }
        }
    });
    Either::Right(ReceiverStream::new(rx))
}
