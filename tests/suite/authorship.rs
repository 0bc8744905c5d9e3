//! Who made what: the key's name and role on media and folders, the
//! caller's project id, and a listing filter for each.

use mediastore::pb::v1::{
    self as pb, folder_service_client::FolderServiceClient,
    media_service_client::MediaServiceClient,
};
use tonic::Code;

use crate::common::*;

/// A media client acting through a new key of the default tenant.
async fn as_key(s: &TestServer, name: &str, role: &str) -> MediaServiceClient<Channel> {
    let scopes = ["media:read", "media:write", "uploads:write"];
    let secret = new_key(s.addr, "", name, role, &scopes).await;
    MediaServiceClient::new(channel_with(s.addr, Bearer::key(&secret)).await)
}

async fn put(
    client: &mut MediaServiceClient<Channel>,
    name: &str,
    project: &str,
    public: bool,
) -> pb::Media {
    let mut h = header(name, 1);
    h.project_id = project.into();
    h.public = public;
    upload(client, h, b"x").await.unwrap().media.unwrap()
}

async fn ids(client: &mut MediaServiceClient<Channel>, filter: pb::MediaFilter) -> Vec<String> {
    let mut ids: Vec<String> = client
        .list_media(pb::ListMediaRequest {
            filter: Some(filter),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .media
        .into_iter()
        .map(|m| m.id)
        .collect();
    ids.sort();
    ids
}

fn sorted(v: &[&pb::Media]) -> Vec<String> {
    let mut ids: Vec<String> = v.iter().map(|m| m.id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn media_record_their_makers_and_project_and_list_by_each() {
    let s = TestServer::spawn().await;
    let mut editor = as_key(&s, "editor-key", "editor").await;
    let mut robot = as_key(&s, "import-bot", "service").await;
    let a = put(&mut editor, "a.txt", "spring", true).await;
    let b = put(&mut editor, "b.txt", "autumn", false).await;
    let c = put(&mut robot, "c.txt", "spring", false).await;
    assert_eq!(
        (a.created_by.as_str(), a.created_role.as_str()),
        ("editor-key", "editor")
    );
    assert_eq!(
        (c.created_by.as_str(), c.created_role.as_str()),
        ("import-bot", "service")
    );
    assert_eq!(a.project_id, "spring");

    let mut all = s.client.clone();
    assert_eq!(
        ids(
            &mut all,
            pb::MediaFilter {
                created_by: vec!["editor-key".into()],
                ..Default::default()
            }
        )
        .await,
        sorted(&[&a, &b])
    );
    assert_eq!(
        ids(
            &mut all,
            pb::MediaFilter {
                created_roles: vec!["service".into()],
                ..Default::default()
            }
        )
        .await,
        sorted(&[&c])
    );
    assert_eq!(
        ids(
            &mut all,
            pb::MediaFilter {
                project_ids: vec!["spring".into()],
                ..Default::default()
            }
        )
        .await,
        sorted(&[&a, &c])
    );
    assert_eq!(
        ids(
            &mut all,
            pb::MediaFilter {
                public: Some(true),
                ..Default::default()
            }
        )
        .await,
        sorted(&[&a])
    );
    assert_eq!(
        ids(
            &mut all,
            pb::MediaFilter {
                public: Some(false),
                project_ids: vec!["spring".into(), "autumn".into()],
                created_by: vec!["editor-key".into()],
                ..Default::default()
            }
        )
        .await,
        sorted(&[&b])
    );

    // An update by another key records it as the editor, and can move the
    // media to another project.
    let updated = robot
        .update_media(pb::UpdateMediaRequest {
            media: Some(pb::Media {
                id: b.id.clone(),
                project_id: " spring ".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["project_id".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .media
        .unwrap();
    assert_eq!(updated.project_id, "spring");
    assert_eq!(updated.updated_by, "import-bot");
    assert_eq!(updated.created_by, "editor-key");
    assert_eq!(
        ids(
            &mut all,
            pb::MediaFilter {
                project_ids: vec!["spring".into()],
                ..Default::default()
            }
        )
        .await,
        sorted(&[&a, &b, &c])
    );

    // Bad values: too long, control characters, too many.
    let mut h = header("bad.txt", 1);
    h.project_id = "p".repeat(201);
    let err = upload(&mut editor, h, b"x").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    for filter in [
        pb::MediaFilter {
            project_ids: vec!["a\u{1}b".into()],
            ..Default::default()
        },
        pb::MediaFilter {
            created_by: vec!["x".into(); 101],
            ..Default::default()
        },
    ] {
        let err = all
            .list_media(pb::ListMediaRequest {
                filter: Some(filter),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn folders_record_who_made_and_last_changed_them() {
    let s = TestServer::spawn().await;
    let secret = new_key(s.addr, "", "curator", "editor", &["folders:write"]).await;
    let mut curator = FolderServiceClient::new(channel_with(s.addr, Bearer::key(&secret)).await);
    let made = curator
        .create_folder(pb::CreateFolderRequest {
            name: "albums".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    assert_eq!(
        (
            made.created_by.as_str(),
            made.updated_by.as_str(),
            made.created_role.as_str()
        ),
        ("curator", "curator", "editor")
    );
    let mut admin = FolderServiceClient::new(channel(s.addr).await);
    let renamed = admin
        .rename_folder(pb::RenameFolderRequest {
            folder_id: made.id.clone(),
            name: "albums-2026".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    assert_eq!(renamed.created_by, "curator");
    assert_eq!(renamed.updated_by, "admin");
    let got = admin
        .get_folder(pb::GetFolderRequest {
            lookup: Some(pb::get_folder_request::Lookup::FolderId(made.id)),
        })
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    assert_eq!(
        (got.created_by, got.updated_by),
        ("curator".into(), "admin".into())
    );
}
