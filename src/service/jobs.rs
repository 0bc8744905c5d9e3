//! `mediastore.v1.JobService`, and the conversions of jobs that the calls
//! starting jobs (`ReanalyzeMedia`, `StartCollectGarbage`, `StartScrub`)
//! share with it.

use std::pin::Pin;

use futures_util::Stream;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{
    convert::{self, timestamp},
    page_token, principal_of,
    query::{self, JOB_FIELDS},
    tenant_of,
};
use crate::{
    domain::{
        Job, JobFilter, JobId, JobOptions, JobQuery, JobSortField, JobStatus, NewJob, Principal,
        Range64, TimeRange, parse_kind,
    },
    error::{Error, Result},
    jobs::kinds,
    library::{Library, WATCH_POLL},
    pb::v1 as pb,
};

/// Jobs a `job_ids` filter may name.
const MAX_FILTER_IDS: usize = 1000;
/// Changes queued for a slow watcher before it misses some (it always
/// gets the last).
const WATCH_QUEUE: usize = 16;

/// The service implementation.
#[derive(Debug, Clone)]
pub struct JobApi {
    library: Library,
}

impl JobApi {
    /// A service over `library`.
    pub fn new(library: Library) -> Self {
        Self { library }
    }
}

/// A job as the API shows it.
pub fn job_to_pb(j: Job) -> pb::Job {
    let json_struct = |v: &serde_json::Value| match v {
        serde_json::Value::Object(map) => Some(convert::json_to_struct(map)),
        _ => None,
    };
    pb::Job {
        id: j.id.to_string(),
        kind: j.kind,
        status: status_to_pb(j.status) as i32,
        priority: j.priority,
        progress: u32::from(j.progress),
        progress_message: j.progress_message,
        attempts: j.attempts,
        max_attempts: j.max_attempts,
        last_error: j.last_error.unwrap_or_default(),
        unique_key: j.unique_key.unwrap_or_default(),
        payload: json_struct(&j.payload),
        result: j.result.as_ref().and_then(json_struct),
        scheduled_at: Some(timestamp(j.scheduled_at)),
        started_at: j.started_at.map(timestamp),
        finished_at: j.finished_at.map(timestamp),
        created_at: Some(timestamp(j.created_at)),
        updated_at: Some(timestamp(j.updated_at)),
        worker: j.lease_owner.unwrap_or_default(),
        lease_expires_at: j
            .lease_until
            .filter(|_| !j.status.is_final())
            .map(timestamp),
        cancel_requested: j.cancel_requested,
        created_by: j.created_by,
    }
}

fn status_to_pb(s: JobStatus) -> pb::JobStatus {
    match s {
        JobStatus::Queued => pb::JobStatus::Queued,
        JobStatus::Running => pb::JobStatus::Running,
        JobStatus::Succeeded => pb::JobStatus::Succeeded,
        JobStatus::Failed => pb::JobStatus::Failed,
        JobStatus::Cancelled => pb::JobStatus::Cancelled,
    }
}

fn status_from_pb(field: &str, v: i32) -> Result<JobStatus> {
    match pb::JobStatus::try_from(v) {
        Ok(pb::JobStatus::Queued) => Ok(JobStatus::Queued),
        Ok(pb::JobStatus::Running) => Ok(JobStatus::Running),
        Ok(pb::JobStatus::Succeeded) => Ok(JobStatus::Succeeded),
        Ok(pb::JobStatus::Failed) => Ok(JobStatus::Failed),
        Ok(pb::JobStatus::Cancelled) => Ok(JobStatus::Cancelled),
        Ok(pb::JobStatus::Unspecified) | Err(_) => Err(Error::invalid(
            field,
            format!("{v} is not a job status; use JOB_STATUS_QUEUED to JOB_STATUS_CANCELLED"),
        )),
    }
}

/// Queues a job of `kind` for the caller with `payload` and the options
/// it sent (as `options`; `default_key` when it set no unique key), and
/// answers with it: what every call that starts a job does.
pub async fn start(
    library: &Library,
    principal: &Principal,
    kind: &str,
    payload: &impl serde::Serialize,
    options: Option<pb::JobOptions>,
    default_key: Option<&str>,
) -> Result<pb::Job> {
    let o = options.unwrap_or_default();
    let options = JobOptions {
        priority: o.priority,
        max_attempts: o.max_attempts,
        unique_key: (!o.unique_key.is_empty())
            .then_some(o.unique_key)
            .or(default_key.map(str::to_string)),
        scheduled_at: o
            .scheduled_at
            .as_ref()
            .map(|t| query::micros("options.scheduled_at", t))
            .transpose()?,
    };
    options.validate("options")?;
    let payload = serde_json::to_value(payload)
        .map_err(|e| Error::io("encoding a job", std::io::Error::other(e)))?;
    let mut job = NewJob::new(principal.tenant, kind, payload, &principal.name);
    options.apply(&mut job);
    Ok(job_to_pb(library.enqueue_job(job).await?))
}

/// The job id a client sent in `field`.
fn job_id(field: &str, s: &str) -> Result<JobId> {
    JobId::parse(field, s)
}

/// An inclusive range from a half-open one.
fn inclusive(r: TimeRange) -> Range64 {
    Range64 {
        min: r.start,
        max: r.end.map(|e| e.saturating_sub(1)),
    }
}

fn job_filter(f: pb::JobFilter) -> Result<JobFilter> {
    if f.job_ids.len() > MAX_FILTER_IDS {
        return Err(Error::invalid(
            "filter.job_ids",
            format!("at most {MAX_FILTER_IDS} ids, not {}", f.job_ids.len()),
        ));
    }
    let known = kinds::known_kinds();
    let filter = JobFilter {
        ids: f
            .job_ids
            .iter()
            .enumerate()
            .map(|(i, s)| job_id(&format!("filter.job_ids[{i}]"), s))
            .collect::<Result<_>>()?,
        kinds: f
            .kinds
            .iter()
            .enumerate()
            .map(|(i, s)| parse_kind(&format!("filter.kinds[{i}]"), s, &known))
            .collect::<Result<_>>()?,
        statuses: f
            .statuses
            .iter()
            .enumerate()
            .map(|(i, s)| status_from_pb(&format!("filter.statuses[{i}]"), *s))
            .collect::<Result<_>>()?,
        priority: Range64 {
            min: f.min_priority.map(i64::from),
            max: f.max_priority.map(i64::from),
        },
        attempts: Range64 {
            min: f.min_attempts.map(i64::from),
            max: f.max_attempts.map(i64::from),
        },
        scheduled_at: inclusive(query::time_range("filter.scheduled", f.scheduled.as_ref())?),
        created_at: inclusive(query::time_range("filter.created", f.created.as_ref())?),
        updated_at: inclusive(query::time_range("filter.updated", f.updated.as_ref())?),
        unique_key: (!f.unique_key.is_empty()).then_some(f.unique_key),
    };
    filter.priority.validate("filter.min_priority")?;
    filter.attempts.validate("filter.min_attempts")?;
    Ok(filter)
}

fn sort_field(field: &str, v: i32) -> Result<JobSortField> {
    match pb::JobOrderBy::try_from(v) {
        Ok(pb::JobOrderBy::Unspecified | pb::JobOrderBy::CreateTime) => Ok(JobSortField::CreatedAt),
        Ok(pb::JobOrderBy::UpdateTime) => Ok(JobSortField::UpdatedAt),
        Ok(pb::JobOrderBy::ScheduleTime) => Ok(JobSortField::ScheduledAt),
        Ok(pb::JobOrderBy::Priority) => Ok(JobSortField::Priority),
        Err(_) => Err(Error::invalid(field, format!("{v} is not a job order"))),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchJobResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::job_service_server::JobService for JobApi {
    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::GetJobResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = job_id("job_id", &request.get_ref().job_id)?;
        let job = self.library.job(tenant, id).await?;
        Ok(Response::new(pb::GetJobResponse {
            job: Some(job_to_pb(job)),
        }))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let req = request.into_inner();
        let page_size = query::page_size("page_size", req.page_size)?;
        let keep = query::mask_paths("read_mask", req.read_mask.as_ref(), JOB_FIELDS)?;
        let filter = job_filter(req.filter.unwrap_or_default())?;
        let sort = sort_field("order_by", req.order_by)?;
        let descending = !req.ascending;
        let fingerprint = page_token::fingerprint(&format!("{filter:?} {sort:?} {descending}"));
        let after = page_token::decode_job("page_token", &req.page_token, fingerprint)?
            .map(|(value, id)| (value, JobId(id)));
        let q = JobQuery {
            filter,
            sort,
            descending,
            // One extra row tells whether another page exists.
            limit: page_size + 1,
            after,
        };
        let (mut items, total) = self
            .library
            .list_jobs(tenant, &q, req.include_total_size)
            .await?;
        let next_page_token = page_token::next_page(&mut items, page_size, |j| {
            page_token::encode_job(fingerprint, j.sort_value(sort), j.id.0)
        });
        let jobs = items
            .into_iter()
            .map(|j| {
                let mut j = job_to_pb(j);
                if !keep.is_empty() {
                    query::apply_job_read_mask(&mut j, &keep);
                }
                j
            })
            .collect();
        Ok(Response::new(pb::ListJobsResponse {
            jobs,
            next_page_token,
            total_size: total.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
        }))
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::CancelJobResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = job_id("job_id", &request.get_ref().job_id)?;
        let job = self.library.cancel_job(tenant, id).await?;
        Ok(Response::new(pb::CancelJobResponse {
            job: Some(job_to_pb(job)),
        }))
    }

    async fn retry_job(
        &self,
        request: Request<pb::RetryJobRequest>,
    ) -> Result<Response<pb::RetryJobResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = job_id("job_id", &request.get_ref().job_id)?;
        let job = self.library.retry_job(tenant, id).await?;
        Ok(Response::new(pb::RetryJobResponse {
            job: Some(job_to_pb(job)),
        }))
    }

    async fn delete_job(
        &self,
        request: Request<pb::DeleteJobRequest>,
    ) -> Result<Response<pb::DeleteJobResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = job_id("job_id", &request.get_ref().job_id)?;
        self.library.delete_job(tenant, id).await?;
        Ok(Response::new(pb::DeleteJobResponse {}))
    }

    type WatchJobStream = WatchStream;

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let principal = principal_of(&request)?;
        let tenant = principal.tenant;
        let id = job_id("job_id", &request.get_ref().job_id)?;
        // Subscribed before the first read, so no change falls between.
        let mut events = self.library.job_events();
        let first = self.library.job(tenant, id).await?;
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        let library = self.library.clone();
        tokio::spawn(async move {
            let mut last = first;
            if tx
                .send(Ok(pb::WatchJobResponse {
                    job: Some(job_to_pb(last.clone())),
                }))
                .await
                .is_err()
            {
                return;
            }
            while !last.status.is_final() && !tx.is_closed() {
                // Woken by a change here, or after a poll interval for
                // changes elsewhere.
                let woke = tokio::time::timeout(WATCH_POLL, async {
                    loop {
                        match events.recv().await {
                            Ok(changed) if changed == id => return true,
                            Ok(_) => continue,
                            Err(RecvError::Lagged(_)) => return true,
                            Err(RecvError::Closed) => return false,
                        }
                    }
                })
                .await;
                if woke == Ok(false) {
                    // The library is gone: the server is stopping.
                    let _ = tx
                        .send(Err(
                            Error::shutting_down("the server is shutting down").into()
                        ))
                        .await;
                    return;
                }
                let now = match library.job(tenant, id).await {
                    Ok(j) => j,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                if now == last {
                    continue;
                }
                last = now;
                if tx
                    .send(Ok(pb::WatchJobResponse {
                        job: Some(job_to_pb(last.clone())),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
