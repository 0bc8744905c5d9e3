//! The job queue: order, unicity, retries with backoff, leases that
//! survive a killed server, cancellation, watching, listing with every
//! filter, two server processes sharing one queue, and the jobs the API
//! starts (reanalysis, garbage collection, scrubs).

use std::{collections::HashSet, time::Duration};

use mediastore::{
    domain::{JobId, JobStatus, NewJob, TenantId, now_micros},
    jobs::{Registry, WorkerSettings, Workers, kinds},
    pb::v1::{self as pb, job_service_client::JobServiceClient},
    repo::Repo,
};
use serde_json::json;
use tonic::Code;

use crate::common::*;

type Jobs = JobServiceClient<Channel>;

async fn jobs_client(s: &TestServer) -> Jobs {
    JobServiceClient::new(channel(s.addr).await)
}

/// A probe job for the default tenant.
pub(super) fn probe(payload: serde_json::Value) -> NewJob {
    NewJob::new(TenantId::DEFAULT, kinds::PROBE, payload, "test")
}

/// Settings for a pool started by a test: quick retries and leases.
fn quick(workers: usize) -> WorkerSettings {
    WorkerSettings {
        workers,
        lease: Duration::from_secs(3),
        poll: Duration::from_millis(50),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
        ..WorkerSettings::default()
    }
}

/// A server whose own pool runs nothing: the test starts workers when it
/// has queued what it wants.
async fn idle_server() -> TestServer {
    TestServer::spawn_with(|c| c.job_workers = 0).await
}

/// A server whose pool retries quickly.
async fn busy_server() -> TestServer {
    TestServer::spawn_with(|c| {
        c.job_workers = 4;
        c.job_poll_ms = 50;
        c.job_retry_base_ms = 50;
        c.job_retry_max_secs = 1;
    })
    .await
}

async fn get(jobs: &mut Jobs, id: &str) -> pb::Job {
    jobs.get_job(pb::GetJobRequest {
        job_id: id.to_string(),
    })
    .await
    .unwrap()
    .into_inner()
    .job
    .unwrap()
}

/// Watches a job to its end; every message seen.
async fn watch_to_end(jobs: &mut Jobs, id: &str) -> Vec<pb::Job> {
    let mut stream = jobs
        .watch_job(pb::WatchJobRequest {
            job_id: id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while let Some(msg) = tokio::time::timeout_at(deadline, stream.message())
        .await
        .expect("the job ends in time")
        .unwrap()
    {
        seen.push(msg.job.unwrap());
    }
    seen
}

fn status(j: &pb::Job) -> pb::JobStatus {
    pb::JobStatus::try_from(j.status).unwrap()
}

fn json_field(s: &Option<prost_types::Struct>, name: &str) -> Option<prost_types::value::Kind> {
    s.as_ref()?.fields.get(name)?.kind.clone()
}

fn number(s: &Option<prost_types::Struct>, name: &str) -> f64 {
    match json_field(s, name) {
        Some(prost_types::value::Kind::NumberValue(n)) => n,
        other => panic!("{name} is {other:?}"),
    }
}

/// Waits until every job of `ids` ended, reading the repository.
pub(super) async fn all_ended(repo: &Repo, ids: &[JobId]) -> Vec<mediastore::domain::Job> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut jobs = Vec::new();
        for id in ids {
            jobs.push(repo.get_job(TenantId::DEFAULT, *id).await.unwrap());
        }
        if jobs.iter().all(|j| j.status.is_final()) {
            return jobs;
        }
        assert!(tokio::time::Instant::now() < deadline, "jobs still active");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn due_jobs_run_by_priority_then_scheduled_ones_in_time_order() {
    let s = idle_server().await;
    let now = now_micros();
    let mut batch = Vec::new();
    for (priority, delay_ms) in [(0, 0), (10, 0), (-5, 0), (5, 0), (100, 600), (100, 300)] {
        let mut j = probe(json!({}));
        j.priority = priority;
        j.scheduled_at = now + delay_ms * 1000;
        batch.push(j);
    }
    let made = s.library.enqueue_jobs(&batch).await.unwrap();
    let ids: Vec<JobId> = made.iter().map(|j| j.id).collect();
    // One worker: one claim at a time, so start times follow claim order.
    let pool = Workers::start(s.library.clone(), Registry::default(), quick(1));
    let ended = all_ended(s.library.repo(), &ids).await;
    pool.stop(Duration::from_secs(5)).await;
    let mut by_start: Vec<&mediastore::domain::Job> = ended.iter().collect();
    by_start.sort_by_key(|j| j.started_at.unwrap());
    let order: Vec<i32> = by_start.iter().map(|j| j.priority).collect();
    // Due now: 10, 5, 0, -5; then the scheduled ones when due, whatever
    // their priority: the one due at +300 ms before the one at +600 ms.
    assert_eq!(order, vec![10, 5, 0, -5, 100, 100]);
    assert!(by_start[4].scheduled_at < by_start[5].scheduled_at);
    for j in &ended {
        assert_eq!(j.status, JobStatus::Succeeded, "{j:?}");
        assert!(
            j.started_at.unwrap() >= j.scheduled_at,
            "ran before due: {j:?}"
        );
        assert_eq!(j.attempts, 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_job_with_an_active_unique_key_is_already_exists_naming_the_first() {
    let s = idle_server().await;
    let mut media = s.client.clone();
    let ask = |key: &str| pb::ReanalyzeMediaRequest {
        options: Some(pb::JobOptions {
            unique_key: key.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let first = media
        .reanalyze_media(ask("nightly"))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(first.unique_key, "nightly");
    assert_eq!(status(&first), pb::JobStatus::Queued);
    let err = media.reanalyze_media(ask("nightly")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert_eq!(reason(&err), "JOB_ALREADY_EXISTS");
    assert!(err.message().contains(&first.id), "{}", err.message());
    {
        use tonic_types::StatusExt;
        let info = err.get_details_resource_info().unwrap();
        assert_eq!(info.resource_name, first.id);
    }
    // Another key is another job; so is no key.
    media.reanalyze_media(ask("other")).await.unwrap();
    media.reanalyze_media(ask("")).await.unwrap();
    // Once the holder ended, the key is free again.
    let mut jobs = jobs_client(&s).await;
    jobs.cancel_job(pb::CancelJobRequest {
        job_id: first.id.clone(),
    })
    .await
    .unwrap();
    let again = media
        .reanalyze_media(ask("nightly"))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_ne!(again.id, first.id);
    // Retrying the cancelled first one would make two active holders.
    let err = jobs
        .retry_job(pb::RetryJobRequest {
            job_id: first.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains(&again.id));
    // Maintenance jobs take a key of their own by default: one at a time.
    let mut admin = admin(&s).await;
    let gc = admin
        .start_collect_garbage(pb::StartCollectGarbageRequest::default())
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(gc.unique_key, "collect_garbage");
    let err = admin
        .start_collect_garbage(pb::StartCollectGarbageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&gc.id));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_job_is_retried_with_backoff_until_it_succeeds_or_runs_out() {
    let s = busy_server().await;
    let mut flaky = probe(json!({ "fail_attempts": 2 }));
    flaky.max_attempts = 3;
    let mut hopeless = probe(json!({ "fail_attempts": 5 }));
    hopeless.max_attempts = 2;
    let made = s.library.enqueue_jobs(&[flaky, hopeless]).await.unwrap();
    let mut jobs = jobs_client(&s).await;
    let seen = watch_to_end(&mut jobs, &made[0].id.to_string()).await;
    let end = seen.last().unwrap();
    assert_eq!(status(end), pb::JobStatus::Succeeded, "{end:?}");
    assert_eq!(end.attempts, 3);
    assert!(
        end.last_error.contains("attempt 2 fails"),
        "{}",
        end.last_error
    );
    assert_eq!(number(&end.result, "attempt"), 3.0);
    // Between attempts it waited, queued, for a time in the future.
    assert!(
        seen.iter().any(|j| status(j) == pb::JobStatus::Queued
            && j.attempts >= 1
            && j.scheduled_at.as_ref().unwrap().seconds * 1_000_000
                + i64::from(j.scheduled_at.as_ref().unwrap().nanos / 1000)
                > j.updated_at.as_ref().unwrap().seconds * 1_000_000
                    + i64::from(j.updated_at.as_ref().unwrap().nanos / 1000)),
        "no backoff seen: {seen:?}"
    );
    let end = watch_to_end(&mut jobs, &made[1].id.to_string()).await;
    let end = end.last().unwrap();
    assert_eq!(status(end), pb::JobStatus::Failed, "{end:?}");
    assert_eq!(end.attempts, 2);
    assert!(
        end.last_error.contains("attempt 2 fails"),
        "{}",
        end.last_error
    );
    assert!(end.finished_at.is_some());
    // A failed job can be retried by hand, with fresh attempts.
    let retried = jobs
        .retry_job(pb::RetryJobRequest {
            job_id: made[1].id.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(status(&retried), pb::JobStatus::Queued);
    assert_eq!(retried.attempts, 0);
    let end = watch_to_end(&mut jobs, &made[1].id.to_string()).await;
    assert_eq!(status(end.last().unwrap()), pb::JobStatus::Failed);
    assert_eq!(end.last().unwrap().attempts, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_server_was_sigkilled_runs_again_once_its_lease_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _db) = test_database(dir.path()).await;
    let flags = ["--job-lease-secs", "2", "--job-poll-ms", "100"];
    let mut server = start_process(dir.path(), &db_url, &flags);
    let mut jobs = JobServiceClient::new(channel(server.addr).await);
    // The test enqueues through the database the server shares.
    let repo = Repo::connect(&db_url).await.unwrap();
    let job = repo
        .insert_jobs(&[probe(json!({ "sleep_ms": 2000 }))])
        .await
        .unwrap()
        .pop()
        .unwrap();
    let id = job.id.to_string();
    // The server polls, so it finds the job without a wake-up.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let j = get(&mut jobs, &id).await;
        if status(&j) == pb::JobStatus::Running {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let held = repo.get_job(TenantId::DEFAULT, job.id).await.unwrap();
    assert_eq!(held.status, JobStatus::Running);
    assert_eq!(held.attempts, 1);
    let first_worker = held.lease_owner.clone().unwrap();

    let server = start_process(dir.path(), &db_url, &flags);
    let mut jobs = JobServiceClient::new(channel(server.addr).await);
    let seen = watch_to_end(&mut jobs, &id).await;
    let end = seen.last().unwrap();
    assert_eq!(status(end), pb::JobStatus::Succeeded, "{end:?}");
    assert_eq!(end.attempts, 2, "{end:?}");
    assert!(
        end.last_error.contains(&first_worker) && end.last_error.contains("attempt 1"),
        "{}",
        end.last_error
    );
    assert_ne!(end.worker, first_worker);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_queued_job_ends_it_and_a_running_one_stops_at_a_checkpoint() {
    let s = busy_server().await;
    let mut jobs = jobs_client(&s).await;
    // Queued: scheduled an hour ahead, so nothing runs it.
    let mut later = probe(json!({}));
    later.scheduled_at = now_micros() + 3_600_000_000;
    let running = probe(json!({ "sleep_ms": 600_000 }));
    let made = s.library.enqueue_jobs(&[later, running]).await.unwrap();
    let (queued_id, running_id) = (made[0].id.to_string(), made[1].id.to_string());

    let cancelled = jobs
        .cancel_job(pb::CancelJobRequest {
            job_id: queued_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(status(&cancelled), pb::JobStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while status(&get(&mut jobs, &running_id).await) != pb::JobStatus::Running {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // An active job cannot be deleted.
    let err = jobs
        .delete_job(pb::DeleteJobRequest {
            job_id: running_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "JOB_STATUS");
    assert!(err.message().contains("running"), "{}", err.message());
    let asked = jobs
        .cancel_job(pb::CancelJobRequest {
            job_id: running_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert!(asked.cancel_requested);
    let seen = watch_to_end(&mut jobs, &running_id).await;
    let end = seen.last().unwrap();
    assert_eq!(status(end), pb::JobStatus::Cancelled, "{end:?}");
    assert!(end.progress < 100);
    assert_eq!(end.attempts, 1);

    // An ended job cannot be cancelled; a cancelled one can be retried,
    // once.
    let err = jobs
        .cancel_job(pb::CancelJobRequest {
            job_id: running_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "JOB_STATUS");
    let retried = jobs
        .retry_job(pb::RetryJobRequest {
            job_id: queued_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(status(&retried), pb::JobStatus::Queued);
    let err = jobs
        .retry_job(pb::RetryJobRequest {
            job_id: queued_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // An ended job can be deleted.
    jobs.delete_job(pb::DeleteJobRequest {
        job_id: running_id.clone(),
    })
    .await
    .unwrap();
    let err = jobs
        .get_job(pb::GetJobRequest { job_id: running_id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "JOB_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_job_streams_progress_then_the_end_and_an_ended_job_at_once() {
    let s = busy_server().await;
    let mut jobs = jobs_client(&s).await;
    let job = s
        .library
        .enqueue_job(probe(json!({ "sleep_ms": 1500 })))
        .await
        .unwrap();
    let seen = watch_to_end(&mut jobs, &job.id.to_string()).await;
    assert!(matches!(
        status(&seen[0]),
        pb::JobStatus::Queued | pb::JobStatus::Running
    ));
    assert!(
        seen.iter()
            .any(|j| status(j) == pb::JobStatus::Running && j.progress > 0 && j.progress < 100),
        "no progress seen: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|j| j.progress_message.starts_with("slept "))
    );
    let end = seen.last().unwrap();
    assert_eq!(status(end), pb::JobStatus::Succeeded);
    assert_eq!(end.progress, 100);
    assert!(end.lease_expires_at.is_none());
    // Progress only grows.
    for pair in seen.windows(2) {
        assert!(pair[0].progress <= pair[1].progress, "{pair:?}");
    }
    let again = watch_to_end(&mut jobs, &job.id.to_string()).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0], *end);

    let err = jobs
        .watch_job(pb::WatchJobRequest {
            job_id: JobId::new().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = jobs
        .watch_job(pb::WatchJobRequest {
            job_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_field(&err).as_deref(), Some("job_id"));
}

fn time_range(start: Option<i64>, end: Option<i64>) -> Option<pb::TimeRange> {
    let ts = |m: i64| prost_types::Timestamp {
        seconds: m.div_euclid(1_000_000),
        nanos: (m.rem_euclid(1_000_000) * 1000) as i32,
    };
    Some(pb::TimeRange {
        start_time: start.map(ts),
        end_time: end.map(ts),
    })
}

async fn list_ids(jobs: &mut Jobs, filter: pb::JobFilter) -> HashSet<String> {
    jobs.list_jobs(pb::ListJobsRequest {
        filter: Some(filter),
        page_size: 1000,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .jobs
    .into_iter()
    .map(|j| j.id)
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn list_jobs_answers_every_filter_order_and_page() {
    let s = idle_server().await;
    let mut jobs = jobs_client(&s).await;
    let t0 = now_micros();
    let mut specs = Vec::new();
    for i in 0..10 {
        let mut j = if i % 3 == 0 {
            NewJob::new(TenantId::DEFAULT, kinds::REANALYZE, json!({}), "test")
        } else {
            probe(json!({ "n": i }))
        };
        j.priority = i;
        j.scheduled_at = t0 + i64::from(i) * 60_000_000;
        if i == 4 {
            j.unique_key = Some("four".into());
        }
        specs.push(j);
    }
    let made = s.library.enqueue_jobs(&specs).await.unwrap();
    let ids: Vec<String> = made.iter().map(|j| j.id.to_string()).collect();
    let pick = |is: &[usize]| -> HashSet<String> { is.iter().map(|i| ids[*i].clone()).collect() };
    // Statuses and attempts: cancel two; give three some attempts.
    for i in [1, 2] {
        jobs.cancel_job(pb::CancelJobRequest {
            job_id: ids[i].clone(),
        })
        .await
        .unwrap();
    }
    for (i, attempts) in [(5, 2), (6, 3), (7, 1)] {
        s.sql(
            "UPDATE jobs SET attempts = $1, updated_at = $2 WHERE id = $3",
            [
                attempts.into(),
                (t0 + 3_600_000_000).into(),
                made[i].id.0.into(),
            ],
        )
        .await;
    }

    let all: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(list_ids(&mut jobs, pb::JobFilter::default()).await, all);
    let f = |tweak: fn(&mut pb::JobFilter)| {
        let mut f = pb::JobFilter::default();
        tweak(&mut f);
        f
    };
    let by_ids = pb::JobFilter {
        job_ids: vec![ids[3].clone(), ids[8].clone()],
        ..Default::default()
    };
    assert_eq!(list_ids(&mut jobs, by_ids).await, pick(&[3, 8]));
    assert_eq!(
        list_ids(&mut jobs, f(|f| f.kinds = vec!["reanalyze".into()])).await,
        pick(&[0, 3, 6, 9])
    );
    assert_eq!(
        list_ids(
            &mut jobs,
            f(|f| f.statuses = vec![pb::JobStatus::Cancelled as i32])
        )
        .await,
        pick(&[1, 2])
    );
    assert_eq!(
        list_ids(
            &mut jobs,
            f(|f| {
                f.min_priority = Some(3);
                f.max_priority = Some(5)
            })
        )
        .await,
        pick(&[3, 4, 5])
    );
    assert_eq!(
        list_ids(&mut jobs, f(|f| f.min_attempts = Some(2))).await,
        pick(&[5, 6])
    );
    assert_eq!(
        list_ids(&mut jobs, f(|f| f.max_attempts = Some(0))).await,
        pick(&[0, 1, 2, 3, 4, 8, 9])
    );
    let scheduled = pb::JobFilter {
        scheduled: time_range(Some(t0 + 120_000_000), Some(t0 + 240_000_000)),
        ..Default::default()
    };
    assert_eq!(list_ids(&mut jobs, scheduled).await, pick(&[2, 3]));
    let updated = pb::JobFilter {
        updated: time_range(Some(t0 + 3_600_000_000), None),
        ..Default::default()
    };
    assert_eq!(list_ids(&mut jobs, updated).await, pick(&[5, 6, 7]));
    let created = pb::JobFilter {
        created: time_range(None, Some(t0)),
        ..Default::default()
    };
    assert!(list_ids(&mut jobs, created).await.is_empty());
    let created = pb::JobFilter {
        created: time_range(Some(t0), None),
        ..Default::default()
    };
    assert_eq!(list_ids(&mut jobs, created).await, all);
    assert_eq!(
        list_ids(&mut jobs, f(|f| f.unique_key = "four".into())).await,
        pick(&[4])
    );
    // Conditions combine.
    assert_eq!(
        list_ids(
            &mut jobs,
            f(|f| {
                f.kinds = vec!["probe".into()];
                f.statuses = vec![pb::JobStatus::Queued as i32];
                f.min_priority = Some(5)
            })
        )
        .await,
        pick(&[5, 7, 8])
    );

    // Pages by priority, ascending, three at a time, with a total.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = jobs
            .list_jobs(pb::ListJobsRequest {
                page_size: 3,
                page_token: token.clone(),
                order_by: pb::JobOrderBy::Priority as i32,
                ascending: true,
                include_total_size: true,
                read_mask: Some(prost_types::FieldMask {
                    paths: vec!["priority".into()],
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total_size, Some(10));
        for j in &page.jobs {
            assert!(j.kind.is_empty() && j.payload.is_none(), "masked: {j:?}");
            seen.push(j.priority);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    // Newest first by default.
    let newest = jobs
        .list_jobs(pb::ListJobsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(newest.jobs[0].id, ids[9]);
    assert_eq!(newest.jobs[0].kind, "reanalyze");

    // Bad input.
    for (filter, field) in [
        (f(|f| f.kinds = vec!["mining".into()]), "filter.kinds[0]"),
        (f(|f| f.statuses = vec![0]), "filter.statuses[0]"),
        (f(|f| f.statuses = vec![42]), "filter.statuses[0]"),
        (f(|f| f.job_ids = vec!["x".into()]), "filter.job_ids[0]"),
        (
            f(|f| {
                f.min_priority = Some(5);
                f.max_priority = Some(1)
            }),
            "filter.min_priority",
        ),
    ] {
        let err = jobs
            .list_jobs(pb::ListJobsRequest {
                filter: Some(filter),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert_eq!(bad_field(&err).as_deref(), Some(field));
    }
    let foreign = token_for_other_query(&mut jobs).await;
    let err = jobs
        .list_jobs(pb::ListJobsRequest {
            page_token: foreign,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_field(&err).as_deref(), Some("page_token"));
    let err = jobs
        .list_jobs(pb::ListJobsRequest {
            read_mask: Some(prost_types::FieldMask {
                paths: vec!["secret".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

/// A page token of a listing ordered by priority.
async fn token_for_other_query(jobs: &mut Jobs) -> String {
    jobs.list_jobs(pb::ListJobsRequest {
        page_size: 1,
        order_by: pb::JobOrderBy::Priority as i32,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .next_page_token
}

#[tokio::test(flavor = "multi_thread")]
async fn two_server_processes_share_one_queue_and_run_each_job_once() {
    const JOBS: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _db) = test_database(dir.path()).await;
    // The schema first, so the two servers do not race to make it.
    let repo = Repo::connect(&db_url).await.unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let flags = ["--job-workers", "4", "--job-poll-ms", "100"];
    let servers: Vec<ServerProcess> = dirs
        .iter()
        .map(|d| start_process(d.path(), &db_url, &flags))
        .collect();
    for server in &servers {
        // Both are up before the jobs arrive.
        JobServiceClient::new(channel(server.addr).await)
            .list_jobs(pb::ListJobsRequest::default())
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    for part in (0..JOBS).collect::<Vec<_>>().chunks(250) {
        let batch: Vec<NewJob> = part.iter().map(|i| probe(json!({ "n": i }))).collect();
        ids.extend(
            repo.insert_jobs(&batch)
                .await
                .unwrap()
                .into_iter()
                .map(|j| j.id),
        );
    }
    let ended = all_ended(&repo, &ids).await;
    let mut workers = HashSet::new();
    for j in &ended {
        assert_eq!(j.status, JobStatus::Succeeded, "{j:?}");
        assert_eq!(j.attempts, 1, "ran more than once: {j:?}");
        assert!(j.last_error.is_none(), "{j:?}");
        workers.insert(j.lease_owner.clone().unwrap());
    }
    assert_eq!(workers.len(), 2, "both servers ran jobs: {workers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reanalysis_of_a_folder_fills_fields_the_stored_rows_lacked() {
    let s = busy_server().await;
    let mut folders = pb::folder_service_client::FolderServiceClient::new(channel(s.addr).await);
    let folder = folders
        .create_folder(pb::CreateFolderRequest {
            name: "old".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    let mut client = s.client.clone();
    let mut ids = Vec::new();
    for (name, data) in [
        ("exif.jpg", jpeg_with_exif()),
        ("plain.png", encoded(image::ImageFormat::Png, 40, 30)),
        ("notes.txt", b"just text".to_vec()),
    ] {
        let mut h = header(name, data.len());
        h.parent_folder_id = folder.id.clone();
        let m = upload(&mut client, h, &data).await.unwrap().media.unwrap();
        ids.push(m.id);
    }
    let small = encoded(image::ImageFormat::Png, 10, 10);
    let outside = upload(&mut client, header("outside.png", small.len()), &small)
        .await
        .unwrap();
    let before = get_media(&mut client, &ids[0]).await;
    assert!(before.width > 0 && !before.exif.is_empty() && before.taken_time.is_some());
    // Rows as an older analyzer left them: nothing analysed.
    s.sql(
        "UPDATE media SET width = NULL, height = NULL, exif = NULL, taken_at = NULL, \
         latitude = NULL, longitude = NULL, orientation = NULL",
        [],
    )
    .await;
    let stripped = get_media(&mut client, &ids[0]).await;
    assert_eq!(stripped.width, 0);
    assert!(stripped.exif.is_empty());

    let job = client
        .reanalyze_media(pb::ReanalyzeMediaRequest {
            folder_id: folder.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.kind, "reanalyze");
    let mut jobs = jobs_client(&s).await;
    let end = watch_to_end(&mut jobs, &job.id).await;
    let end = end.last().unwrap();
    assert_eq!(status(end), pb::JobStatus::Succeeded, "{end:?}");
    assert_eq!(number(&end.result, "analyzed"), 3.0);
    assert_eq!(number(&end.result, "changed"), 2.0);
    assert_eq!(number(&end.result, "skipped"), 1.0);
    assert_eq!(number(&end.result, "failed"), 0.0);
    let after = get_media(&mut client, &ids[0]).await;
    assert_eq!(after.width, before.width);
    assert_eq!(after.height, before.height);
    assert_eq!(after.exif, before.exif);
    assert_eq!(after.taken_time, before.taken_time);
    assert_eq!(after.latitude, before.latitude);
    assert_eq!(after.title, before.title);
    assert_eq!(get_media(&mut client, &ids[1]).await.width, 40);
    // The media outside the folder was not touched.
    assert_eq!(
        get_media(&mut client, &outside.media.unwrap().id)
            .await
            .width,
        0
    );

    // By ids, and the whole tenant.
    let job = client
        .reanalyze_media(pb::ReanalyzeMediaRequest {
            media_ids: vec![ids[0].clone(), MediaIdString::fresh()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let end = watch_to_end(&mut jobs, &job.id).await;
    assert_eq!(number(&end.last().unwrap().result, "changed"), 0.0);
    let job = client
        .reanalyze_media(pb::ReanalyzeMediaRequest::default())
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let end = watch_to_end(&mut jobs, &job.id).await;
    let end = end.last().unwrap();
    assert_eq!(number(&end.result, "analyzed"), 4.0);
    assert_eq!(number(&end.result, "changed"), 1.0);
    assert_eq!(end.progress, 100);
    assert_eq!(end.progress_message, "4 of 4 media");

    // Bad input.
    for (req, code, field) in [
        (
            pb::ReanalyzeMediaRequest {
                media_ids: vec![ids[0].clone()],
                folder_id: folder.id.clone(),
                ..Default::default()
            },
            Code::InvalidArgument,
            Some("folder_id"),
        ),
        (
            pb::ReanalyzeMediaRequest {
                recursive: true,
                ..Default::default()
            },
            Code::InvalidArgument,
            Some("recursive"),
        ),
        (
            pb::ReanalyzeMediaRequest {
                media_ids: vec!["x".into()],
                ..Default::default()
            },
            Code::InvalidArgument,
            Some("media_ids[0]"),
        ),
        (
            pb::ReanalyzeMediaRequest {
                folder_id: MediaIdString::fresh(),
                ..Default::default()
            },
            Code::NotFound,
            None,
        ),
        (
            pb::ReanalyzeMediaRequest {
                options: Some(pb::JobOptions {
                    max_attempts: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Code::InvalidArgument,
            Some("options.max_attempts"),
        ),
        (
            pb::ReanalyzeMediaRequest {
                options: Some(pb::JobOptions {
                    unique_key: "  ".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Code::InvalidArgument,
            Some("options.unique_key"),
        ),
    ] {
        let err = client.reanalyze_media(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert_eq!(bad_field(&err).as_deref(), field);
    }
}

/// A fresh UUID string, for ids nothing has.
struct MediaIdString;

impl MediaIdString {
    fn fresh() -> String {
        uuid::Uuid::now_v7().to_string()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_collection_and_scrub_run_as_jobs() {
    let s = busy_server().await;
    let mut client = s.client.clone();
    let data = content("scrub-job", 200_000);
    upload(&mut client, header("a.bin", data.len()), &data)
        .await
        .unwrap();
    let mut admin = admin(&s).await;
    let mut jobs = jobs_client(&s).await;
    let job = admin
        .start_scrub(pb::StartScrubRequest::default())
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.kind, "scrub");
    let end = watch_to_end(&mut jobs, &job.id).await;
    let end = end.last().unwrap();
    assert_eq!(status(end), pb::JobStatus::Succeeded, "{end:?}");
    assert_eq!(number(&end.result, "blobs_checked"), 1.0);
    assert_eq!(number(&end.result, "bytes_checked"), 200_000.0);
    let job = admin
        .start_collect_garbage(pb::StartCollectGarbageRequest {
            min_age: Some(prost_types::Duration {
                seconds: 0,
                nanos: 0,
            }),
            options: Some(pb::JobOptions {
                priority: 7,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(job.priority, 7);
    let end = watch_to_end(&mut jobs, &job.id).await;
    let end = end.last().unwrap();
    assert_eq!(status(end), pb::JobStatus::Succeeded, "{end:?}");
    assert_eq!(number(&end.result, "blobs_removed"), 0.0);
    assert_storage_sound(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_need_their_scopes_and_stay_in_their_tenant() {
    let s = idle_server().await;
    let job = s.library.enqueue_job(probe(json!({}))).await.unwrap();
    let id = job.id.to_string();
    // A key of the default tenant without jobs:read.
    let reader = new_key(s.addr, "", "reader", "", &["media:read"]).await;
    let mut jobs = JobServiceClient::new(channel_with(s.addr, Bearer::key(&reader)).await);
    let err = jobs
        .get_job(pb::GetJobRequest { job_id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let watcher = new_key(s.addr, "", "watcher", "", &["jobs:read"]).await;
    let mut jobs = JobServiceClient::new(channel_with(s.addr, Bearer::key(&watcher)).await);
    assert_eq!(get(&mut jobs, &id).await.id, id);
    let err = jobs
        .cancel_job(pb::CancelJobRequest { job_id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Another tenant's key sees nothing of it.
    let other = new_tenant(s.addr, "others").await;
    let theirs = new_key(
        s.addr,
        &other.id,
        "theirs",
        "",
        &["jobs:read", "jobs:write"],
    )
    .await;
    let mut jobs = JobServiceClient::new(channel_with(s.addr, Bearer::key(&theirs)).await);
    let err = jobs
        .get_job(pb::GetJobRequest { job_id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = jobs
        .cancel_job(pb::CancelJobRequest { job_id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let listed = jobs
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.jobs.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_deleted_in_the_background_leaves_at_once_and_its_job_deletes_the_media() {
    let s = busy_server().await;
    let mut folders = pb::folder_service_client::FolderServiceClient::new(channel(s.addr).await);
    let mk = |name: &str, parent: &str| pb::CreateFolderRequest {
        name: name.into(),
        parent_folder_id: parent.into(),
        ..Default::default()
    };
    let top = folders
        .create_folder(mk("archive", ""))
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    let sub = folders
        .create_folder(mk("2020", &top.id))
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    let mut client = s.client.clone();
    for (i, parent) in [&top.id, &sub.id, &sub.id].iter().enumerate() {
        let d = content(&format!("old-{i}"), 100_000);
        let mut h = header(&format!("{i}.bin"), d.len());
        h.parent_folder_id = parent.to_string();
        upload(&mut client, h, &d).await.unwrap();
    }
    let kept = content("kept", 10);
    upload(&mut client, header("kept.bin", kept.len()), &kept)
        .await
        .unwrap();
    let answer = folders
        .delete_folder(pb::DeleteFolderRequest {
            folder_id: top.id.clone(),
            in_background: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.deleted_folder_count, 2);
    let job = answer.job.unwrap();
    assert_eq!(job.kind, "delete_folder");
    // Gone for every call at once.
    let err = folders
        .get_folder(pb::GetFolderRequest {
            lookup: Some(pb::get_folder_request::Lookup::FolderId(sub.id.clone())),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let mut jobs = jobs_client(&s).await;
    let seen = watch_to_end(&mut jobs, &job.id).await;
    let end = seen.last().unwrap();
    assert_eq!(status(end), pb::JobStatus::Succeeded, "{end:?}");
    assert_eq!(number(&end.result, "deleted_media_count"), 3.0);
    assert_eq!(number(&end.result, "removed_blob_count"), 3.0);
    let left = list_all(&mut client).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].filename, "kept.bin");
    assert_storage_sound(&s).await;
}

/// On PostgreSQL an enqueue by any process wakes every server's idle
/// workers through LISTEN/NOTIFY: with a poll of an hour, the job still
/// runs. (SQLite has no notifications between processes; its servers
/// poll, which the two-process test covers.)
#[tokio::test(flavor = "multi_thread")]
async fn an_enqueue_elsewhere_wakes_idle_workers_on_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _db) = test_database(dir.path()).await;
    if !db_url.starts_with("postgres") {
        return;
    }
    let repo = Repo::connect(&db_url).await.unwrap();
    let server = start_process(dir.path(), &db_url, &["--job-poll-ms", "3600000"]);
    let mut jobs = JobServiceClient::new(channel(server.addr).await);
    // Up, and its claimer asleep on its first empty claim.
    jobs.list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = repo
        .insert_jobs(&[probe(json!({}))])
        .await
        .unwrap()
        .pop()
        .unwrap();
    let end = watch_to_end(&mut jobs, &job.id.to_string()).await;
    assert_eq!(status(end.last().unwrap()), pb::JobStatus::Succeeded);
}
