//! Stateless replicas: two server processes on one database and one
//! bucket. An upload through one is read and rendered through the other,
//! a resumable upload started on one finishes on the other (which rebuilds
//! its hashes from the bucket), and jobs run on both, each once.

use std::{collections::HashSet, net::SocketAddr};

use mediastore::{domain::JobStatus, repo::Repo};
use serde_json::json;

use super::{
    common::{garage::Garage, *},
    jobs::{all_ended, probe},
};

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_uploads_renditions_and_jobs() {
    let Some(garage) = tokio::task::block_in_place(Garage::single) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _db) = test_database(dir.path()).await;
    // The schema first, so the two servers do not race to make it.
    let repo = Repo::connect(&db_url).await.unwrap();
    let spools = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut flags = garage.flags("replicas/");
    flags.extend(["--job-workers", "4", "--job-poll-ms", "100"].map(String::from));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let servers: Vec<ServerProcess> = (0..2)
        .map(|i| start_process(spools[i].path(), &db_url, &flags))
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let mut a = connect(addrs[0]).await;
    let mut b = connect(addrs[1]).await;

    // Uploaded through one, read through the other.
    let big = content("replicated", 11 * MIB + 9);
    let media = upload(&mut a, header("big.bin", big.len()), &big)
        .await
        .unwrap()
        .media
        .unwrap();
    let (_, back) = read(&mut b, &media.id, 0, 0).await.unwrap();
    assert_eq!(back, big);
    let (_, part) = read(&mut b, &media.id, -100, 0).await.unwrap();
    assert_eq!(part, &big[big.len() - 100..]);

    // Rendered by one; the other finds it cached (rows and bytes shared).
    rendered_then_cached(&mut a, &mut b, 1200, 900).await;

    // A resumable upload started on one and finished on the other.
    let data = content("resumed across replicas", 9 * MIB + 77);
    let mut ua = uploads(addrs[0]).await;
    let mut ub = uploads(addrs[1]).await;
    let session = start_upload(&mut ua, header("resumed.bin", data.len())).await;
    let cut = 7 * MIB + 3;
    let held = send_pieces(&mut ua, vec![piece(&session.id, 0, &data[..cut], false)])
        .await
        .unwrap();
    assert_eq!(held.committed_size, cut as u64);
    assert_eq!(
        query_upload(&mut ub, &session.id)
            .await
            .unwrap()
            .committed_size,
        cut as u64
    );
    let done = send_pieces(&mut ub, vec![piece(&session.id, cut, &data[cut..], true)])
        .await
        .unwrap();
    let resumed = done.media.unwrap();
    assert_eq!(resumed.blake3, blake3_hex(&data));
    let (_, back) = read(&mut a, &resumed.id, 0, 0).await.unwrap();
    assert_eq!(back, data);

    // Jobs on both replicas, each run once.
    let batch: Vec<_> = (0..400)
        .map(|i| probe(json!({ "n": i, "sleep_ms": 5 })))
        .collect();
    let ids: Vec<_> = repo
        .insert_jobs(&batch)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    let mut workers = HashSet::new();
    for j in all_ended(&repo, &ids).await {
        assert_eq!(j.status, JobStatus::Succeeded, "{j:?}");
        assert_eq!(j.attempts, 1, "ran more than once: {j:?}");
        workers.insert(j.lease_owner.clone().unwrap());
    }
    assert_eq!(workers.len(), 2, "both replicas ran jobs: {workers:?}");
}
