//! The whole server on an S3-compatible store (a real Garage node):
//! uploads plain and resumable, ranged reads, renditions, deletes and
//! garbage collection, scrubs; small blobs stay in the database.

use std::sync::Arc;

use mediastore::{
    blob::{BlobStore, s3::S3BlobStore},
    pb::v1 as pb,
};

use super::common::{garage::Garage, *};

/// Every blob the bucket holds under `prefix`.
async fn stored(garage: &Garage, prefix: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        S3BlobStore::open(
            &garage.settings(prefix),
            dir.path(),
            tokio::runtime::Handle::current(),
        )
        .unwrap(),
    );
    tokio::task::spawn_blocking(move || {
        (0..=255u8)
            .flat_map(|shard| store.list_shard(shard).unwrap())
            .map(|b| b.hash.to_string())
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_keeps_its_blobs_in_the_bucket() {
    let Some(garage) = tokio::task::block_in_place(Garage::single) else {
        return;
    };
    let mut s = TestServer::spawn_with(|c| garage.configure(c, "server/")).await;

    // A small upload stays in the database; nothing reaches the bucket.
    let small = content("small", 4096);
    upload(&mut s.client, header("small.bin", small.len()), &small)
        .await
        .unwrap();
    assert!(stored(&garage, "server/").await.is_empty());
    assert!(s.inline_bytes(&blake3_hex(&small)).await.is_some());

    // A large one goes to the bucket as a multipart upload (5 MiB parts).
    let big = content("big", 12 * MIB + 3);
    let media = upload(&mut s.client, header("big.bin", big.len()), &big)
        .await
        .unwrap()
        .media
        .unwrap();
    assert_eq!(media.blake3, blake3_hex(&big));
    assert_eq!(stored(&garage, "server/").await, vec![blake3_hex(&big)]);
    assert!(!s.blob_path(&blake3_hex(&big)).exists());
    let (_, whole) = read(&mut s.client, &media.id, 0, 0).await.unwrap();
    assert_eq!(whole, big);
    let (_, part) = read(&mut s.client, &media.id, 5 * MIB as i64 - 7, 100)
        .await
        .unwrap();
    assert_eq!(part, &big[5 * MIB - 7..5 * MIB + 93]);

    // A rendition is made from the bucket's bytes and cached there.
    let mut again = s.client.clone();
    let photo = rendered_then_cached(&mut s.client, &mut again, 1600, 1200).await;

    // A photo larger than a part is analysed where it was sent while it
    // arrived (the bucket's temporary object) and renders from its name.
    let mut padded = encoded(image::ImageFormat::Jpeg, 1200, 900);
    padded.resize(padded.len() + 6 * MIB, 0);
    let large = upload(&mut s.client, header("large.jpg", padded.len()), &padded)
        .await
        .unwrap()
        .media
        .unwrap();
    assert_eq!((large.width, large.height), (1200, 900));
    let (r, _, _) = rendition(
        &mut s.client,
        pb::GetRenditionRequest {
            media_id: large.id.clone(),
            width: 300,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((r.width, r.height), (300, 225));

    // A resumable upload in pieces, its segments joined in the bucket.
    let mut up = uploads(s.addr).await;
    let data = content("resumable", 11 * MIB + 5);
    let session = start_upload(&mut up, header("resumed.bin", data.len())).await;
    let cut = 6 * MIB + 1;
    send_pieces(&mut up, vec![piece(&session.id, 0, &data[..cut], false)])
        .await
        .unwrap();
    let done = send_pieces(&mut up, vec![piece(&session.id, cut, &data[cut..], true)])
        .await
        .unwrap();
    let resumed = done.media.unwrap();
    assert_eq!(resumed.blake3, blake3_hex(&data));
    let (_, back) = read(&mut s.client, &resumed.id, 0, 0).await.unwrap();
    assert_eq!(back, data);

    // A scrub reads every blob back from the bucket and finds them sound.
    let report = scrub(&s).await;
    let last = report.last().unwrap();
    assert!(last.missing_blake3.is_empty() && last.corrupt_blake3.is_empty());
    assert!(last.blobs_checked >= 4, "{last:?}");

    // Deleting the large media removes its object.
    s.client
        .delete_media(pb::DeleteMediaRequest {
            media_id: media.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    // The object goes after the delete answers.
    s.library.deletions_settled().await;
    let left = stored(&garage, "server/").await;
    assert!(!left.contains(&blake3_hex(&big)), "{left:?}");
    // What is left is the photos and the resumed upload (the renditions,
    // under 64 KiB, lives in the database), and no upload segments: a GC
    // finds nothing more to remove.
    let mut want = vec![
        photo.blake3.clone(),
        large.blake3.clone(),
        blake3_hex(&data),
    ];
    want.sort();
    assert_eq!(left, want);
    let gc = admin(&s)
        .await
        .collect_garbage(pb::CollectGarbageRequest {
            min_age: Some(prost_types::Duration::default()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (gc.blobs_removed, gc.upload_files_removed),
        (0, 0),
        "{gc:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_node_cluster_serves_through_a_node_outage_and_loses_nothing() {
    let Some(mut garage) = tokio::task::block_in_place(|| Garage::cluster(3)) else {
        return;
    };
    let mut s = TestServer::spawn_with(|c| garage.configure(c, "cluster/")).await;
    let mut stored_media = Vec::new();
    let put = async |s: &mut TestServer, name: &str| {
        let data = content(name, 6 * MIB + name.len());
        let m = upload(&mut s.client, header(name, data.len()), &data)
            .await
            .unwrap()
            .media
            .unwrap();
        (m.id, data)
    };
    for name in ["before-1", "before-2"] {
        stored_media.push(put(&mut s, name).await);
    }
    // One of the three nodes (not the one the server talks to) goes down:
    // writes and reads still reach two copies.
    tokio::task::block_in_place(|| garage.nodes[2].kill());
    for name in ["during-1", "during-2", "during-3"] {
        stored_media.push(put(&mut s, name).await);
    }
    for (id, data) in &stored_media {
        let (_, back) = read(&mut s.client, id, 0, 0).await.unwrap();
        assert_eq!(&back, data, "{id} while a node is down");
    }
    // It returns; the service goes on, and everything acknowledged reads
    // back whole.
    tokio::task::block_in_place(|| garage.nodes[2].start());
    for name in ["after-1", "after-2"] {
        stored_media.push(put(&mut s, name).await);
    }
    for (id, data) in &stored_media {
        let (_, back) = read(&mut s.client, id, 0, 0).await.unwrap();
        assert_eq!(&back, data, "{id} after the node returned");
    }
    let report = scrub(&s).await;
    let last = report.last().unwrap();
    assert!(last.missing_blake3.is_empty() && last.corrupt_blake3.is_empty());
    assert_eq!(last.blobs_checked, stored_media.len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_bucket_and_recovers_by_itself() {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};

    use super::server::wait_for_media_status;

    let Some(mut garage) = tokio::task::block_in_place(Garage::single) else {
        return;
    };
    let s = TestServer::spawn_with(|c| {
        garage.configure(c, "health/");
        c.health_check_secs = 1;
    })
    .await;
    let mut health = HealthClient::new(raw_channel(s.addr).await);
    wait_for_media_status(&mut health, ServingStatus::Serving).await;
    // The object store goes away: NOT_SERVING, so a load balancer sends
    // this replica nothing it would fail.
    tokio::task::block_in_place(|| garage.nodes[0].kill());
    wait_for_media_status(&mut health, ServingStatus::NotServing).await;
    // It comes back: SERVING again, with nobody's help.
    tokio::task::block_in_place(|| garage.nodes[0].start());
    wait_for_media_status(&mut health, ServingStatus::Serving).await;
}

/// An UNAVAILABLE the client may retry: `STORAGE_UNAVAILABLE`, with a
/// `RetryInfo` delay.
fn assert_retryable(what: &str, err: &tonic::Status) {
    use tonic_types::StatusExt;
    assert_eq!(err.code(), tonic::Code::Unavailable, "{what}: {err:?}");
    assert_eq!(reason(err), "STORAGE_UNAVAILABLE", "{what}: {err:?}");
    let delay = err
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay);
    assert!(
        delay.is_some_and(|d| d > std::time::Duration::ZERO),
        "{what}: a RetryInfo delay, got {err:?}"
    );
}

/// Uploads `data` in 1 MiB messages, running `midway` after `cut` bytes
/// went: the upload's answer.
async fn upload_cut_by(
    client: &mut pb::media_service_client::MediaServiceClient<Channel>,
    data: Vec<u8>,
    cut: usize,
    midway: impl FnOnce() + Send + 'static,
) -> Result<pb::UploadMediaResponse, tonic::Status> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let len = data.len();
    let sender = tokio::spawn(async move {
        let mut msgs = upload_messages(header("cut.bin", len), &data, MIB).into_iter();
        let mut sent = 0;
        let mut midway = Some(midway);
        for msg in msgs.by_ref() {
            sent += msg.data.len();
            if tx.send(msg).await.is_err() {
                return;
            }
            if sent >= cut
                && let Some(f) = midway.take()
            {
                tokio::task::block_in_place(f);
            }
        }
    });
    let res = upload_raw(client, tokio_stream::wrappers::ReceiverStream::new(rx)).await;
    let _ = sender.await;
    res
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_outage_answers_unavailable_with_retry_info_and_stores_nothing() {
    let Some(mut garage) = tokio::task::block_in_place(Garage::single) else {
        return;
    };
    let mut s = TestServer::spawn_with(|c| garage.configure(c, "outage/")).await;
    let kept = content("kept", 6 * MIB);
    let kept = upload(&mut s.client, header("kept.bin", kept.len()), &kept)
        .await
        .unwrap()
        .media
        .unwrap();

    // The bucket goes away while a large upload is sent (parts go out as
    // they arrive), and while one of a single part waits to be published.
    let big = content("cut-big", 24 * MIB);
    let node = std::sync::Arc::new(std::sync::Mutex::new(std::mem::take(&mut garage.nodes)));
    let n = std::sync::Arc::clone(&node);
    let err = upload_cut_by(&mut s.client, big, 8 * MIB, move || {
        n.lock().unwrap()[0].kill();
    })
    .await
    .unwrap_err();
    assert_retryable("an upload cut by the outage", &err);
    let one_part = content("cut-small", 3 * MIB);
    let err = upload(
        &mut s.client,
        header("small.bin", one_part.len()),
        &one_part,
    )
    .await
    .unwrap_err();
    assert_retryable("an upload during the outage", &err);
    // Reads cannot reach the bytes either: UNAVAILABLE, never DATA_LOSS.
    let err = read(&mut s.client, &kept.id, 0, 0).await.unwrap_err();
    assert_retryable("a read during the outage", &err);

    // Back: nothing of the failed uploads was stored, the kept bytes read.
    tokio::task::block_in_place(|| node.lock().unwrap()[0].start());
    garage.nodes = std::mem::take(&mut node.lock().unwrap());
    let listed = list_all(&mut s.client).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(stored(&garage, "outage/").await, vec![kept.blake3.clone()]);
    let (_, back) = read(&mut s.client, &kept.id, 0, 0).await.unwrap();
    assert_eq!(blake3_hex(&back), kept.blake3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_started_with_the_bucket_down_serves_once_it_returns() {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};

    use super::server::wait_for_media_status;

    let Some(mut garage) = tokio::task::block_in_place(Garage::single) else {
        return;
    };
    tokio::task::block_in_place(|| garage.nodes[0].kill());
    let mut s = TestServer::spawn_with(|c| {
        garage.configure(c, "late/");
        c.health_check_secs = 1;
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let mut health = HealthClient::new(raw_channel(s.addr).await);
    wait_for_media_status(&mut health, ServingStatus::NotServing).await;
    let scrape = || async {
        let url = format!("http://{}/metrics", s.config.metrics_listen.unwrap());
        String::from_utf8(http_get(&url, &[]).await.body).unwrap()
    };
    let text = scrape().await;
    assert!(text.contains("mediastore_serving 0"), "{text}");
    // The killed node's port answers by closing every connection (the
    // harness holds it, so that no other test's store takes it).
    assert!(
        text.contains("mediastore_not_serving_reason{component=\"blob_store\",cause=\""),
        "{text}"
    );
    let data = content("late", 2 * MIB);
    let err = upload(&mut s.client, header("late.bin", data.len()), &data)
        .await
        .unwrap_err();
    assert_retryable("an upload before the bucket is up", &err);

    tokio::task::block_in_place(|| garage.nodes[0].start());
    wait_for_media_status(&mut health, ServingStatus::Serving).await;
    let text = scrape().await;
    assert!(text.contains("mediastore_serving 1"), "{text}");
    assert!(!text.contains("mediastore_not_serving_reason{"), "{text}");
    let m = upload(&mut s.client, header("late.bin", data.len()), &data)
        .await
        .unwrap()
        .media
        .unwrap();
    assert_eq!(m.blake3, blake3_hex(&data));
    assert_eq!(stored(&garage, "late/").await, vec![m.blake3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_start_not_serving_naming_the_s3_error() {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};

    use super::server::wait_for_media_status;

    let Some(garage) = tokio::task::block_in_place(Garage::single) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db, _pg) = test_database(dir.path()).await;
    let mut flags = garage.flags("wrong/");
    let secret = flags
        .iter()
        .position(|f| f == "--s3-secret-access-key")
        .unwrap();
    flags[secret + 1] = "0".repeat(64);
    flags.extend(["--health-check-secs".into(), "1".into()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let p = tokio::task::block_in_place(|| start_process(dir.path(), &db, &flags));
    let mut health = HealthClient::new(raw_channel(p.addr).await);
    wait_for_media_status(&mut health, ServingStatus::NotServing).await;
    let output = p.output();
    let line = output
        .lines()
        .find(|l| l.contains("reporting NOT_SERVING"))
        .unwrap_or_else(|| panic!("no NOT_SERVING line in:\n{output}"));
    // Garage answers a bad signature 403 `AccessDenied`; the line names
    // the code (the `cause` of `mediastore_not_serving_reason`).
    assert!(line.contains("403"), "{line}");
    assert!(line.contains("\"cause\":\"AccessDenied\""), "{line}");
}
