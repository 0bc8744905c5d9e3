//! The `ReadMedia` server stream: metadata first, then the bytes.

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use tonic::Status;

use super::convert::media_out;
use crate::{
    blob::{self, BlobReader},
    error::Error,
    library::{Library, OpenedMedia},
    pb::v1 as pb,
};

/// Streams an opened media: its metadata, then the range's bytes.
pub(super) fn stream(
    library: &Library,
    opened: OpenedMedia,
) -> impl Stream<Item = Result<pb::ReadMediaResponse, Status>> + use<> {
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
        media: Some(media_out(library, media)),
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
/// chunk wrapped by `chunk` (see [`blob::stream::chunks`]). `what` names
/// the content in errors.
pub(super) fn stream_blob<T: Send + 'static>(
    reader: Box<dyn BlobReader>,
    start: u64,
    length: u64,
    what: String,
    first: T,
    chunk: fn(Bytes) -> T,
) -> impl Stream<Item = Result<T, Status>> {
    let rest = blob::stream::chunks(reader, start, length).map(move |data| {
        data.map(chunk)
            .map_err(|e| Error::reading(format!("reading {what}"), e).into())
    });
    futures_util::stream::once(std::future::ready(Ok(first))).chain(rest)
}
