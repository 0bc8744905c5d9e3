//! Media management through the generated client: batch reads, metadata
//! edits with field masks, moves, batch deletes and bindings.

use crate::common::{TestServer, bad_field, channel, content, header, upload};
use mediastore::pb::v1::{
    self as pb, binding_service_client::BindingServiceClient,
    folder_service_client::FolderServiceClient,
};
use tonic::Code;

async fn put(s: &mut TestServer, name: &str) -> pb::Media {
    let data = content(name, 64);
    upload(&mut s.client, header(name, data.len()), &data)
        .await
        .unwrap()
        .media
        .unwrap()
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

#[tokio::test]
async fn batch_get_keeps_the_order_and_names_the_missing() {
    let mut s = TestServer::spawn().await;
    let a = put(&mut s, "a.bin").await;
    let b = put(&mut s, "b.bin").await;
    let missing = uuid::Uuid::now_v7().to_string();
    let got = s
        .client
        .batch_get_media(pb::BatchGetMediaRequest {
            media_ids: vec![b.id.clone(), missing.clone(), a.id.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = got.media.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [b.id.as_str(), a.id.as_str()]);
    assert_eq!(got.not_found_media_ids, [missing]);

    let err = s
        .client
        .batch_get_media(pb::BatchGetMediaRequest { media_ids: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = s
        .client
        .batch_get_media(pb::BatchGetMediaRequest {
            media_ids: vec![a.id.clone(), "nope".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(bad_field(&err).as_deref(), Some("media_ids[1]"));
    let err = s
        .client
        .batch_get_media(pb::BatchGetMediaRequest {
            media_ids: vec![a.id.clone(); 1001],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn update_changes_only_the_masked_fields() {
    let mut s = TestServer::spawn().await;
    let m = put(&mut s, "photo.jpg").await;
    let mut change = m.clone();
    change.title = "Beach".into();
    change.tags = vec!["sea".into(), "sun".into(), "sea".into()];
    change.author = "Ann".into();
    change.filename = "ignored.txt".into();
    change.public = true;
    let updated = s
        .client
        .update_media(pb::UpdateMediaRequest {
            media: Some(change.clone()),
            update_mask: mask(&["title", "tags", "public"]),
        })
        .await
        .unwrap()
        .into_inner()
        .media
        .unwrap();
    assert_eq!(updated.title, "Beach");
    assert_eq!(updated.tags, ["sea", "sun"]);
    assert!(updated.public);
    assert_eq!(updated.author, "", "author was not in the mask");
    assert_eq!(updated.filename, "photo.jpg");
    let micros = |t: &Option<prost_types::Timestamp>| {
        let t = t.as_ref().unwrap();
        t.seconds * 1_000_000 + i64::from(t.nanos / 1000)
    };
    assert!(micros(&updated.update_time) > micros(&m.update_time));
    let listed = s
        .client
        .list_media(pb::ListMediaRequest {
            filter: Some(pb::MediaFilter {
                tags_all: vec!["sun".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.media.len(), 1, "the new tags are searchable");
    // Text search follows the edit: the new title and tags are found (and
    // the filename, which did not change).
    for (query, found) in [("beac", 1), ("SUN", 1), ("photo", 1), ("nothing", 0)] {
        let listed = s
            .client
            .list_media(pb::ListMediaRequest {
                filter: Some(pb::MediaFilter {
                    query: query.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.media.len(), found, "query {query:?}");
    }

    for (paths, field) in [
        (vec!["filename"], "update_mask.paths[0]"),
        (vec!["title", "nope"], "update_mask.paths[1]"),
    ] {
        let err = s
            .client
            .update_media(pb::UpdateMediaRequest {
                media: Some(change.clone()),
                update_mask: mask(&paths),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{paths:?}");
        assert_eq!(bad_field(&err).as_deref(), Some(field));
    }
    let err = s
        .client
        .update_media(pb::UpdateMediaRequest {
            media: Some(change.clone()),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_field(&err).as_deref(), Some("update_mask"));
    change.id = uuid::Uuid::now_v7().to_string();
    let err = s
        .client
        .update_media(pb::UpdateMediaRequest {
            media: Some(change),
            update_mask: mask(&["title"]),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn moves_go_to_live_folders_only() {
    let mut s = TestServer::spawn().await;
    let mut folders = FolderServiceClient::new(channel(s.addr).await);
    let dest = folders
        .create_folder(pb::CreateFolderRequest {
            parent_folder_id: String::new(),
            name: "dest".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    let a = put(&mut s, "a.bin").await;
    let b = put(&mut s, "b.bin").await;
    let moved = s
        .client
        .move_media(pb::MoveMediaRequest {
            media_id: a.id.clone(),
            parent_folder_id: dest.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .media
        .unwrap();
    assert_eq!(moved.parent_folder_id, dest.id);
    let missing = uuid::Uuid::now_v7().to_string();
    let res = s
        .client
        .batch_move_media(pb::BatchMoveMediaRequest {
            media_ids: vec![a.id.clone(), b.id.clone(), missing.clone()],
            parent_folder_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (res.moved_media_count, res.not_found_media_ids),
        (2, vec![missing.clone()])
    );
    let err = s
        .client
        .move_media(pb::MoveMediaRequest {
            media_id: a.id.clone(),
            parent_folder_id: missing.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = s
        .client
        .move_media(pb::MoveMediaRequest {
            media_id: missing,
            parent_folder_id: dest.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn batch_delete_counts_and_respects_bindings() {
    let mut s = TestServer::spawn().await;
    let mut bindings = BindingServiceClient::new(channel(s.addr).await);
    let a = put(&mut s, "a.bin").await;
    let b = put(&mut s, "b.bin").await;
    let c = put(&mut s, "c.bin").await;
    bindings
        .add_binding(pb::AddBindingRequest {
            media_id: c.id.clone(),
            module: "shop.product".into(),
            object_id: "p-1".into(),
        })
        .await
        .unwrap();
    let missing = uuid::Uuid::now_v7().to_string();
    let err = s
        .client
        .batch_delete_media(pb::BatchDeleteMediaRequest {
            media_ids: vec![a.id.clone(), c.id.clone()],
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("shop.product/p-1"),
        "{}",
        err.message()
    );
    assert_eq!(
        crate::common::list_all(&mut s.client).await.len(),
        3,
        "nothing was deleted"
    );

    let res = s
        .client
        .batch_delete_media(pb::BatchDeleteMediaRequest {
            media_ids: vec![a.id.clone(), b.id.clone(), missing.clone()],
            force: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((res.deleted_media_count, res.removed_blob_count), (2, 2));
    assert_eq!(res.not_found_media_ids, [missing]);
    let res = s
        .client
        .batch_delete_media(pb::BatchDeleteMediaRequest {
            media_ids: vec![c.id.clone()],
            force: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.deleted_media_count, 1);
    assert!(crate::common::list_all(&mut s.client).await.is_empty());
    assert_eq!(s.stored_blobs().await, 0);
}

#[tokio::test]
async fn bindings_are_idempotent_listed_and_removed() {
    let mut s = TestServer::spawn().await;
    let mut bindings = BindingServiceClient::new(channel(s.addr).await);
    let a = put(&mut s, "a.bin").await;
    let b = put(&mut s, "b.bin").await;
    let add = |media: &str, module: &str, object: &str| pb::AddBindingRequest {
        media_id: media.into(),
        module: module.into(),
        object_id: object.into(),
    };
    let first = bindings
        .add_binding(add(&a.id, "blog.post", "1"))
        .await
        .unwrap()
        .into_inner();
    let again = bindings
        .add_binding(add(&a.id, "blog.post", "1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.binding, again.binding, "adding twice changes nothing");
    for (m, module, o) in [
        (&a.id, "blog.post", "2"),
        (&b.id, "blog.post", "1"),
        (&a.id, "shop", "9"),
    ] {
        bindings.add_binding(add(m, module, o)).await.unwrap();
    }
    let list = |media: &str, module: &str, object: &str, size: i32, token: String| {
        pb::ListBindingsRequest {
            media_id: media.into(),
            module: module.into(),
            object_id: object.into(),
            page_size: size,
            page_token: token,
        }
    };
    let of_a = bindings
        .list_bindings(list(&a.id, "", "", 0, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(of_a.bindings.len(), 3);
    let of_post1 = bindings
        .list_bindings(list("", "blog.post", "1", 0, String::new()))
        .await
        .unwrap()
        .into_inner();
    let mut media: Vec<String> = of_post1
        .bindings
        .iter()
        .map(|b| b.media_id.clone())
        .collect();
    media.sort();
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(media, want);
    // Paging over the module: 3 bindings, 2 per page.
    let p1 = bindings
        .list_bindings(list("", "blog.post", "", 2, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p1.bindings.len(), 2);
    let p2 = bindings
        .list_bindings(list("", "blog.post", "", 2, p1.next_page_token.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((p2.bindings.len(), p2.next_page_token.as_str()), (1, ""));
    let err = bindings
        .list_bindings(list("", "shop", "", 2, p1.next_page_token))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "a token from another listing"
    );

    let remove = pb::RemoveBindingRequest {
        media_id: a.id.clone(),
        module: "shop".into(),
        object_id: "9".into(),
    };
    bindings.remove_binding(remove.clone()).await.unwrap();
    assert_eq!(
        bindings.remove_binding(remove).await.unwrap_err().code(),
        Code::NotFound
    );

    let unknown = uuid::Uuid::now_v7().to_string();
    let err = bindings
        .add_binding(add(&unknown, "blog.post", "1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    for (req, field) in [
        (add(&a.id, "", "1"), "module"),
        (add(&a.id, "m", ""), "object_id"),
        (add(&a.id, &"m".repeat(101), "1"), "module"),
        (add("bad", "m", "1"), "media_id"),
    ] {
        let err = bindings.add_binding(req).await.unwrap_err();
        assert_eq!(bad_field(&err).as_deref(), Some(field));
    }
    let err = bindings
        .list_bindings(list("", "", "", 0, String::new()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}
