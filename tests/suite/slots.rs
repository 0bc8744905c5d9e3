//! Slots `(resource, key)` and codes: uploads into a slot replace its
//! media atomically, reads by slot and by code, conflicts, listing.

use std::collections::HashSet;

use mediastore::pb::v1::{self as pb, binding_service_client::BindingServiceClient};
use tonic::Code;

use crate::common::*;

fn slot(resource: &str, key: &str) -> Option<pb::MediaSlot> {
    Some(pb::MediaSlot {
        resource: resource.into(),
        key: key.into(),
    })
}

fn into_slot(name: &str, len: usize, resource: &str, key: &str) -> pb::UploadHeader {
    pb::UploadHeader {
        slot: slot(resource, key),
        ..header(name, len)
    }
}

async fn get_by(
    s: &TestServer,
    slot: Option<pb::MediaSlot>,
    code: &str,
) -> Result<pb::Media, tonic::Status> {
    s.client
        .clone()
        .get_media(pb::GetMediaRequest {
            media_id: String::new(),
            slot,
            code: code.into(),
        })
        .await
        .map(|r| r.into_inner().media.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_uploads_into_one_slot_leave_one_media_and_no_orphan() {
    const UPLOADS: usize = 16;
    let s = TestServer::spawn().await;
    let mut tasks = Vec::new();
    for i in 0..UPLOADS {
        let mut client = s.client.clone();
        tasks.push(tokio::spawn(async move {
            // Both sides of the inline size: rows and files.
            let data = content(
                &format!("avatar-{i}"),
                if i % 2 == 0 { 3000 } else { 200_000 },
            );
            let h = into_slot(&format!("a{i}.bin"), data.len(), "user/42", "avatar");
            let m = upload(&mut client, h, &data).await.unwrap().media.unwrap();
            (m.id, m.blake3)
        }));
    }
    let mut made = Vec::new();
    for t in tasks {
        made.push(t.await.unwrap());
    }
    let held = get_by(&s, slot("user/42", "avatar"), "").await.unwrap();
    assert!(made.iter().any(|(id, _)| *id == held.id));
    assert_eq!(held.slot, slot("user/42", "avatar"));
    let mut client = s.client.clone();
    let listed = list_all(&mut client).await;
    assert_eq!(listed.len(), 1, "displaced media were left: {listed:?}");
    assert_eq!(listed[0].id, held.id);
    // Only the holder's bytes remain.
    assert_eq!(s.stored_blobs().await, 1);
    for (id, hash) in &made {
        if *id != held.id {
            assert!(
                !s.has_blob(hash).await,
                "the bytes of displaced {id} remain"
            );
        }
    }
    assert_storage_sound(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn media_are_read_by_slot_and_by_code() {
    let s = TestServer::spawn().await;
    let mut client = s.client.clone();
    let png = encoded(image::ImageFormat::Png, 40, 20);
    let h = pb::UploadHeader {
        slot: slot("product/7", ""),
        code: "SKU-7-main".into(),
        ..header("p.png", png.len())
    };
    let m = upload(&mut client, h, &png).await.unwrap().media.unwrap();
    assert_eq!(m.code, "SKU-7-main");
    assert_eq!(m.slot, slot("product/7", ""));
    assert_eq!(
        get_by(&s, slot("product/7", ""), "").await.unwrap().id,
        m.id
    );
    assert_eq!(get_by(&s, None, "SKU-7-main").await.unwrap().id, m.id);
    let mut stream = client
        .read_media(pb::ReadMediaRequest {
            slot: slot("product/7", ""),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(msg) = stream.message().await.unwrap() {
        bytes.extend_from_slice(&msg.data);
    }
    assert_eq!(bytes, png);
    let mut stream = client
        .get_rendition(pb::GetRenditionRequest {
            code: "SKU-7-main".into(),
            width: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.rendition.unwrap().width, 10);

    // Not found, conflicting names, and bad names.
    let err = get_by(&s, slot("product/8", ""), "").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("product/8"), "{}", err.message());
    let err = get_by(&s, None, "SKU-8").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .get_media(pb::GetMediaRequest {
            media_id: m.id.clone(),
            code: "SKU-7-main".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "FIELD_CONFLICT");
    let err = get_by(&s, slot("", "x"), "").await.unwrap_err();
    assert_eq!(bad_field(&err).as_deref(), Some("slot.resource"));
    let err = get_by(&s, None, "two words").await.unwrap_err();
    assert_eq!(bad_field(&err).as_deref(), Some("code"));
    let err = client
        .get_media(pb::GetMediaRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_field(&err).as_deref(), Some("media_id"));
    // Without credentials, only ids name media.
    let mut anonymous =
        pb::media_service_client::MediaServiceClient::new(channel_with(s.addr, Bearer(None)).await);
    let err = anonymous
        .get_media(pb::GetMediaRequest {
            code: "SKU-7-main".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slot_and_code_conflicts_are_already_exists_naming_the_holder() {
    let s = TestServer::spawn().await;
    let mut client = s.client.clone();
    let a = content("first", 100);
    let first = upload(
        &mut client,
        pb::UploadHeader {
            code: "INV-1".into(),
            ..into_slot("a.bin", a.len(), "invoice/1", "pdf")
        },
        &a,
    )
    .await
    .unwrap()
    .media
    .unwrap();
    let b = content("second", 100);
    let err = upload(
        &mut client,
        pb::UploadHeader {
            slot_policy: pb::SlotPolicy::Refuse as i32,
            ..into_slot("b.bin", b.len(), "invoice/1", "pdf")
        },
        &b,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert_eq!(reason(&err), "SLOT_TAKEN");
    {
        use tonic_types::StatusExt;
        assert_eq!(
            err.get_details_resource_info().unwrap().resource_name,
            first.id
        );
    }
    let err = upload(
        &mut client,
        pb::UploadHeader {
            code: "INV-1".into(),
            ..header("c.bin", b.len())
        },
        &b,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert_eq!(reason(&err), "CODE_TAKEN");
    assert!(err.message().contains(&first.id), "{}", err.message());
    // Neither refused upload left anything.
    assert_eq!(list_all(&mut client).await.len(), 1);
    assert_eq!(s.stored_blobs().await, 1);
    // A code is checked against concurrent uploads too: of two at once,
    // one wins.
    let mut tasks = Vec::new();
    for i in 0..2 {
        let mut client = s.client.clone();
        tasks.push(tokio::spawn(async move {
            let d = content(&format!("race-{i}"), 100);
            upload(
                &mut client,
                pb::UploadHeader {
                    code: "INV-2".into(),
                    ..header("r.bin", d.len())
                },
                &d,
            )
            .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(reason(&e), "CODE_TAKEN", "{e:?}"),
        }
    }
    assert_eq!(won, 1);
    // Bad names.
    for (h, field) in [
        (into_slot("x.bin", 1, " ", "k"), "header.slot.resource"),
        (
            into_slot("x.bin", 1, "r", &"k".repeat(201)),
            "header.slot.key",
        ),
        (
            pb::UploadHeader {
                code: "a b".into(),
                ..header("x.bin", 1)
            },
            "header.code",
        ),
    ] {
        let err = upload(&mut client, h, b"x").await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert_eq!(bad_field(&err).as_deref(), Some(field));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_media_goes_with_its_bytes_unless_kept_or_bound() {
    let s = TestServer::spawn().await;
    let mut client = s.client.clone();
    let put = |name: &'static str, policy: pb::SlotPolicy| {
        let mut client = s.client.clone();
        async move {
            let d = content(name, 150_000);
            let h = pb::UploadHeader {
                slot_policy: policy as i32,
                ..into_slot(name, d.len(), "page/home", "hero")
            };
            upload(&mut client, h, &d).await.unwrap().media.unwrap()
        }
    };
    let a = put("a.jpg", pb::SlotPolicy::Unspecified).await;
    let b = put("b.jpg", pb::SlotPolicy::Unspecified).await;
    // a is gone, with its bytes.
    let err = client
        .get_media(pb::GetMediaRequest {
            media_id: a.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(!s.has_blob(&a.blake3).await);
    assert_eq!(
        get_by(&s, slot("page/home", "hero"), "").await.unwrap().id,
        b.id
    );
    // Kept on request: out of the slot, still there.
    let c = put("c.jpg", pb::SlotPolicy::KeepReplaced).await;
    let kept = get_media(&mut client, &b.id).await;
    assert!(kept.slot.is_none());
    assert_eq!(
        get_by(&s, slot("page/home", "hero"), "").await.unwrap().id,
        c.id
    );
    // Bound: kept, out of the slot.
    BindingServiceClient::new(channel(s.addr).await)
        .add_binding(pb::AddBindingRequest {
            media_id: c.id.clone(),
            module: "cms.page".into(),
            object_id: "home".into(),
        })
        .await
        .unwrap();
    let d = put("d.jpg", pb::SlotPolicy::Unspecified).await;
    let bound = get_media(&mut client, &c.id).await;
    assert!(bound.slot.is_none());
    assert_eq!(
        get_by(&s, slot("page/home", "hero"), "").await.unwrap().id,
        d.id
    );
    let ids: HashSet<String> = list_all(&mut client)
        .await
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, HashSet::from([b.id, c.id, d.id]));
    assert_storage_sound(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn list_media_filters_on_slot_resource_key_prefix_and_code() {
    let s = TestServer::spawn().await;
    let mut client = s.client.clone();
    let mut ids = std::collections::HashMap::new();
    for (name, resource, key, code) in [
        ("1", "user/1", "avatar", "U1A"),
        ("2", "user/1", "avatar-small", ""),
        ("3", "user/1", "Banner", "U1B"),
        ("4", "user/2", "avatar", ""),
        ("5", "", "", "LOOSE"),
    ] {
        let d = content(name, 50);
        let h = pb::UploadHeader {
            slot: (!resource.is_empty()).then(|| pb::MediaSlot {
                resource: resource.into(),
                key: key.into(),
            }),
            code: code.into(),
            ..header(&format!("{name}.bin"), d.len())
        };
        let m = upload(&mut client, h, &d).await.unwrap().media.unwrap();
        ids.insert(name, m.id);
    }
    let names = |media: Vec<pb::Media>| -> HashSet<&str> {
        media
            .iter()
            .map(|m| *ids.iter().find(|(_, id)| **id == m.id).unwrap().0)
            .collect()
    };
    let by = |resource: &str, prefix: &str, codes: &[&str]| pb::MediaFilter {
        slot_resource: resource.into(),
        slot_key_prefix: prefix.into(),
        codes: codes.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    };
    assert_eq!(
        names(list_filtered(&mut client, by("user/1", "", &[])).await),
        HashSet::from(["1", "2", "3"])
    );
    assert_eq!(
        names(list_filtered(&mut client, by("user/1", "avatar", &[])).await),
        HashSet::from(["1", "2"])
    );
    // Case matters, on both engines.
    assert_eq!(
        names(list_filtered(&mut client, by("user/1", "banner", &[])).await),
        HashSet::new()
    );
    assert_eq!(
        names(list_filtered(&mut client, by("", "", &["U1B", "LOOSE"])).await),
        HashSet::from(["3", "5"])
    );
    let err = client
        .list_media(pb::ListMediaRequest {
            filter: Some(by("", "avatar", &[])),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_field(&err).as_deref(), Some("filter.slot_key_prefix"));
}

#[tokio::test(flavor = "multi_thread")]
async fn resumable_uploads_fill_slots_too() {
    let s = TestServer::spawn().await;
    let mut up = uploads(s.addr).await;
    let d = content("resumable", 10_000);
    let first = upload(
        &mut s.client.clone(),
        into_slot("old.bin", 5, "doc/9", "file"),
        &d[..5],
    )
    .await
    .unwrap()
    .media
    .unwrap();
    let started = start_upload(&mut up, into_slot("new.bin", d.len(), "doc/9", "file")).await;
    let done = send_pieces(&mut up, vec![piece(&started.id, 0, &d, true)])
        .await
        .unwrap();
    let media = done.media.unwrap();
    assert_eq!(
        get_by(&s, slot("doc/9", "file"), "").await.unwrap().id,
        media.id
    );
    let err = get_by(&s, None, "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(!s.has_blob(&first.blake3).await);
}
