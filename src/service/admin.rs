//! `mediastore.v1.AdminService`: garbage collection and scrubbing.

use std::pin::Pin;

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{jobs, principal_of};
use crate::{
    error::Error,
    jobs::kinds,
    library::{GC_GRACE, GcReport, Library, ScrubReport},
    pb::v1 as pb,
};

/// Progress messages queued for a slow client before some are skipped
/// (the last message is always sent).
const PROGRESS_QUEUE: usize = 16;

/// The service implementation.
#[derive(Debug, Clone)]
pub struct AdminApi {
    library: Library,
}

impl AdminApi {
    /// A service over `library`.
    pub fn new(library: Library) -> Self {
        Self { library }
    }
}

/// The grace period a request's `min_age` asks for.
fn min_age(d: Option<prost_types::Duration>) -> Result<std::time::Duration, Error> {
    match d {
        None => Ok(GC_GRACE),
        Some(d) => std::time::Duration::try_from(d)
            .map_err(|_| Error::invalid("min_age", "min_age must be a non-negative duration")),
    }
}

/// The gRPC form of a garbage collection's report.
pub fn gc_to_pb(r: &GcReport) -> pb::CollectGarbageResponse {
    pb::CollectGarbageResponse {
        blobs_removed: r.blobs,
        blob_bytes_removed: r.blob_bytes,
        staged_files_removed: r.staged,
        upload_files_removed: r.upload_files,
    }
}

/// The gRPC form of a scrub's report.
pub fn scrub_to_pb(r: &ScrubReport, done: bool) -> pb::ScrubResponse {
    pb::ScrubResponse {
        blobs_checked: r.checked,
        bytes_checked: r.bytes,
        missing_blake3: r.missing.iter().map(|h| h.to_string()).collect(),
        corrupt_blake3: r.corrupt.iter().map(|h| h.to_string()).collect(),
        done,
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    async fn collect_garbage(
        &self,
        request: Request<pb::CollectGarbageRequest>,
    ) -> Result<Response<pb::CollectGarbageResponse>, Status> {
        let grace = min_age(request.into_inner().min_age)?;
        let report = self.library.collect_garbage(grace).await?;
        Ok(Response::new(gc_to_pb(&report)))
    }

    type ScrubStream = Pin<Box<dyn Stream<Item = Result<pb::ScrubResponse, Status>> + Send>>;

    async fn scrub(
        &self,
        _request: Request<pb::ScrubRequest>,
    ) -> Result<Response<Self::ScrubStream>, Status> {
        let (tx, rx) = mpsc::channel(PROGRESS_QUEUE);
        let library = self.library.clone();
        // The scrub runs to the end even if the client goes away: its
        // quarantines are worth finishing.
        tokio::spawn(async move {
            let progress = tx.clone();
            let result = library
                .scrub(|r| {
                    let _ = progress.try_send(Ok(scrub_to_pb(r, false)));
                    Ok(())
                })
                .await;
            let last = result.map(|r| scrub_to_pb(&r, true)).map_err(Status::from);
            let _ = tx.send(last).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn start_collect_garbage(
        &self,
        request: Request<pb::StartCollectGarbageRequest>,
    ) -> Result<Response<pb::StartCollectGarbageResponse>, Status> {
        let principal = principal_of(&request)?.clone();
        let req = request.into_inner();
        let grace = min_age(req.min_age)?;
        let job = jobs::start(
            &self.library,
            &principal,
            kinds::COLLECT_GARBAGE,
            &serde_json::json!({ "min_age_secs": grace.as_secs() }),
            req.options,
            Some(kinds::COLLECT_GARBAGE),
        )
        .await?;
        Ok(Response::new(pb::StartCollectGarbageResponse {
            job: Some(job),
        }))
    }

    async fn start_scrub(
        &self,
        request: Request<pb::StartScrubRequest>,
    ) -> Result<Response<pb::StartScrubResponse>, Status> {
        let principal = principal_of(&request)?.clone();
        let job = jobs::start(
            &self.library,
            &principal,
            kinds::SCRUB,
            &serde_json::json!({}),
            request.into_inner().options,
            Some(kinds::SCRUB),
        )
        .await?;
        Ok(Response::new(pb::StartScrubResponse { job: Some(job) }))
    }
}
