//! The `UploadMedia` client stream: a header message, then chunks.

use bytes::Bytes;
use futures_util::StreamExt;
use tonic::{Code, Status, Streaming};

use super::{convert, media::record_media_id};
use crate::{
    domain::TenantId,
    error::{Error, Result},
    library::Library,
    pb::v1::{self as pb, upload_media_request::Data},
};

/// Reads the header, then hands the chunks to the library.
pub(super) async fn upload(
    library: &Library,
    tenant: TenantId,
    mut stream: Streaming<pb::UploadMediaRequest>,
) -> Result<pb::UploadMediaResponse> {
    let first = stream.message().await.map_err(broken_stream)?.ok_or_else(|| {
        Error::invalid(
            "header",
            "the upload stream ended before its header; send an UploadMediaRequest with header first",
        )
    })?;
    let header = match first.data {
        Some(Data::Header(h)) => h,
        Some(Data::Chunk(_)) => {
            return Err(Error::invalid(
                "header",
                "the first message carried a chunk; send the header first, then the chunks",
            ));
        }
        None => {
            return Err(Error::invalid(
                "header",
                "the first message was empty; send the header first",
            ));
        }
    };
    let spec = convert::upload_spec(tenant, header)?;
    let chunks = stream.map(|msg| -> Result<Bytes> {
        match msg.map_err(broken_stream)?.data {
            Some(Data::Chunk(bytes)) => Ok(bytes),
            Some(Data::Header(_)) => Err(Error::invalid(
                "header",
                "a second header arrived; an upload has exactly one header, in its first message",
            )),
            None => Err(Error::invalid(
                "chunk",
                "a message with neither header nor chunk arrived; every message after the header must carry a chunk",
            )),
        }
    });
    let outcome = library.upload(spec, chunks).await?;
    record_media_id(&outcome.media.id);
    tracing::info!(
        media_id = %outcome.media.id,
        size = outcome.media.size,
        deduplicated = outcome.deduplicated,
        "upload stored"
    );
    Ok(pb::UploadMediaResponse {
        media: Some(convert::media_to_pb(outcome.media)),
        deduplicated: outcome.deduplicated,
    })
}

/// Turns a failure of the incoming stream into a domain error.
fn broken_stream(status: Status) -> Error {
    stream_error(status, "nothing was stored")
}

/// Turns a failure of an incoming byte stream into a domain error; `kept`
/// says what became of the bytes received.
pub(super) fn stream_error(status: Status, kept: &str) -> Error {
    match status.code() {
        // tonic refuses a message over the configured maximum.
        Code::OutOfRange | Code::ResourceExhausted => Error::ResourceExhausted {
            subject: "max_message_size".into(),
            message: format!(
                "{}; send smaller chunks (1 MiB is recommended)",
                status.message()
            ),
        },
        _ => Error::Cancelled(format!(
            "the upload stream broke before it ended ({}); {kept}",
            status.message()
        )),
    }
}
