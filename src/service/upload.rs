//! The `UploadMedia` client stream: a header first, then data, ended by
//! `finish_write` (or by a clean end after a declared size).

use futures_util::StreamExt;
use tonic::{Code, Status, Streaming};

use super::{convert, record_media_id};
use crate::{
    domain::Principal,
    error::{Error, Reason, Result},
    library::{Library, UploadPart},
    pb::v1 as pb,
};

/// Reads the header, then hands the data to the library, which stores it
/// only on a positive end.
pub(super) async fn upload(
    library: &Library,
    principal: &Principal,
    mut stream: Streaming<pb::UploadMediaRequest>,
) -> Result<pb::UploadMediaResponse> {
    let first = stream.message().await.map_err(broken_stream)?.ok_or_else(|| {
        Error::bad(
            Reason::StreamInvalid,
            "header",
            "the upload stream ended before its header; send an UploadMediaRequest with header first",
        )
    })?;
    let Some(header) = first.header else {
        return Err(Error::bad(
            Reason::StreamInvalid,
            "header",
            "the first message carried no header; send the header first, then the data",
        ));
    };
    let spec = convert::upload_spec(principal, header)?;
    let head = UploadPart {
        data: first.data,
        finish: first.finish_write,
    };
    let rest = stream.map(|msg| -> Result<UploadPart> {
        let msg = msg.map_err(broken_stream)?;
        if msg.header.is_some() {
            return Err(Error::bad(
                Reason::StreamInvalid,
                "header",
                "a second header arrived; an upload has exactly one header, in its first message",
            ));
        }
        Ok(UploadPart {
            data: msg.data,
            finish: msg.finish_write,
        })
    });
    let parts = futures_util::stream::once(async { Ok(head) }).chain(rest);
    let outcome = library.upload(spec, Box::pin(parts)).await?;
    record_media_id(&outcome.media.id);
    tracing::info!(
        media_id = %outcome.media.id,
        size = outcome.media.size,
        deduplicated = outcome.deduplicated,
        "upload stored"
    );
    Ok(pb::UploadMediaResponse {
        media: Some(convert::media_out(library, outcome.media)),
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
            reason: Reason::MessageTooLarge,
            subject: "max_message_size".into(),
            message: format!(
                "{}; send smaller pieces of data (1 MiB is recommended)",
                status.message()
            ),
        },
        _ => Error::Cancelled(format!(
            "the upload stream broke before it ended ({}); {kept}",
            status.message()
        )),
    }
}
