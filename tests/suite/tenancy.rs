//! Tenant isolation: two tenants with identical folder trees and identical
//! bytes never see, count or change each other's objects, and nothing says
//! that the other holds the same bytes.

use mediastore::pb::v1::{
    self as pb, binding_service_client::BindingServiceClient,
    folder_service_client::FolderServiceClient, media_service_client::MediaServiceClient,
    upload_service_client::UploadServiceClient,
};
use tonic::Code;

use crate::common::*;

/// Clients of one tenant, through a key with every scope but `admin`.
pub(crate) struct Tenant {
    /// The tenant's id.
    pub(crate) id: String,
    pub(crate) media: MediaServiceClient<Channel>,
    pub(crate) folders: FolderServiceClient<Channel>,
    bindings: BindingServiceClient<Channel>,
    uploads: UploadServiceClient<Channel>,
}

pub(crate) async fn tenant(s: &TestServer, name: &str) -> Tenant {
    let t = new_tenant(s.addr, name).await;
    let scopes = [
        "media:read",
        "media:write",
        "media:delete",
        "folders:write",
        "folders:delete",
        "uploads:write",
    ];
    let key = new_key(s.addr, &t.id, &format!("{name}-app"), "app", &scopes).await;
    let ch = channel_with(s.addr, Bearer::key(&key)).await;
    Tenant {
        id: t.id,
        media: MediaServiceClient::new(ch.clone()).max_decoding_message_size(MAX_MESSAGE),
        folders: FolderServiceClient::new(ch.clone()),
        bindings: BindingServiceClient::new(ch.clone()),
        uploads: UploadServiceClient::new(ch),
    }
}

/// A 4x2 PNG, so renditions work.
fn png() -> Vec<u8> {
    encoded(image::ImageFormat::Png, 4, 2)
}

/// Creates /photos/ and uploads the PNG into it; returns (folder, media).
async fn populate(t: &mut Tenant) -> (pb::Folder, pb::UploadMediaResponse) {
    let folder = t
        .folders
        .create_folder(pb::CreateFolderRequest {
            name: "photos".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    let png = png();
    let mut h = header("red.png", png.len());
    h.parent_folder_id = folder.id.clone();
    h.title = "sunset".into();
    let up = upload(&mut t.media, h, &png).await.unwrap();
    (folder, up)
}

fn assert_not_found<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>) {
    match r {
        Err(e) => assert_eq!(e.code(), Code::NotFound, "{what}: {e:?}"),
        Ok(v) => panic!("{what} answered {v:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tenants_with_the_same_tree_and_bytes_never_meet() {
    let s = TestServer::spawn().await;
    let mut a = tenant(&s, "tenant-a").await;
    let mut b = tenant(&s, "tenant-b").await;
    let (a_folder, a_up) = populate(&mut a).await;
    let (b_folder, b_up) = populate(&mut b).await;
    let (a_media, b_media) = (a_up.media.unwrap(), b_up.media.unwrap());
    // The bytes are stored once, but B is not told that A holds them.
    assert_eq!(a_media.blake3, b_media.blake3);
    assert!(!a_up.deduplicated);
    assert!(!b_up.deduplicated, "B's first upload of bytes A holds");
    let png = png();
    let again = upload(&mut b.media, header("copy.png", png.len()), &png)
        .await
        .unwrap();
    assert!(again.deduplicated, "B's second upload of its own bytes");
    assert_eq!(s.stored_blobs().await, 1);
    assert_ne!(a_folder.id, b_folder.id);

    // Lists, searches, trees, paths: each sees its own.
    for (t, own) in [(&mut a, &a_media), (&mut b, &b_media)] {
        let listed = list_all(&mut t.media).await;
        assert!(listed.iter().any(|m| m.id == own.id));
        assert!(
            listed
                .iter()
                .all(|m| m.id != a_media.id || own.id == a_media.id)
        );
        assert!(
            listed
                .iter()
                .all(|m| m.id != b_media.id || own.id == b_media.id)
        );
        let found = t
            .media
            .list_media(pb::ListMediaRequest {
                filter: Some(pb::MediaFilter {
                    query: "sunset".into(),
                    ..Default::default()
                }),
                include_total_size: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.media.len(), 1);
        assert_eq!(found.media[0].id, own.id);
        assert_eq!(found.total_size, Some(1));
        let tree = t
            .folders
            .get_folder_tree(pb::GetFolderTreeRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(tree.nodes.len(), 2, "root and photos");
        let by_path = t
            .folders
            .get_folder(pb::GetFolderRequest {
                lookup: Some(pb::get_folder_request::Lookup::Path("/photos/".into())),
            })
            .await
            .unwrap()
            .into_inner()
            .folder
            .unwrap();
        assert_eq!(by_path.parent_folder_id, tree.nodes[0].id);
    }

    // B cannot reach any of A's objects: each answers NOT_FOUND, as a
    // missing one does.
    let id = a_media.id.clone();
    let get = b
        .media
        .get_media(pb::GetMediaRequest {
            media_id: id.clone(),
            ..Default::default()
        })
        .await;
    assert_not_found("GetMedia", get);
    let missing = b
        .media
        .get_media(pb::GetMediaRequest {
            media_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_not_found("ReadMedia", read(&mut b.media, &id, 0, 0).await);
    let rend = rendition(
        &mut b.media,
        pb::GetRenditionRequest {
            media_id: id.clone(),
            width: 2,
            ..Default::default()
        },
    )
    .await;
    assert_not_found("GetRendition", rend);
    let renditions = b
        .media
        .list_renditions(pb::ListRenditionsRequest {
            media_id: id.clone(),
        })
        .await;
    assert_not_found("ListRenditions", renditions);
    let batch = b
        .media
        .batch_get_media(pb::BatchGetMediaRequest {
            media_ids: vec![id.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(batch.media.is_empty());
    assert_eq!(batch.not_found_media_ids, std::slice::from_ref(&id));
    let update = b
        .media
        .update_media(pb::UpdateMediaRequest {
            media: Some(pb::Media {
                id: id.clone(),
                title: "mine now".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["title".into()],
            }),
        })
        .await;
    assert_not_found("UpdateMedia", update);
    let moved = b
        .media
        .move_media(pb::MoveMediaRequest {
            media_id: id.clone(),
            parent_folder_id: b_folder.id.clone(),
        })
        .await;
    assert_not_found("MoveMedia", moved);
    // Nor can B move its own media into A's folder.
    let into = b
        .media
        .move_media(pb::MoveMediaRequest {
            media_id: b_media.id.clone(),
            parent_folder_id: a_folder.id.clone(),
        })
        .await;
    assert_not_found("MoveMedia into A's folder", into);
    let deleted = b
        .media
        .delete_media(pb::DeleteMediaRequest {
            media_id: id.clone(),
            ..Default::default()
        })
        .await;
    assert_not_found("DeleteMedia", deleted);
    let batch_deleted = b
        .media
        .batch_delete_media(pb::BatchDeleteMediaRequest {
            media_ids: vec![id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch_deleted.not_found_media_ids, std::slice::from_ref(&id));
    let bound = b
        .bindings
        .add_binding(pb::AddBindingRequest {
            media_id: id.clone(),
            module: "cms".into(),
            object_id: "page-1".into(),
        })
        .await;
    assert_not_found("AddBinding", bound);
    let fid = a_folder.id.clone();
    let folder = b
        .folders
        .get_folder(pb::GetFolderRequest {
            lookup: Some(pb::get_folder_request::Lookup::FolderId(fid.clone())),
        })
        .await;
    assert_not_found("GetFolder", folder);
    let renamed = b
        .folders
        .rename_folder(pb::RenameFolderRequest {
            folder_id: fid.clone(),
            name: "x".into(),
        })
        .await;
    assert_not_found("RenameFolder", renamed);
    let moved = b
        .folders
        .move_folder(pb::MoveFolderRequest {
            folder_id: fid.clone(),
            parent_folder_id: String::new(),
        })
        .await;
    assert_not_found("MoveFolder", moved);
    let created = b
        .folders
        .create_folder(pb::CreateFolderRequest {
            parent_folder_id: fid.clone(),
            name: "inside".into(),
            ..Default::default()
        })
        .await;
    assert_not_found("CreateFolder in A's folder", created);
    let deleted = b
        .folders
        .delete_folder(pb::DeleteFolderRequest {
            folder_id: fid.clone(),
            force: true,
            ..Default::default()
        })
        .await;
    assert_not_found("DeleteFolder", deleted);
    let listed = b
        .folders
        .list_folders(pb::ListFoldersRequest {
            parent_folder_id: fid.clone(),
            ..Default::default()
        })
        .await;
    assert_not_found("ListFolders", listed);
    let mut h = header("into-a.png", png.len());
    h.parent_folder_id = fid.clone();
    assert_not_found(
        "UploadMedia into A's folder",
        upload(&mut b.media, h, &png).await,
    );

    // A resumable upload of A's is unknown to B.
    let started = a
        .uploads
        .start_upload(pb::StartUploadRequest {
            header: Some(header("r.bin", 4)),
        })
        .await
        .unwrap()
        .into_inner()
        .upload
        .unwrap();
    let queried = b
        .uploads
        .query_upload(pb::QueryUploadRequest {
            upload_id: started.id.clone(),
        })
        .await;
    assert_not_found("QueryUpload", queried);
    let cancelled = b
        .uploads
        .cancel_upload(pb::CancelUploadRequest {
            upload_id: started.id.clone(),
        })
        .await;
    assert_not_found("CancelUpload", cancelled);
    let written = b
        .uploads
        .write_upload(tokio_stream::iter(vec![pb::WriteUploadRequest {
            upload_id: started.id.clone(),
            write_offset: 0,
            data: bytes::Bytes::from_static(b"abcd"),
            finish_write: true,
        }]))
        .await;
    assert_not_found("WriteUpload", written);

    // B deleting its media and folders leaves A's intact, bytes included.
    b.folders
        .delete_folder(pb::DeleteFolderRequest {
            folder_id: b_folder.id.clone(),
            force: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, bytes) = read(&mut a.media, &id, 0, 0).await.unwrap();
    assert_eq!(bytes, png);
    let tree = a
        .folders
        .get_folder_tree(pb::GetFolderTreeRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tree.nodes.len(), 2);
    assert_eq!(tree.nodes[1].media_count, 1);
}

/// GetRendition of `media` at 2 pixels wide: whether it came from the
/// cache.
async fn rendered(t: &mut Tenant, media: &str) -> bool {
    let (r, cached, bytes) = rendition(
        &mut t.media,
        pb::GetRenditionRequest {
            media_id: media.into(),
            width: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.width, 2);
    assert!(!bytes.is_empty());
    cached
}

async fn renditions_listed(t: &mut Tenant, media: &str) -> usize {
    t.media
        .list_renditions(pb::ListRenditionsRequest {
            media_id: media.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .renditions
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_tenant_renders_and_caches_its_own_renditions_of_shared_bytes() {
    let s = TestServer::spawn().await;
    let mut a = tenant(&s, "alpha").await;
    let mut b = tenant(&s, "beta").await;
    let (_, a_up) = populate(&mut a).await;
    let a_id = a_up.media.unwrap().id;
    assert!(!rendered(&mut a, &a_id).await, "first request renders");
    assert!(rendered(&mut a, &a_id).await, "second comes from the cache");
    let renders = s.library.renders();

    // The same bytes in another tenant: nothing of alpha's rendition shows.
    let (_, b_up) = populate(&mut b).await;
    let b_id = b_up.media.unwrap().id;
    assert_eq!(renditions_listed(&mut b, &b_id).await, 0);
    let got = b
        .media
        .get_media(pb::GetMediaRequest {
            media_id: b_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .media
        .unwrap();
    assert!(got.renditions.is_empty(), "{:?}", got.renditions);
    assert!(!rendered(&mut b, &b_id).await, "beta renders its own");
    assert_eq!(s.library.renders(), renders + 1, "and really decodes");
    assert!(rendered(&mut b, &b_id).await);
    assert_eq!(renditions_listed(&mut b, &b_id).await, 1);
    // One copy of the rendition's bytes, like any identical bytes.
    let blobs = s.stored_blobs().await;

    // Alpha deletes its media; beta's renditions stay its own.
    a.media
        .delete_media(pb::DeleteMediaRequest {
            media_id: a_id.clone(),
            force: false,
        })
        .await
        .unwrap();
    assert!(rendered(&mut b, &b_id).await);
    assert_eq!(s.stored_blobs().await, blobs, "beta still holds both blobs");
    // Beta deletes its own: the source and the rendition bytes go.
    b.media
        .delete_media(pb::DeleteMediaRequest {
            media_id: b_id,
            force: false,
        })
        .await
        .unwrap();
    assert_eq!(s.stored_blobs().await, blobs - 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_that_no_longer_holds_shared_bytes_loses_its_renditions_of_them() {
    let s = TestServer::spawn().await;
    let mut a = tenant(&s, "alpha").await;
    let mut b = tenant(&s, "beta").await;
    let (_, a_up) = populate(&mut a).await;
    let a_id = a_up.media.unwrap().id;
    let (_, b_up) = populate(&mut b).await;
    let b_id = b_up.media.unwrap().id;
    rendered(&mut a, &a_id).await;
    rendered(&mut b, &b_id).await;
    let blobs = s.stored_blobs().await;
    assert_eq!(blobs, 2, "the source and one rendition, shared");

    // Alpha's media goes while beta keeps the bytes: alpha's rendition row
    // goes with it, so uploading the bytes again renders anew.
    a.media
        .delete_media(pb::DeleteMediaRequest {
            media_id: a_id,
            force: false,
        })
        .await
        .unwrap();
    assert_eq!(
        s.stored_blobs().await,
        2,
        "beta's rendition keeps the bytes"
    );
    let again = upload(&mut a.media, header("again.png", png().len()), &png())
        .await
        .unwrap()
        .media
        .unwrap();
    assert_eq!(renditions_listed(&mut a, &again.id).await, 0);
    assert!(!rendered(&mut a, &again.id).await);
}
