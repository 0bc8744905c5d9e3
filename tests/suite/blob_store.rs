//! The blob-store suite: every store (the local directory, and an
//! S3-compatible one on a real Garage node) passes the same checks of the
//! `BlobStore` contract the library relies on.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use mediastore::{
    blob::{BlobStore, fs::FsBlobStore, read_exact_at, s3::S3BlobStore},
    domain::ContentHash,
};

use super::common::{content, garage::Garage};

/// A store under test, and what keeps it alive.
struct Under {
    store: Arc<dyn BlobStore>,
    _dir: tempfile::TempDir,
    _garage: Option<Garage>,
}

fn local() -> Under {
    let dir = tempfile::tempdir().unwrap();
    Under {
        store: Arc::new(FsBlobStore::open(dir.path()).unwrap()),
        _dir: dir,
        _garage: None,
    }
}

/// A store on a fresh Garage node; `None` where Garage is not installed.
fn on_garage() -> Option<Under> {
    let garage = Garage::single()?;
    let dir = tempfile::tempdir().unwrap();
    let store = S3BlobStore::open(
        &garage.settings("suite/"),
        dir.path(),
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    Some(Under {
        store: Arc::new(store),
        _dir: dir,
        _garage: Some(garage),
    })
}

/// Runs `check` on the blocking pool (where the library calls stores)
/// against the local store, then against Garage.
async fn on_every_store(check: fn(&dyn BlobStore)) {
    for under in [Some(local()), tokio::task::block_in_place(on_garage)]
        .into_iter()
        .flatten()
    {
        let store = Arc::clone(&under.store);
        tokio::task::spawn_blocking(move || check(store.as_ref()))
            .await
            .unwrap();
    }
}

fn hash_of(data: &[u8]) -> ContentHash {
    ContentHash::from(blake3::hash(data))
}

/// Stages and publishes `data`; returns its name.
fn put(store: &dyn BlobStore, data: &[u8]) -> ContentHash {
    let mut staged = store.stage().unwrap();
    for piece in data.chunks(1 << 20) {
        staged.write(piece).unwrap();
    }
    staged.sync().unwrap();
    assert_eq!(staged.len(), data.len() as u64);
    let hash = hash_of(data);
    store.publish(vec![(staged, hash)]).unwrap();
    hash
}

fn read_all(store: &dyn BlobStore, hash: &ContentHash) -> Vec<u8> {
    let reader = store.open(hash).unwrap();
    let mut buf = vec![0u8; reader.len() as usize];
    read_exact_at(|b, at| reader.read_at(b, at), &mut buf, 0).unwrap();
    buf
}

#[tokio::test(flavor = "multi_thread")]
async fn published_blobs_read_back_whole_and_in_ranges() {
    on_every_store(|store| {
        // One small object, and one sent as a multipart upload (Garage's
        // store uses 5 MiB parts in the tests).
        for len in [100_000, 13 * 1024 * 1024 + 17] {
            let data = content(&format!("blob {len}"), len);
            let hash = put(store, &data);
            assert!(store.exists(&hash).unwrap());
            assert_eq!(read_all(store, &hash), data);
            let reader = store.open(&hash).unwrap();
            assert_eq!(reader.len(), len as u64);
            let at = len as u64 / 3;
            assert_eq!(
                reader.read_bytes(at, 1000).unwrap(),
                &data[at as usize..at as usize + 1000]
            );
            let err = reader.read_bytes(len as u64 - 10, 11).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
            let mut tail = [0u8; 64];
            let n = reader.read_at(&mut tail, len as u64 - 5).unwrap();
            assert_eq!(&tail[..n], &data[len - 5..]);
            assert_eq!(reader.read_at(&mut tail, len as u64).unwrap(), 0);
            // Listed in its shard, with its size.
            let listed = store.list_shard(hash.0[0]).unwrap();
            let found = listed.iter().find(|b| b.hash == hash).unwrap();
            assert_eq!(found.size, len as u64);
            assert!(found.changed > SystemTime::now() - Duration::from_secs(600));
            store.delete(&hash).unwrap();
            assert!(!store.exists(&hash).unwrap());
            assert_eq!(
                store.open(&hash).unwrap_err().kind(),
                std::io::ErrorKind::NotFound
            );
            // Deleting what is absent is no error.
            store.delete(&hash).unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_publishes_together_and_a_name_can_be_published_again() {
    on_every_store(|store| {
        let blobs: Vec<Vec<u8>> = (0..6)
            .map(|i| content(&format!("batch {i}"), 70_000 + i))
            .collect();
        let batch = blobs
            .iter()
            .map(|d| {
                let mut s = store.stage().unwrap();
                s.write(d).unwrap();
                (s, hash_of(d))
            })
            .collect();
        store.publish(batch).unwrap();
        for d in &blobs {
            assert_eq!(read_all(store, &hash_of(d)), *d);
        }
        // A leftover under a name is replaced by a new publish of it, and
        // the barrier of a copy leaves the stored blob as it was.
        let again = put(store, &blobs[0]);
        let mut copy = store.stage().unwrap();
        copy.write(&blobs[0]).unwrap();
        let back = store.barrier_as_published(vec![(copy, again)]).unwrap();
        drop(back);
        assert_eq!(read_all(store, &again), blobs[0]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quarantined_blob_is_gone_from_its_name() {
    on_every_store(|store| {
        let data = content("quarantine", 80_000);
        let hash = put(store, &data);
        store.quarantine(&hash).unwrap();
        assert!(!store.exists(&hash).unwrap());
        // The name is free for a correct copy.
        put(store, &data);
        assert_eq!(read_all(store, &hash), data);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_file_grows_survives_reopening_and_is_cut_to_what_was_recorded() {
    on_every_store(|store| {
        let id = uuid::Uuid::now_v7().to_string();
        let data = content("resumable", 12 * 1024 * 1024 + 4321);
        store.create_upload(&id).unwrap();
        assert!(store.upload_files().unwrap().iter().any(|(u, _)| *u == id));
        let mut file = store.open_upload(&id, 0).unwrap();
        assert_eq!(file.len(), 0);
        // 7 MiB in 1 MiB pieces (past one 5 MiB part), synced.
        let first = 7 * 1024 * 1024;
        for piece in data[..first].chunks(1 << 20) {
            file.append(piece).unwrap();
        }
        file.sync().unwrap();
        // More bytes, synced from another thread, then 3 bytes never
        // recorded.
        let second = first + 2 * 1024 * 1024;
        file.append(&data[first..second]).unwrap();
        let sync = file.sync_handle().unwrap();
        std::thread::spawn(sync).join().unwrap().unwrap();
        file.append(&data[second..second + 3]).unwrap();
        file.sync().unwrap();
        let mut back = vec![0u8; second];
        read_exact_at(|b, at| file.read_at(b, at), &mut back, 0).unwrap();
        assert_eq!(back, data[..second]);
        drop(file);
        // Reopened holding what was recorded: the 3 bytes are gone.
        let file = store.open_upload(&id, second as u64).unwrap();
        assert_eq!(file.len(), second as u64);
        let mut back = vec![0u8; second];
        read_exact_at(|b, at| file.read_at(b, at), &mut back, 0).unwrap();
        assert_eq!(back, data[..second]);
        // Cut inside the first 5 MiB (a closed part on S3): reopened at
        // 3 MiB.
        let cut = 3 * 1024 * 1024;
        drop(file);
        let mut file = store.open_upload(&id, cut as u64).unwrap();
        assert_eq!(file.len(), cut as u64);
        file.append(&data[cut..]).unwrap();
        file.sync().unwrap();
        drop(file);
        let file = store.open_upload(&id, data.len() as u64).unwrap();
        let hash = hash_of(&data);
        store.publish(vec![(file.into_staged(), hash)]).unwrap();
        assert_eq!(read_all(store, &hash), data);
        store.remove_upload(&id).unwrap();
        assert!(!store.upload_files().unwrap().iter().any(|(u, _)| *u == id));
        assert_eq!(
            store.open_upload(&id, 0).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_file_shorter_than_recorded_is_refused() {
    on_every_store(|store| {
        let id = uuid::Uuid::now_v7().to_string();
        store.create_upload(&id).unwrap();
        let mut file = store.open_upload(&id, 0).unwrap();
        file.append(b"0123456789").unwrap();
        file.sync().unwrap();
        drop(file);
        assert_eq!(
            store.open_upload(&id, 11).unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
        // Small uploads finish too (no part of their own).
        let file = store.open_upload(&id, 10).unwrap();
        let hash = hash_of(b"0123456789");
        store.publish(vec![(file.into_staged(), hash)]).unwrap();
        assert_eq!(read_all(store, &hash), b"0123456789");
        store.remove_upload(&id).unwrap();
        for bad in ["", "../x", "a/b"] {
            assert_eq!(
                store.create_upload(bad).unwrap_err().kind(),
                std::io::ErrorKind::InvalidInput
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_leave_nothing_and_stale_staging_goes() {
    on_every_store(|store| {
        store.health_check().unwrap();
        for shard in 0..=255u8 {
            assert!(store.list_shard(shard).unwrap().is_empty());
        }
        // A staged blob dropped unpublished leaves nothing to clean.
        let mut s = store.stage().unwrap();
        s.write(b"abandoned").unwrap();
        drop(s);
        assert_eq!(store.clean_staging().unwrap(), 0);
        assert_eq!(
            store
                .remove_stale_staging(SystemTime::now() + Duration::from_secs(1))
                .unwrap(),
            0
        );
    })
    .await;
}
