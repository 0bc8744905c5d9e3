//! Per-tenant quotas of bytes and media: refused before the bytes when the
//! declared size is over, as the stream crosses it otherwise, nothing left
//! behind either way, and freed by deletes.

use mediastore::pb::v1::{
    self as pb, access_service_client::AccessServiceClient,
    media_service_client::MediaServiceClient, upload_service_client::UploadServiceClient,
};
use tokio_stream::StreamExt as _;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::common::*;

fn assert_quota(err: &Status, subject: &str) {
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let details = err.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "QUOTA_EXCEEDED");
    let failure = details.quota_failure().expect("a QuotaFailure");
    assert_eq!(failure.violations[0].subject, subject);
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_stop_at_the_tenants_quotas_and_deletes_free_them() {
    let s = TestServer::spawn().await;
    let mut admin = AccessServiceClient::new(channel(s.addr).await);
    let t = admin
        .create_tenant(pb::CreateTenantRequest {
            name: "small".into(),
            max_bytes: 10_000,
            max_media_count: 3,
        })
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(
        (t.max_bytes, t.max_media_count, t.used_bytes),
        (10_000, 3, 0)
    );
    let key = new_key(
        s.addr,
        &t.id,
        "app",
        "",
        &["uploads:write", "media:read", "media:delete"],
    )
    .await;
    let ch = channel_with(s.addr, Bearer::key(&key)).await;
    let mut media = MediaServiceClient::new(ch.clone());

    // Declared over the quota: refused on the header, before any byte (the
    // stream sends nothing more and never ends).
    let head_only =
        tokio_stream::iter(vec![head(header("big.bin", 20_000))]).chain(tokio_stream::pending());
    let err = upload_raw(&mut media, head_only).await.unwrap_err();
    assert_quota(&err, "tenant.max_bytes");

    // Undeclared: refused as the stream crosses it, nothing left behind.
    let big = content("big", 15_000);
    let mut h = header("big.bin", big.len());
    h.size_bytes = None;
    let err = upload_raw(
        &mut media,
        tokio_stream::iter(upload_messages(h, &big, 1000)),
    )
    .await
    .unwrap_err();
    assert_quota(&err, "tenant.max_bytes");
    assert_eq!(s.staged_files(), 0);
    assert_eq!(s.stored_blobs().await, 0);
    assert!(list_all(&mut media).await.is_empty());

    // Up to the quota works; a byte more does not.
    let a = content("a", 6000);
    let first = upload(&mut media, header("a.bin", a.len()), &a)
        .await
        .unwrap()
        .media
        .unwrap();
    let b = content("b", 4001);
    let err = upload(&mut media, header("b.bin", b.len()), &b)
        .await
        .unwrap_err();
    assert_quota(&err, "tenant.max_bytes");
    // The quota counts what the tenant sees: the same bytes again count
    // again, though they are stored once.
    let err = upload(&mut media, header("a-again.bin", a.len()), &a)
        .await
        .unwrap_err();
    assert_quota(&err, "tenant.max_bytes");
    upload(&mut media, header("b.bin", 4000), &b[..4000])
        .await
        .unwrap();
    // The media quota: a third fits, a fourth does not.
    upload(&mut media, header("empty-1.bin", 0), b"")
        .await
        .unwrap();
    let err = upload(&mut media, header("empty-2.bin", 0), b"")
        .await
        .unwrap_err();
    assert_quota(&err, "tenant.max_media_count");
    // A resumable upload is checked at its start too.
    let err = UploadServiceClient::new(ch.clone())
        .start_upload(pb::StartUploadRequest {
            header: Some(header("r.bin", 1)),
        })
        .await
        .unwrap_err();
    assert_quota(&err, "tenant.max_media_count");

    let listed = admin
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let small = listed.tenants.iter().find(|x| x.id == t.id).unwrap();
    assert_eq!((small.used_bytes, small.media_count), (10_000, 3));

    // A delete frees both.
    media
        .delete_media(pb::DeleteMediaRequest {
            media_id: first.id,
            ..Default::default()
        })
        .await
        .unwrap();
    upload(&mut media, header("c.bin", 5000), &content("c", 5000))
        .await
        .unwrap();

    // Lifting the quota lets anything in.
    let lifted = admin
        .set_tenant_quota(pb::SetTenantQuotaRequest {
            tenant_id: t.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!((lifted.max_bytes, lifted.max_media_count), (0, 0));
    upload(&mut media, header("d.bin", 20_000), &content("d", 20_000))
        .await
        .unwrap();
    // Another tenant never had a quota.
    upload(
        &mut s.client.clone(),
        header("e.bin", 20_000),
        &content("e", 20_000),
    )
    .await
    .unwrap();
    let err = admin
        .set_tenant_quota(pb::SetTenantQuotaRequest {
            tenant_id: uuid::Uuid::now_v7().to_string(),
            max_bytes: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}
