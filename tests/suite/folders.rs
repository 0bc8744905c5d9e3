//! FolderService through the generated client: the tree's rules, path
//! look-ups, counters, and recursive deletes large and small.

use crate::common::{TestServer, bad_field, channel, content, header, reason, seed_rows, upload};
use mediastore::pb::v1::{
    self as pb, CreateFolderRequest, DeleteFolderRequest, GetFolderRequest, GetFolderTreeRequest,
    GetMediaRequest, MoveFolderRequest, RenameFolderRequest,
    binding_service_client::BindingServiceClient, folder_service_client::FolderServiceClient,
    get_folder_request::Lookup,
};
use tonic::Code;

use crate::common::Channel;

type Folders = FolderServiceClient<Channel>;

async fn folders(s: &TestServer) -> Folders {
    FolderServiceClient::new(channel(s.addr).await)
}

async fn create(f: &mut Folders, parent: &str, name: &str) -> Result<pb::Folder, tonic::Status> {
    f.create_folder(CreateFolderRequest {
        parent_folder_id: parent.into(),
        name: name.into(),
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner().folder.unwrap())
}

async fn rename(f: &mut Folders, id: String, name: String) -> Result<pb::Folder, tonic::Status> {
    f.rename_folder(RenameFolderRequest {
        folder_id: id,
        name,
    })
    .await
    .map(|r| r.into_inner().folder.unwrap())
}

async fn move_to(
    f: &mut Folders,
    id: String,
    new_parent_id: String,
) -> Result<pb::Folder, tonic::Status> {
    f.move_folder(MoveFolderRequest {
        folder_id: id,
        parent_folder_id: new_parent_id,
    })
    .await
    .map(|r| r.into_inner().folder.unwrap())
}

async fn by_path(f: &mut Folders, path: &str) -> Result<pb::Folder, tonic::Status> {
    f.get_folder(GetFolderRequest {
        lookup: Some(Lookup::Path(path.into())),
    })
    .await
    .map(|r| r.into_inner().folder.unwrap())
}

async fn by_id(f: &mut Folders, id: &str) -> Result<pb::Folder, tonic::Status> {
    f.get_folder(GetFolderRequest {
        lookup: Some(Lookup::FolderId(id.into())),
    })
    .await
    .map(|r| r.into_inner().folder.unwrap())
}

async fn root(f: &mut Folders) -> pb::Folder {
    f.get_root_folder(pb::GetRootFolderRequest {})
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap()
}

async fn tree(
    f: &mut Folders,
    top: &str,
    depth: i32,
) -> Result<Vec<pb::FolderTreeNode>, tonic::Status> {
    f.get_folder_tree(GetFolderTreeRequest {
        folder_id: top.into(),
        max_depth: depth,
    })
    .await
    .map(|r| r.into_inner().nodes)
}

async fn delete(
    f: &mut Folders,
    id: &str,
    force: bool,
) -> Result<pb::DeleteFolderResponse, tonic::Status> {
    f.delete_folder(DeleteFolderRequest {
        folder_id: id.into(),
        force,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

#[tokio::test]
async fn root_exists_once_and_refuses_changes() {
    let s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let r = root(&mut f).await;
    assert_eq!(
        (r.path.as_str(), r.depth, r.parent_folder_id.as_str()),
        ("/", 0, "")
    );
    assert_eq!(by_path(&mut f, "/").await.unwrap().id, r.id);
    let a = create(&mut f, "", "a").await.unwrap();

    let err = rename(&mut f, r.id.clone(), "x".into()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = move_to(&mut f, r.id.clone(), a.id.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let err = delete(&mut f, &r.id, true).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(root(&mut f).await.id, r.id);
}

#[tokio::test]
async fn folders_are_found_by_id_and_normalized_path() {
    let s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let photos = create(&mut f, "", "photos").await.unwrap();
    let y = create(&mut f, &photos.id, "2024").await.unwrap();
    assert_eq!(y.path, "/photos/2024/");
    assert_eq!(y.depth, 2);
    assert_eq!(y.parent_folder_id, photos.id);
    for p in ["/photos/2024/", "/photos/2024"] {
        assert_eq!(by_path(&mut f, p).await.unwrap().id, y.id, "{p}");
    }
    assert_eq!(by_id(&mut f, &y.id).await.unwrap().path, y.path);

    // NFC: a decomposed accent names the same folder as the precomposed one.
    let e = create(&mut f, "", "e\u{301}te\u{301}").await.unwrap();
    assert_eq!(e.name, "\u{e9}t\u{e9}");
    assert_eq!(by_path(&mut f, "/\u{e9}t\u{e9}/").await.unwrap().id, e.id);
    let err = create(&mut f, "", "\u{e9}t\u{e9}").await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    // Case-sensitive: "Photos" is another folder.
    create(&mut f, "", "Photos").await.unwrap();
}

#[tokio::test]
async fn unknown_and_malformed_folders_are_refused() {
    let s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let a = create(&mut f, "", "a").await.unwrap();
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        by_id(&mut f, &unknown).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        by_path(&mut f, "/a/nope/").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        create(&mut f, &unknown, "x").await.unwrap_err().code(),
        Code::NotFound
    );
    let err = rename(&mut f, unknown.clone(), "x".into())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = move_to(&mut f, a.id.clone(), unknown.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        delete(&mut f, &unknown, false).await.unwrap_err().code(),
        Code::NotFound
    );
    let err = tree(&mut f, &unknown, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let err = by_id(&mut f, "not-a-uuid").await.unwrap_err();
    assert_eq!(
        (err.code(), bad_field(&err).as_deref()),
        (Code::InvalidArgument, Some("folder_id"))
    );
    for bad in ["photos", "", "/a//b/", "/a/../"] {
        let err = by_path(&mut f, bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        assert_eq!(bad_field(&err).as_deref(), Some("path"), "{bad:?}");
    }
    let err = f
        .get_folder(GetFolderRequest { lookup: None })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    for depth in [-1, 257] {
        let err = tree(&mut f, "", depth).await.unwrap_err();
        assert_eq!(bad_field(&err).as_deref(), Some("max_depth"), "{depth}");
    }
}

#[tokio::test]
async fn invalid_names_are_refused_by_each_rule() {
    let s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let a = create(&mut f, "", "a").await.unwrap();
    let long = "x".repeat(256);
    for bad in [
        "",
        "a/b",
        ".",
        "..",
        "tab\there",
        "nul\0",
        " lead",
        "trail ",
        long.as_str(),
    ] {
        let err = create(&mut f, "", bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        assert_eq!(bad_field(&err).as_deref(), Some("name"), "{bad:?}");
        let err = rename(&mut f, a.id.clone(), bad.into()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "rename {bad:?}");
    }
    create(&mut f, "", &"x".repeat(255)).await.unwrap();
    let tree = tree(&mut f, "", 0).await.unwrap();
    assert_eq!(tree.len(), 3, "root, a and the 255-byte name only");
}

#[tokio::test]
async fn sibling_names_clash_on_create_rename_and_move() {
    let s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let a = create(&mut f, "", "a").await.unwrap();
    let b = create(&mut f, "", "b").await.unwrap();
    let a_in_b = create(&mut f, &b.id, "a").await.unwrap();

    let err = create(&mut f, "", "a").await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = rename(&mut f, b.id.clone(), "a".into()).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = move_to(&mut f, a_in_b.id.clone(), String::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    // Nothing moved.
    assert_eq!(by_id(&mut f, &a_in_b.id).await.unwrap().path, "/b/a/");
    assert_eq!(by_id(&mut f, &a.id).await.unwrap().path, "/a/");
}

#[tokio::test]
async fn moves_into_itself_or_below_are_refused() {
    let s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let a = create(&mut f, "", "a").await.unwrap();
    let b = create(&mut f, &a.id, "b").await.unwrap();
    let c = create(&mut f, &b.id, "c").await.unwrap();
    for target in [&a.id, &b.id, &c.id] {
        let err = move_to(&mut f, a.id.clone(), target.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    }
    assert_eq!(by_id(&mut f, &c.id).await.unwrap().path, "/a/b/c/");
}

#[tokio::test]
async fn renames_and_moves_carry_the_subtree() {
    let s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let a = create(&mut f, "", "a").await.unwrap();
    let b = create(&mut f, &a.id, "b").await.unwrap();
    let c = create(&mut f, &b.id, "c").await.unwrap();
    let other = create(&mut f, "", "other").await.unwrap();
    // A sibling whose name starts like "a" must not be touched.
    let ab = create(&mut f, "", "ab").await.unwrap();

    let renamed = rename(&mut f, a.id.clone(), "z".into()).await.unwrap();
    assert_eq!(renamed.path, "/z/");
    assert_eq!(by_id(&mut f, &c.id).await.unwrap().path, "/z/b/c/");
    assert_eq!(by_id(&mut f, &ab.id).await.unwrap().path, "/ab/");
    assert_eq!(
        by_path(&mut f, "/a/b/").await.unwrap_err().code(),
        Code::NotFound
    );

    let moved = move_to(&mut f, b.id.clone(), other.id.clone())
        .await
        .unwrap();
    assert_eq!((moved.path.as_str(), moved.depth), ("/other/b/", 2));
    assert_eq!(moved.parent_folder_id, other.id);
    let c2 = by_id(&mut f, &c.id).await.unwrap();
    assert_eq!((c2.path.as_str(), c2.depth), ("/other/b/c/", 3));
    // And back up to the root.
    let up = move_to(&mut f, c.id.clone(), String::new()).await.unwrap();
    assert_eq!((up.path.as_str(), up.depth), ("/c/", 1));
}

#[tokio::test]
async fn a_deep_chain_is_found_by_path_and_in_the_tree() {
    let s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let mut parent = String::new();
    let mut path = String::from("/");
    for i in 0..200 {
        let name = format!("level{i}");
        parent = create(&mut f, &parent, &name).await.unwrap().id;
        path.push_str(&name);
        path.push('/');
    }
    let deepest = by_path(&mut f, &path).await.unwrap();
    assert_eq!((deepest.id.as_str(), deepest.depth), (parent.as_str(), 200));

    let all = tree(&mut f, "", 0).await.unwrap();
    assert_eq!(all.len(), 201);
    for (i, node) in all.iter().enumerate() {
        assert_eq!(node.level as usize, i);
        let want = if i == 0 {
            String::new()
        } else {
            format!("level{}", i - 1)
        };
        assert_eq!(node.name, want);
    }
    let top5 = tree(&mut f, "", 5).await.unwrap();
    assert_eq!(top5.len(), 6);
    let second = &all[2].id;
    let sub = tree(&mut f, second, 3).await.unwrap();
    assert_eq!(sub.len(), 4);
    assert_eq!(sub[0].level, 0);
    assert_eq!(sub[0].id, *second);
    assert_eq!(sub[1].parent_folder_id, *second);
}

#[tokio::test]
async fn counters_follow_uploads_moves_and_deletes() {
    let mut s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let a = create(&mut f, "", "a").await.unwrap();
    let b = create(&mut f, "", "b").await.unwrap();
    // A tree read now is cached; every change below must show through it.
    let warm = tree(&mut f, "", 1).await.unwrap();
    assert_eq!(warm.len(), 3);
    let mut ids = Vec::new();
    for (i, len) in [100usize, 250].into_iter().enumerate() {
        let mut h = header(&format!("f{i}.bin"), len);
        h.parent_folder_id = a.id.clone();
        ids.push(
            upload(&mut s.client, h, &content(&format!("c{i}"), len))
                .await
                .unwrap()
                .media
                .unwrap()
                .id,
        );
    }
    let got = by_id(&mut f, &a.id).await.unwrap();
    assert_eq!((got.media_count, got.size_bytes), (2, 350));
    let t = tree(&mut f, &a.id, 0).await.unwrap();
    let top = &t[0];
    assert_eq!(
        (top.media_count, top.size_bytes),
        (2, 350),
        "the tree after uploads"
    );
    s.client
        .move_media(pb::MoveMediaRequest {
            media_id: ids[1].clone(),
            parent_folder_id: b.id.clone(),
        })
        .await
        .unwrap();
    let t = tree(&mut f, "", 1).await.unwrap();
    let count = |id: &str| {
        let n = t.iter().find(|n| n.id == id).unwrap();
        (n.media_count, n.size_bytes)
    };
    assert_eq!(count(&a.id), (1, 100));
    assert_eq!(count(&b.id), (1, 250));
    s.client
        .delete_media(pb::DeleteMediaRequest {
            media_id: ids[0].clone(),
            force: false,
        })
        .await
        .unwrap();
    let got = by_id(&mut f, &a.id).await.unwrap();
    assert_eq!((got.media_count, got.size_bytes), (0, 0));
    let t = tree(&mut f, "", 1).await.unwrap();
    let a_node = t.iter().find(|n| n.id == a.id).unwrap();
    assert_eq!(a_node.media_count, 0, "the tree after a delete");
    create(&mut f, &b.id, "new").await.unwrap();
    assert_eq!(
        tree(&mut f, "", 0).await.unwrap().len(),
        4,
        "the tree after a create"
    );
}

#[tokio::test]
async fn delete_removes_the_subtree_and_frees_unshared_blobs() {
    let mut s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let a = create(&mut f, "", "a").await.unwrap();
    let b = create(&mut f, &a.id, "b").await.unwrap();
    let keep = create(&mut f, "", "keep").await.unwrap();
    let shared = content("shared", 5000);
    let own = content("own", 6000);
    let up = |folder: &str, name: &str| {
        let mut h = header(name, 0);
        h.size_bytes = None;
        h.parent_folder_id = folder.to_string();
        h
    };
    let in_a = upload(&mut s.client, up(&a.id, "own.bin"), &own)
        .await
        .unwrap()
        .media
        .unwrap();
    let in_b = upload(&mut s.client, up(&b.id, "s1.bin"), &shared)
        .await
        .unwrap()
        .media
        .unwrap();
    let outside = upload(&mut s.client, up(&keep.id, "s2.bin"), &shared)
        .await
        .unwrap()
        .media
        .unwrap();
    let blobs_before = s.stored_blobs().await;

    let done = delete(&mut f, &a.id, false).await.unwrap();
    assert_eq!(
        (
            done.deleted_folder_count,
            done.deleted_media_count,
            done.removed_blob_count
        ),
        (2, 2, 1)
    );
    assert_eq!(s.stored_blobs().await, blobs_before - 1);
    for id in [&in_a.id, &in_b.id] {
        let err = s
            .client
            .get_media(GetMediaRequest {
                media_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
    assert_eq!(
        crate::common::read(&mut s.client, &outside.id, 0, 0)
            .await
            .unwrap()
            .1,
        shared
    );
    assert_eq!(
        by_id(&mut f, &b.id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(tree(&mut f, "", 0).await.unwrap().len(), 2);
    // The name is free at once.
    create(&mut f, "", "a").await.unwrap();
}

#[tokio::test]
async fn bound_media_block_deletes_unless_forced() {
    let mut s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let mut bindings = BindingServiceClient::new(channel(s.addr).await);
    let a = create(&mut f, "", "a").await.unwrap();
    let sub = create(&mut f, &a.id, "sub").await.unwrap();
    let mut h = header("bound.bin", 10);
    h.parent_folder_id = sub.id.clone();
    let m = upload(&mut s.client, h, &content("bound", 10))
        .await
        .unwrap()
        .media
        .unwrap();
    bindings
        .add_binding(pb::AddBindingRequest {
            media_id: m.id.clone(),
            module: "blog.post".into(),
            object_id: "42".into(),
        })
        .await
        .unwrap();

    let err = s
        .client
        .delete_media(pb::DeleteMediaRequest {
            media_id: m.id.clone(),
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("blog.post/42"), "{}", err.message());
    let err = delete(&mut f, &a.id, false).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("blog.post/42"), "{}", err.message());
    assert_eq!(by_id(&mut f, &sub.id).await.unwrap().media_count, 1);

    let done = delete(&mut f, &a.id, true).await.unwrap();
    assert_eq!(
        (done.deleted_folder_count, done.deleted_media_count),
        (2, 1)
    );
    let left = bindings
        .list_bindings(pb::ListBindingsRequest {
            module: "blog.post".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(left.bindings.is_empty());
}

/// Seeds `n` media rows straight through the repository, alternating
/// between `folders` and between the blobs of `templates`.
async fn seed(s: &TestServer, templates: &[mediastore::domain::Media], folders: &[&str], n: usize) {
    use mediastore::domain::{FolderId, MediaId};
    let folders: Vec<FolderId> = folders
        .iter()
        .map(|f| FolderId(f.parse().unwrap()))
        .collect();
    let rows: Vec<mediastore::domain::Media> = (0..n)
        .map(|i| {
            let mut m = templates[i % templates.len()].clone();
            m.id = MediaId::new();
            m.folder = folders[i % folders.len()];
            m.created_at += i as i64;
            m
        })
        .collect();
    seed_rows(s, &rows).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_100k_media_goes_in_batches_while_uploads_continue() {
    use mediastore::domain::{MediaId, TenantId};
    let mut s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let big = create(&mut f, "", "big").await.unwrap();
    let sub = create(&mut f, &big.id, "sub").await.unwrap();
    let own = content("own", 3000);
    let shared = content("shared", 4000);
    let mut h = header("own.bin", own.len());
    h.parent_folder_id = big.id.clone();
    let own_m = upload(&mut s.client, h, &own).await.unwrap().media.unwrap();
    let mut h = header("shared.bin", shared.len());
    h.parent_folder_id = sub.id.clone();
    let shared_m = upload(&mut s.client, h, &shared)
        .await
        .unwrap()
        .media
        .unwrap();
    let outside = upload(&mut s.client, header("outside.bin", shared.len()), &shared)
        .await
        .unwrap()
        .media
        .unwrap();
    let mut templates = Vec::new();
    for id in [&own_m.id, &shared_m.id] {
        let id = MediaId(id.parse().unwrap());
        templates.push(s.library.get(TenantId::DEFAULT, id).await.unwrap());
    }
    seed(&s, &templates, &[&big.id, &sub.id], 100_000).await;
    // As autovacuum would after such a load; without it PostgreSQL plans
    // for the empty table it last saw.
    s.library.repo().analyze().await.unwrap();
    assert_eq!(by_id(&mut f, &big.id).await.unwrap().media_count, 50_001);
    let blobs_before = s.stored_blobs().await;

    // Another client uploads to the root the whole time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let uploader = {
        let stop = std::sync::Arc::clone(&stop);
        let mut client = crate::common::connect(s.addr).await;
        tokio::spawn(async move {
            let mut done = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let data = content(&format!("during{done}"), 1000);
                upload(&mut client, header("during.bin", data.len()), &data)
                    .await
                    .unwrap();
                done += 1;
            }
            done
        })
    };
    let res = delete(&mut f, &big.id, false).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Release);
    let uploaded = uploader.await.unwrap();
    assert!(uploaded > 0, "no upload completed during the delete");
    assert_eq!(
        (
            res.deleted_folder_count,
            res.deleted_media_count,
            res.removed_blob_count
        ),
        (2, 100_002, 1)
    );
    assert_eq!(s.stored_blobs().await, blobs_before - 1 + uploaded);
    assert_eq!(
        crate::common::read(&mut s.client, &outside.id, 0, 0)
            .await
            .unwrap()
            .1,
        shared
    );
    let left = s
        .library
        .repo()
        .blob_refcount(&templates[1].blob)
        .await
        .unwrap();
    assert_eq!(
        left,
        Some(1),
        "only the media outside holds the shared blob"
    );
    assert_eq!(
        s.library
            .repo()
            .blob_refcount(&templates[0].blob)
            .await
            .unwrap(),
        None
    );
    assert_eq!(tree(&mut f, "", 0).await.unwrap().len(), 1);
}

async fn list_children(
    f: &mut Folders,
    parent: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListFoldersResponse, tonic::Status> {
    f.list_folders(pb::ListFoldersRequest {
        parent_folder_id: parent.into(),
        page_size,
        page_token: page_token.into(),
    })
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread")]
async fn list_folders_pages_one_level_by_name() {
    let mut s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let mut made = Vec::new();
    for name in ["delta", "alpha", "charlie", "bravo", "echo"] {
        made.push(create(&mut f, "", name).await.unwrap());
    }
    let charlie = made[2].id.clone();
    let inner = create(&mut f, &charlie, "inner").await.unwrap();
    let mut h = header("in-charlie.bin", 3);
    h.parent_folder_id = charlie.clone();
    upload(&mut s.client, h, b"abc").await.unwrap();

    // The root's children, two at a time, in name order; a grandchild is
    // not among them.
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = list_children(&mut f, "", 2, &token).await.unwrap();
        assert!(page.folders.len() <= 2);
        pages += 1;
        for folder in &page.folders {
            assert_eq!(folder.parent_folder_id, root(&mut f).await.id);
            if folder.id == charlie {
                assert_eq!((folder.media_count, folder.size_bytes), (1, 3));
            }
            names.push(folder.name.clone());
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 5);
    assert_eq!(pages, 3);
    // The root by its id gives the same; one level below, the grandchild.
    let r = root(&mut f).await;
    assert_eq!(
        list_children(&mut f, &r.id, 0, "")
            .await
            .unwrap()
            .folders
            .len(),
        5
    );
    let below = list_children(&mut f, &charlie, 0, "").await.unwrap();
    assert_eq!(below.folders.len(), 1);
    assert_eq!(below.folders[0].id, inner.id);
    // A deleted folder is no longer listed.
    delete(&mut f, &made[0].id, false).await.unwrap();
    assert_eq!(
        list_children(&mut f, "", 0, "")
            .await
            .unwrap()
            .folders
            .len(),
        4
    );

    // Bad requests.
    let first = list_children(&mut f, "", 1, "").await.unwrap();
    let err = list_children(&mut f, &charlie, 1, &first.next_page_token)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::InvalidArgument, "PAGE_TOKEN_INVALID")
    );
    let err = list_children(&mut f, &uuid::Uuid::now_v7().to_string(), 0, "")
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::NotFound, "FOLDER_NOT_FOUND")
    );
    let err = list_children(&mut f, "nope", 0, "").await.unwrap_err();
    assert_eq!(bad_field(&err).as_deref(), Some("parent_folder_id"));
    let err = list_children(&mut f, "", 1001, "").await.unwrap_err();
    assert_eq!(bad_field(&err).as_deref(), Some("page_size"));
}

/// The whole tree is served from memory, and a change made here shows at
/// once; a change through another replica (here a second library on the
/// same database) shows within seconds, found by a background read while
/// the cached tree goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn the_cached_tree_shows_changes_here_at_once_and_elsewhere_soon() {
    use std::sync::Arc;
    let s = TestServer::spawn().await;
    let mut f = folders(&s).await;
    let names = |nodes: Vec<pb::FolderTreeNode>| -> Vec<String> {
        nodes.into_iter().map(|n| n.name).collect()
    };
    assert_eq!(names(tree(&mut f, "", 0).await.unwrap()), [""]);
    create(&mut f, "", "here").await.unwrap();
    assert_eq!(names(tree(&mut f, "", 0).await.unwrap()), ["", "here"]);

    let other = mediastore::library::Library::start(
        mediastore::repo::Repo::connect(&s.config.database_url())
            .await
            .unwrap(),
        Arc::new(mediastore::blob::fs::FsBlobStore::open(s.dir.path()).unwrap()),
        mediastore::library::Limits::new(1 << 30),
    )
    .await
    .unwrap();
    let by = mediastore::domain::Principal::unauthenticated();
    let name = mediastore::domain::FolderName::parse("name", "elsewhere").unwrap();
    other.create_folder(&by, None, &name, false).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let seen = names(tree(&mut f, "", 0).await.unwrap());
        if seen == ["", "elsewhere", "here"] {
            break;
        }
        assert_eq!(seen, ["", "here"], "the old tree serves meanwhile");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the other replica's folder never showed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A subtree is cut from the same cached tree.
    let here = by_path(&mut f, "/here").await.unwrap();
    create(&mut f, &here.id, "below").await.unwrap();
    assert_eq!(
        names(tree(&mut f, &here.id, 0).await.unwrap()),
        ["here", "below"]
    );
    assert_eq!(
        names(tree(&mut f, "", 1).await.unwrap()),
        ["", "elsewhere", "here"]
    );
}
