//! The blob-store suite: every store (the local directory, and an
//! S3-compatible one on a real Garage node) passes the same checks of the
//! `BlobStore` contract the library relies on.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use mediastore::{
    blob::{BlobStore, StagedBlob, fs::FsBlobStore, read_exact_at, s3::S3BlobStore},
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

/// Garage's store sends a blob larger than a part on while it is being
/// written (a multipart upload under a temporary key), completes it when
/// the upload ends (where reads find it), and copies it to its name when
/// published. Whatever becomes of that transfer (published, dropped, or
/// aborted underneath by another replica's garbage collection) nothing is
/// left in the bucket, and a broken one fails the upload.
#[tokio::test(flavor = "multi_thread")]
async fn large_blobs_are_sent_while_written_and_leave_nothing_behind() {
    let Some(garage) = tokio::task::block_in_place(Garage::single) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let part = garage.settings("ahead/").part_size;
    let open = |prefix: &str| {
        Arc::new(
            S3BlobStore::open(
                &garage.settings(prefix),
                dir.path(),
                tokio::runtime::Handle::current(),
            )
            .unwrap(),
        )
    };
    let store = open("ahead/");
    // A store whose prefix lies inside the first one's temporary objects:
    // what it publishes stands for a temporary object a killed replica
    // left behind.
    let inside = open("ahead/staging/");
    tokio::task::spawn_blocking(move || {
        let write = |staged: &mut Box<dyn StagedBlob>, data: &[u8]| {
            data.chunks(1 << 20)
                .try_for_each(|piece| staged.write(piece))
        };
        let gone = |store: &S3BlobStore| {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while store.leftovers().unwrap() != 0 {
                assert!(std::time::Instant::now() < deadline, "a transfer stayed");
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        let cut = 2 * part + 1;

        // Sent while written: the multipart upload is under way before the
        // upload ends; then the object is complete and read in place.
        let data = content("sent ahead", 3 * part + 12_345);
        let mut staged = store.stage().unwrap();
        write(&mut staged, &data[..cut]).unwrap();
        assert_eq!(store.leftovers().unwrap(), 1, "nothing was sent ahead");
        write(&mut staged, &data[cut..]).unwrap();
        staged.sync().unwrap();
        assert_eq!(staged.len(), data.len() as u64);
        let mut middle = vec![0; 1000];
        read_exact_at(
            |b, at| staged.read_at(b, at),
            &mut middle,
            part as u64 - 500,
        )
        .unwrap();
        assert_eq!(middle, &data[part - 500..part + 500]);
        let hash = hash_of(&data);
        store.publish(vec![(staged, hash)]).unwrap();
        assert_eq!(read_all(store.as_ref(), &hash), data);
        assert_eq!(store.leftovers().unwrap(), 0);

        // Exactly one part stays local (one PUT); exactly three parts end
        // on a whole last part; publishing without a sync finishes too.
        for len in [part, 3 * part] {
            let data = content("on a part", len);
            let mut staged = store.stage().unwrap();
            write(&mut staged, &data).unwrap();
            let hash = hash_of(&data);
            store.publish(vec![(staged, hash)]).unwrap();
            assert_eq!(read_all(store.as_ref(), &hash), data);
            assert_eq!(store.leftovers().unwrap(), 0);
        }

        // Dropped unpublished (a failed upload, or bytes already stored),
        // while sending and once complete: nothing stays.
        let mut staged = store.stage().unwrap();
        write(&mut staged, &content("dropped", cut)).unwrap();
        assert_eq!(store.leftovers().unwrap(), 1);
        drop(staged);
        gone(&store);
        let mut staged = store.stage().unwrap();
        write(&mut staged, &content("dropped complete", cut)).unwrap();
        staged.sync().unwrap();
        assert!(staged.write(b"late").is_err(), "a write after the end");
        assert_eq!(staged.len(), cut as u64);
        assert_eq!(store.leftovers().unwrap(), 1);
        drop(staged);
        gone(&store);

        // Begun before the grace period's start but still receiving parts
        // (a large file over a slow link): garbage collection leaves it.
        let data = content("slow", 7 * part + 5);
        let mut staged = store.stage().unwrap();
        write(&mut staged, &data[..part + 1]).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let since = SystemTime::now();
        std::thread::sleep(Duration::from_millis(1500));
        // Parts 2 to 6 and a byte of the seventh: filling the seventh
        // waits until fewer than four parts are in flight, so part 2, sent
        // after `since`, has landed when this returns (however slow the
        // machine).
        write(&mut staged, &data[part + 1..6 * part + 1]).unwrap();
        assert_eq!(store.remove_stale_staging(since).unwrap(), 0);
        write(&mut staged, &data[6 * part + 1..]).unwrap();
        let hash = hash_of(&data);
        store.publish(vec![(staged, hash)]).unwrap();
        assert_eq!(read_all(store.as_ref(), &hash), data);
        assert_eq!(store.leftovers().unwrap(), 0);

        // Aborted underneath, as garbage collection does to an upload that
        // received no part for its grace period: the upload fails (its
        // client sends it again), and nothing is stored or left.
        let data = content("aborted underneath", 4 * part + 99);
        let mut staged = store.stage().unwrap();
        write(&mut staged, &data[..cut]).unwrap();
        let far = SystemTime::now() + Duration::from_secs(3600);
        assert_eq!(store.remove_stale_staging(far).unwrap(), 1);
        let failed = write(&mut staged, &data[cut..]).and_then(|()| staged.sync());
        assert!(failed.is_err(), "an aborted transfer was acknowledged");
        assert!(staged.read_at(&mut [0; 10], 0).is_err());
        let hash = hash_of(&data);
        assert!(store.publish(vec![(staged, hash)]).is_err());
        assert!(!store.exists(&hash).unwrap());
        gone(&store);

        // A temporary object left behind goes with garbage collection once
        // older than the grace period, and not before.
        put(inside.as_ref(), &content("left behind", 1000));
        assert_eq!(store.leftovers().unwrap(), 1);
        let past = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(store.remove_stale_staging(past).unwrap(), 0);
        assert_eq!(store.remove_stale_staging(far).unwrap(), 1);
        assert_eq!(store.leftovers().unwrap(), 0);
    })
    .await
    .unwrap();
}
