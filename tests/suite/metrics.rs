//! The metrics listener, scraped as Prometheus scrapes it: every counter
//! moves with the calls that should move it, and only those.

use mediastore::{
    config::Config,
    domain::{NewJob, TenantId, now_micros},
    jobs::kinds,
    pb::v1 as pb,
};
use serde_json::json;
use tonic::Code;

use super::common::*;

fn with_metrics(c: &mut Config) {
    c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    c.http_listen = Some("127.0.0.1:0".parse().unwrap());
    c.url_keys = Some("k1=0123456789abcdef0123456789abcdef".into());
}

/// One scrape.
struct Scrape(String);

impl Scrape {
    async fn of(s: &TestServer) -> Self {
        let answer = http_get(
            &format!("http://{}/metrics", s.config.metrics_listen.unwrap()),
            &[],
        )
        .await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("content-type"),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        Self(String::from_utf8(answer.body).unwrap())
    }

    /// The sample `name` whose labels include every pair of `labels`; 0
    /// when there is none (a counter not yet created).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self
            .0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (metric, set) = match series.split_once('{') {
                    Some((m, rest)) => (m, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                (metric == name
                    && labels
                        .iter()
                        .all(|(k, v)| set.split(',').any(|p| p == format!("{k}=\"{v}\""))))
                .then(|| value.parse().unwrap())
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().copied().unwrap_or(0.0)
    }

    /// [`Self::value`] of a method of MediaService.
    fn media(&self, name: &str, method: &str, more: &[(&str, &str)]) -> f64 {
        let mut labels = vec![
            ("grpc_service", "mediastore.v1.MediaService"),
            ("grpc_method", method),
        ];
        labels.extend_from_slice(more);
        self.value(name, &labels)
    }
}

#[tokio::test]
async fn an_upload_a_rendition_and_errors_move_their_counters() {
    let mut s = TestServer::spawn_with(with_metrics).await;
    let before = Scrape::of(&s).await;
    assert_eq!(
        before.media("grpc_server_started_total", "UploadMedia", &[]),
        0.0
    );

    // An upload too large to live inline, so it reaches the blob store.
    let data = content("metrics", 300 * 1024);
    upload(&mut s.client, header("big.bin", data.len()), &data)
        .await
        .unwrap();
    let jpeg = encoded(image::ImageFormat::Jpeg, 640, 480);
    let mut h = header("photo.jpg", jpeg.len());
    h.public = true;
    let photo = upload(&mut s.client, h, &jpeg)
        .await
        .unwrap()
        .media
        .unwrap();
    // The same rendition twice: made once, then served from the cache.
    for cached in [false, true] {
        let req = pb::GetRenditionRequest {
            media_id: photo.id.clone(),
            width: 50,
            ..Default::default()
        };
        let (_, was_cached, _) = rendition(&mut s.client, req).await.unwrap();
        assert_eq!(was_cached, cached);
    }
    // Errors: a media that does not exist, and a call without a key.
    let missing = s
        .client
        .get_media(pb::GetMediaRequest {
            media_id: "0190b5a8-0000-7000-8000-000000000000".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let mut anonymous =
        pb::media_service_client::MediaServiceClient::new(channel_with(s.addr, Bearer(None)).await);
    let refused = anonymous
        .list_media(pb::ListMediaRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    // A resumable upload left open.
    let mut uploads = uploads(s.addr).await;
    start_upload(&mut uploads, header("later.bin", 10)).await;
    // The HTTP edge: the photo's URL, and a path that is no media.
    let http = format!("http://{}", s.http.unwrap());
    let got = http_get(&photo.url, &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(http_get(&format!("{http}/nothing"), &[]).await.status, 404);

    let after = Scrape::of(&s).await;
    let ok = [("grpc_code", "OK")];
    assert_eq!(
        after.media("grpc_server_started_total", "UploadMedia", &[]),
        2.0
    );
    assert_eq!(
        after.media("grpc_server_handled_total", "UploadMedia", &ok),
        2.0
    );
    assert_eq!(
        after.media("grpc_server_handling_seconds_count", "UploadMedia", &[]),
        2.0
    );
    let received = after.media("mediastore_grpc_received_bytes_total", "UploadMedia", &[]);
    let uploaded = (data.len() + jpeg.len()) as f64;
    assert!(
        received >= uploaded && received < uploaded + 64.0 * 1024.0,
        "{received} bytes received for {uploaded} uploaded"
    );
    assert_eq!(
        after.media("grpc_server_handled_total", "GetRendition", &ok),
        2.0
    );
    assert!(after.media("mediastore_grpc_sent_bytes_total", "GetRendition", &[]) > 0.0);
    assert_eq!(
        after.value("mediastore_rendition_cache_misses_total", &[]),
        1.0
    );
    assert_eq!(
        after.value("mediastore_rendition_cache_hits_total", &[]),
        1.0
    );
    assert_eq!(
        after.media(
            "grpc_server_handled_total",
            "GetMedia",
            &[("grpc_code", "NotFound")]
        ),
        1.0
    );
    assert_eq!(
        after.media(
            "grpc_server_handled_total",
            "ListMedia",
            &[("grpc_code", "Unauthenticated")]
        ),
        1.0
    );
    assert_eq!(
        after.media("grpc_server_handled_total", "GetMedia", &ok),
        0.0
    );
    // Nothing is left open: every call above has ended.
    for method in ["UploadMedia", "GetRendition", "GetMedia"] {
        assert_eq!(
            after.media("mediastore_grpc_in_flight_calls", method, &[]),
            0.0,
            "{method}"
        );
    }
    // The blob store: the large upload and the rendition were published,
    // and read back.
    for op in ["publish", "open", "stage"] {
        assert!(
            after.value("mediastore_blob_operation_seconds_count", &[("op", op)]) >= 1.0,
            "{op}"
        );
    }
    assert_eq!(
        after.value(
            "mediastore_blob_operation_errors_total",
            &[("op", "publish")]
        ),
        0.0
    );
    assert_eq!(after.value("mediastore_upload_sessions", &[]), 1.0);
    assert_eq!(after.value("mediastore_jobs_running", &[]), 0.0);
    assert_eq!(after.value("mediastore_jobs_queued", &[]), 0.0);
    let pool = if std::env::var(PG_ENV).is_ok() {
        "main"
    } else {
        "read"
    };
    assert!(after.value("mediastore_db_pool_max_connections", &[("pool", pool)]) >= 1.0);
    assert_eq!(
        after.value("mediastore_http_responses_total", &[("code", "200")]),
        1.0
    );
    assert_eq!(
        after.value("mediastore_http_responses_total", &[("code", "404")]),
        1.0
    );
    assert!(after.value("mediastore_http_sent_bytes_total", &[]) >= jpeg.len() as f64);
    // Scraping is not a call of the gRPC port.
    assert_eq!(
        after.value("mediastore_metrics_sample_errors_total", &[]),
        0.0
    );
}

#[tokio::test]
async fn the_queue_depth_and_wait_are_read_from_the_database() {
    let s = TestServer::spawn_with(|c| {
        with_metrics(c);
        // No workers: what is queued stays queued.
        c.job_workers = 0;
    })
    .await;
    let now = now_micros();
    let jobs: Vec<NewJob> = [0, 0, 0, 3_600_000_000]
        .into_iter()
        .map(|delay| {
            let mut j = NewJob::new(TenantId::DEFAULT, kinds::PROBE, json!({}), "test");
            j.scheduled_at = now + delay;
            j
        })
        .collect();
    s.library.enqueue_jobs(&jobs).await.unwrap();
    // The due ones have waited 5 s (as if the workers were all busy).
    let moved = s
        .sql(
            "UPDATE jobs SET scheduled_at = scheduled_at - 5000000 WHERE scheduled_at <= $1",
            [now_micros().into()],
        )
        .await;
    assert_eq!(moved, 3);
    let scrape = Scrape::of(&s).await;
    // Due ones only: the one scheduled in an hour is not waiting yet.
    assert_eq!(scrape.value("mediastore_jobs_queued", &[]), 3.0);
    assert_eq!(scrape.value("mediastore_jobs_running", &[]), 0.0);
    let waited = scrape.value("mediastore_jobs_oldest_wait_seconds", &[]);
    assert!(
        (5.0..60.0).contains(&waited),
        "the oldest waited {waited} s"
    );
}
