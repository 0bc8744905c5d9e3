//! What one tenant can learn of another's bytes: nothing. Tenant B
//! uploads and deletes bytes tenant A holds, and bytes nobody holds, by
//! `DeleteMedia`, `BatchDeleteMedia` and a recursive `DeleteFolder`; every
//! field of every answer is the same for the two, A's bytes stay readable
//! and right, and only the bytes nobody references any more leave the
//! store (after the answers, by the reaper, and never by GC for A's).

use mediastore::pb::v1 as pb;

use crate::{
    common::*,
    tenancy::{Tenant, tenant},
};

/// A small image (inline in the database) and a larger file (a blob file)
/// for one seed; the image gets a rendition.
fn bytes_of(seed: u32) -> (Vec<u8>, Vec<u8>) {
    (
        encoded(image::ImageFormat::Png, 4 + seed, 3),
        content(&format!("privacy-{seed}"), 300 * 1024),
    )
}

/// Uploads `data` into `folder` (the root when empty); the upload's answer.
async fn put(t: &mut Tenant, folder: &str, name: &str, data: &[u8]) -> pb::UploadMediaResponse {
    let mut h = header(name, data.len());
    h.parent_folder_id = folder.into();
    upload(&mut t.media, h, data).await.unwrap()
}

/// Uploads both files of a seed into `folder`, renders the image once;
/// the answers' `deduplicated` and the ids.
async fn put_both(t: &mut Tenant, folder: &str, seed: u32) -> (Vec<bool>, Vec<String>) {
    let (small, large) = bytes_of(seed);
    let (mut dedup, mut ids) = (Vec::new(), Vec::new());
    for (name, data) in [("small.png", &small), ("large.bin", &large)] {
        let up = put(t, folder, name, data).await;
        dedup.push(up.deduplicated);
        ids.push(up.media.unwrap().id);
    }
    let (_, cached, _) = thumbnail(t, &ids[0]).await;
    assert!(!cached, "a rendition is cached per tenant");
    (dedup, ids)
}

/// Deletes media `id` of `t`; the answer.
async fn delete(t: &mut Tenant, id: &str) -> pb::DeleteMediaResponse {
    let req = pb::DeleteMediaRequest {
        media_id: id.into(),
        force: false,
    };
    t.media.delete_media(req).await.unwrap().into_inner()
}

/// The 2-pixel-wide rendition of the image `id`: what `rendition` answers.
async fn thumbnail(t: &mut Tenant, id: &str) -> (pb::Rendition, bool, Vec<u8>) {
    let req = pb::GetRenditionRequest {
        media_id: id.into(),
        width: 2,
        ..Default::default()
    };
    rendition(&mut t.media, req).await.unwrap()
}

/// Waits until nothing is staged: the copies of bytes another tenant
/// holds, which after the answer get the MD5 pass new bytes get, are
/// discarded then.
async fn staging_empties(s: &TestServer) {
    let tmp = s.dir.path().join("tmp");
    for _ in 0..200 {
        if std::fs::read_dir(&tmp).unwrap().count() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("staged copies left in {}", tmp.display());
}

/// Tenant A with the bytes of seed 1 (which B will upload too).
async fn a_holds_seed_one(s: &TestServer) -> (Tenant, Vec<String>) {
    let mut a = tenant(s, "holder").await;
    let (_, ids) = put_both(&mut a, "", 1).await;
    (a, ids)
}

/// A's media still read back whole, with their BLAKE3 right, once every
/// blob B's deletes left unreferenced has gone; and GC keeps them.
async fn assert_a_intact(s: &TestServer, a: &mut Tenant, ids: &[String]) {
    let (small, large) = bytes_of(1);
    admin(s)
        .await
        .collect_garbage(pb::CollectGarbageRequest {
            min_age: Some(prost_types::Duration::default()),
        })
        .await
        .unwrap();
    for (id, data) in ids.iter().zip([small, large]) {
        let (first, bytes) = read(&mut a.media, id, 0, 0).await.unwrap();
        let m = first.media.unwrap();
        assert!(bytes == data, "A's media {id} reads back whole");
        assert_eq!(m.blake3, blake3_hex(&data));
        assert_eq!(blake3_hex(&bytes), blake3_hex(&data));
        assert!(s.has_blob(&m.blake3).await);
    }
}

/// Only seed 1's bytes (A's two and the rendition of A's image) are
/// stored: B's fresh bytes and renditions went.
async fn assert_only_a_left(s: &TestServer) {
    let (small, large) = bytes_of(2);
    assert!(!s.has_blob(&blake3_hex(&small)).await);
    assert!(!s.has_blob(&blake3_hex(&large)).await);
    assert_eq!(s.stored_blobs().await, 3, "A's two files and its rendition");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_bytes_another_tenant_holds_answers_as_for_bytes_nobody_holds() {
    let s = TestServer::spawn().await;
    let (mut a, a_ids) = a_holds_seed_one(&s).await;
    let mut b = tenant(&s, "prober").await;
    let (held_dedup, held) = put_both(&mut b, "", 1).await;
    let (fresh_dedup, fresh) = put_both(&mut b, "", 2).await;
    assert_eq!(held_dedup, fresh_dedup);
    assert_eq!(held_dedup, [false, false]);
    staging_empties(&s).await;

    let mut answers = Vec::new();
    for id in held.iter().chain(&fresh) {
        answers.push(delete(&mut b, id).await);
    }
    assert_eq!(answers[..2], answers[2..], "held and fresh answer alike");
    assert!(answers.iter().all(|g| g.blob_removed));
    assert_only_a_left(&s).await;
    assert_a_intact(&s, &mut a, &a_ids).await;
    assert_storage_sound(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_own_second_copy_is_what_blob_removed_speaks_of() {
    let s = TestServer::spawn().await;
    let (mut a, a_ids) = a_holds_seed_one(&s).await;
    let mut b = tenant(&s, "prober").await;
    let (small, _) = bytes_of(1);
    let first = put(&mut b, "", "one.png", &small).await;
    let second = put(&mut b, "", "two.png", &small).await;
    assert_eq!((first.deduplicated, second.deduplicated), (false, true));
    let mut removed = Vec::new();
    for up in [first, second] {
        let gone = delete(&mut b, &up.media.unwrap().id).await;
        removed.push(gone.blob_removed);
    }
    assert_eq!(removed, [false, true], "B's own other copy, then none");
    assert_a_intact(&s, &mut a, &a_ids).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_deletes_count_alike_for_held_and_fresh_bytes() {
    let s = TestServer::spawn().await;
    let (mut a, a_ids) = a_holds_seed_one(&s).await;
    let mut b = tenant(&s, "prober").await;
    let (_, held) = put_both(&mut b, "", 1).await;
    let (_, fresh) = put_both(&mut b, "", 2).await;
    let mut answers = Vec::new();
    for ids in [held, fresh] {
        let done = b
            .media
            .batch_delete_media(pb::BatchDeleteMediaRequest {
                media_ids: ids,
                force: false,
            })
            .await
            .unwrap()
            .into_inner();
        answers.push(done);
    }
    assert_eq!(answers[0], answers[1], "held and fresh answer alike");
    assert_eq!(
        (
            answers[0].deleted_media_count,
            answers[0].removed_blob_count
        ),
        (2, 3),
        "two contents and the image's rendition"
    );
    assert_only_a_left(&s).await;
    assert_a_intact(&s, &mut a, &a_ids).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn folder_deletes_count_alike_for_held_and_fresh_bytes() {
    let s = TestServer::spawn().await;
    let (mut a, a_ids) = a_holds_seed_one(&s).await;
    let mut b = tenant(&s, "prober").await;
    let mut answers = Vec::new();
    for (name, seed) in [("held", 1), ("fresh", 2)] {
        let top = b
            .folders
            .create_folder(pb::CreateFolderRequest {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .folder
            .unwrap();
        let inner = b
            .folders
            .create_folder(pb::CreateFolderRequest {
                name: "inner".into(),
                parent_folder_id: top.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .folder
            .unwrap();
        put_both(&mut b, &inner.id, seed).await;
        let done = b
            .folders
            .delete_folder(pb::DeleteFolderRequest {
                folder_id: top.id,
                force: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        answers.push(done);
    }
    assert_eq!(answers[0], answers[1], "held and fresh answer alike");
    assert_eq!(
        (
            answers[0].deleted_folder_count,
            answers[0].deleted_media_count,
            answers[0].removed_blob_count
        ),
        (2, 2, 3)
    );
    assert_only_a_left(&s).await;
    assert_a_intact(&s, &mut a, &a_ids).await;
}

/// The name `tenant`'s copy of `data` is stored under with
/// `--dedupe-scope tenant`.
fn scoped_name(tenant: &str, data: &[u8]) -> String {
    use mediastore::domain::{ContentHash, DedupeScope, TenantId};
    DedupeScope::Tenant
        .blob_name(
            TenantId(tenant.parse().unwrap()),
            &ContentHash::from(blake3::hash(data)),
        )
        .to_hex()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_tenant_scope_no_two_tenants_share_a_blob() {
    let s =
        TestServer::spawn_with(|c| c.dedupe_scope = mediastore::domain::DedupeScope::Tenant).await;
    let mut a = tenant(&s, "holder").await;
    let mut b = tenant(&s, "other").await;
    let (a_dedup, a_ids) = put_both(&mut a, "", 1).await;
    let (b_dedup, b_ids) = put_both(&mut b, "", 1).await;
    assert_eq!((a_dedup, b_dedup), (vec![false, false], vec![false, false]));
    assert_eq!(
        s.stored_blobs().await,
        6,
        "each tenant's two files and rendition"
    );
    let (small, large) = bytes_of(1);
    let mut thumbs = Vec::new();
    for (t, ids) in [(&mut a, &a_ids), (&mut b, &b_ids)] {
        for (id, data) in ids.iter().zip([&small, &large]) {
            let (first, bytes) = read(&mut t.media, id, 0, 0).await.unwrap();
            assert!(bytes == *data, "media {id} reads back whole");
            // The API reports the content's BLAKE3, whatever the name.
            assert_eq!(first.media.unwrap().blake3, blake3_hex(data));
            assert!(s.has_blob(&scoped_name(&t.id, data)).await);
            assert!(!s.has_blob(&blake3_hex(data)).await);
        }
        let (r, cached, bytes) = thumbnail(t, &ids[0]).await;
        assert!(cached);
        assert_eq!(r.blake3, blake3_hex(&bytes));
        assert!(s.has_blob(&scoped_name(&t.id, &bytes)).await);
        thumbs.push(bytes);
    }
    assert_eq!(thumbs[0], thumbs[1], "the same rendition, stored twice");
    // Within a tenant the bytes are still shared.
    let again = put(&mut a, "", "again.bin", &large).await;
    assert!(again.deduplicated);
    assert_eq!(s.stored_blobs().await, 6);
    // The scrub checks each copy against its BLAKE3, not its name.
    assert_storage_sound(&s).await;

    for id in &b_ids {
        assert!(delete(&mut b, id).await.blob_removed);
    }
    assert_eq!(s.stored_blobs().await, 3, "A's two files and its rendition");
    assert_a_intact_scoped(&s, &mut a, &a_ids).await;

    // A copy whose bytes changed is found, by its BLAKE3.
    let path = s.blob_path(&scoped_name(&a.id, &large));
    std::fs::write(&path, b"not the bytes").unwrap();
    let report = s.library.scrub(|_| Ok(())).await.unwrap();
    assert_eq!(
        report
            .corrupt
            .iter()
            .map(|h| h.to_hex())
            .collect::<Vec<_>>(),
        [scoped_name(&a.id, &large)]
    );
}

/// A's media read back whole after GC, under tenant-scoped names.
async fn assert_a_intact_scoped(s: &TestServer, a: &mut Tenant, ids: &[String]) {
    let gc = s
        .library
        .collect_garbage(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(gc.blobs, 0, "{gc:?}");
    let (small, large) = bytes_of(1);
    for (id, data) in ids.iter().zip([small, large]) {
        let (_, bytes) = read(&mut a.media, id, 0, 0).await.unwrap();
        assert!(bytes == data, "A's media {id} reads back whole");
    }
}
