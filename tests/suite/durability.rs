//! Crash safety: SIGKILL the server process during concurrent uploads,
//! restart it, and check what survived.
//!
//! Every upload acknowledged before the kill must be listed and read back
//! with its hash. Nothing partial may be listed: each listed media is one
//! whose client had sent all of its bytes (an upload committed in the
//! instant between the commit and the acknowledgement reaching the client
//! is legitimately listed without having been acknowledged). Staged files
//! left by the kill are removed at start-up.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::common::*;
use bytes::Bytes;
use mediastore::pb::v1::UploadMediaRequest;

const CLIENTS: usize = 20;
const CHUNK: usize = 256 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_twenty_uploads_loses_nothing_acknowledged() {
    // 1-3 MiB, sent in 256 KiB chunks with pauses, so that at any moment
    // some uploads are mid-stream.
    kill_during_uploads(|c, round| MIB * (1 + (c + round) % 3) + c, 2 * CLIENTS).await;
}

/// Small uploads are stored inline in the database: those acknowledged
/// survive the kill as files do (sizes around the 64 KiB inline size,
/// and files just over it, in one chunk each).
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_small_uploads_loses_nothing_acknowledged() {
    kill_during_uploads(
        |c, round| match (c + round) % 4 {
            0 => 100 + c,
            1 => 4096,
            2 => 64 * 1024,
            _ => 64 * 1024 + 1 + c,
        },
        20 * CLIENTS,
    )
    .await;
}

/// Runs `CLIENTS` clients uploading bytes of `len(client, round)` until
/// `acks` uploads are acknowledged, kills the server, restarts it, and
/// checks what survived.
async fn kill_during_uploads(len: fn(usize, usize) -> usize, acks: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _db) = test_database(dir.path()).await;
    let mut server = start_process(dir.path(), &db_url, &[]);
    let client = connect(server.addr).await;

    // hash -> size of every upload whose bytes were all sent, and the ids
    // of every acknowledged upload.
    let fully_sent: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let mut client = client.clone();
        let fully_sent = Arc::clone(&fully_sent);
        let acked = Arc::clone(&acked);
        tasks.push(tokio::spawn(async move {
            for round in 0.. {
                let len = len(c, round);
                let data = content(&format!("kill-{c}-{round}"), len);
                let hash = blake3_hex(&data);
                let (tx, rx) = tokio::sync::mpsc::channel::<UploadMediaRequest>(2);
                let sender = {
                    let fully_sent = Arc::clone(&fully_sent);
                    let hash = hash.clone();
                    tokio::spawn(async move {
                        let h = header(&format!("k{c}-{round}.bin"), len);
                        tx.send(head(h)).await?;
                        for piece in data.chunks(CHUNK) {
                            tokio::time::sleep(Duration::from_millis(3)).await;
                            tx.send(chunk(Bytes::copy_from_slice(piece))).await?;
                        }
                        fully_sent.lock().unwrap().insert(hash, len);
                        Ok::<_, tokio::sync::mpsc::error::SendError<UploadMediaRequest>>(())
                    })
                };
                let res =
                    upload_raw(&mut client, tokio_stream::wrappers::ReceiverStream::new(rx)).await;
                sender.abort();
                match res {
                    Ok(r) => {
                        let m = r.media.unwrap();
                        assert_eq!(m.blake3, hash);
                        acked.lock().unwrap().insert(m.id, hash);
                    }
                    Err(_) => return,
                }
            }
        }));
    }

    // Let a good number of uploads complete, then kill mid-flight.
    eventually("some uploads are acknowledged", || {
        acked.lock().unwrap().len() >= acks
    })
    .await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let fully_sent = fully_sent.lock().unwrap().clone();
    assert!(acked.len() >= acks);

    // Leave an extra staged file too, so the clean-up is always exercised.
    std::fs::write(dir.path().join("tmp").join("leftover.part"), b"partial").unwrap();
    let staged_before = count_files(&dir.path().join("tmp"));

    let server = start_process(dir.path(), &db_url, &[]);
    let mut client = connect(server.addr).await;
    let listed = list_all(&mut client).await;
    assert_eq!(
        count_files(&dir.path().join("tmp")),
        0,
        "of {staged_before} staged files, some remain"
    );

    let listed_ids: HashSet<&str> = listed.iter().map(|m| m.id.as_str()).collect();
    for (id, hash) in &acked {
        assert!(
            listed_ids.contains(id.as_str()),
            "acknowledged upload {id} ({hash}) was lost"
        );
    }
    for m in &listed {
        let size = fully_sent
            .get(&m.blake3)
            .unwrap_or_else(|| panic!("media {} lists bytes no client finished sending", m.id));
        assert_eq!(m.size_bytes as usize, *size);
        let (_, bytes) = read(&mut client, &m.id, 0, 0).await.unwrap();
        assert_eq!(
            blake3_hex(&bytes),
            m.blake3,
            "media {} reads back wrong",
            m.id
        );
    }
    eprintln!(
        "acknowledged {}, fully sent {}, listed after restart {}, staged files cleaned {}",
        acked.len(),
        fully_sent.len(),
        listed.len(),
        staged_before
    );
}
