//! Authentication and authorization: every RPC against every kind of
//! credentials, the admin key of the first start, keys and tenants made
//! and revoked through the API and the command line.

use std::time::Duration;

use mediastore::{
    auth::rules::{PUBLIC_READS, RPC_SCOPES, served_rpcs},
    domain::{KeySpec, NewSecret, Scope, Scopes, TenantId, now_micros},
    pb::v1::{
        self as pb, access_service_client::AccessServiceClient,
        folder_service_client::FolderServiceClient, media_service_client::MediaServiceClient,
    },
};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::common::*;

/// The `reason` of a status's ErrorInfo.
fn reason(s: &Status) -> String {
    s.get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// Calls `rpc` (`service/method`) with an empty request message and
/// returns the status it ends with: for streaming RPCs, the first
/// message's. The authentication layer answers before any handler reads
/// the request, so one generic call shape serves every RPC.
async fn call_empty(channel: Channel, rpc: &str) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::try_from(format!("/{rpc}")).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let request = Request::new(tokio_stream::iter(vec![()]));
    match grpc.streaming(request, path, codec).await {
        Err(status) => status,
        Ok(response) => match response.into_inner().message().await {
            Ok(_) => Status::ok(""),
            Err(status) => status,
        },
    }
}

/// A key of `tenant` made directly in the database (so it can be made
/// already expired); returns its secret.
async fn make_key(
    s: &TestServer,
    tenant: TenantId,
    name: &str,
    scopes: Scopes,
    expires_at: Option<i64>,
) -> String {
    let secret = NewSecret::generate().unwrap();
    let spec = KeySpec {
        tenant,
        name: name.to_string(),
        role: "tester".to_string(),
        scopes,
        expires_at,
    };
    s.library
        .repo()
        .insert_key(&spec, secret.hash, &secret.shown_prefix)
        .await
        .unwrap()
        .unwrap();
    secret.secret
}

fn access(channel: Channel) -> AccessServiceClient<Channel> {
    AccessServiceClient::new(channel)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rpc_answers_each_kind_of_credentials_as_its_table_row_says() {
    let s = TestServer::spawn().await;
    let admin = channel(s.addr).await;
    // Every served RPC has a row: the matrix below covers them all.
    let served = served_rpcs();
    for rpc in &served {
        assert!(
            RPC_SCOPES.iter().any(|(name, _)| name == rpc),
            "{rpc} has no row in auth::rules::RPC_SCOPES"
        );
    }
    assert_eq!(served.len(), RPC_SCOPES.len());

    let revoked = make_key(&s, TenantId::DEFAULT, "revoked", Scopes::all(), None).await;
    let listed = access(admin.clone())
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await
        .unwrap()
        .into_inner();
    let revoked_id = listed
        .api_keys
        .iter()
        .find(|k| k.name == "revoked")
        .unwrap()
        .id
        .clone();
    access(admin.clone())
        .revoke_api_key(pb::RevokeApiKeyRequest {
            api_key_id: revoked_id,
        })
        .await
        .unwrap();
    let expired = make_key(
        &s,
        TenantId::DEFAULT,
        "expired",
        Scopes::all(),
        Some(now_micros() - 1),
    )
    .await;
    let unknown = NewSecret::generate().unwrap().secret;
    let other_tenant = new_tenant(s.addr, "other").await;
    let other = make_key(
        &s,
        TenantId::parse("id", &other_tenant.id).unwrap(),
        "other-admin",
        Scopes::all(),
        None,
    )
    .await;

    let unauthenticated: [(&str, Bearer, &str); 6] = [
        ("no key", Bearer(None), "CREDENTIALS_MISSING"),
        (
            "not bearer",
            Bearer(Some("Basic dXNlcjpwdw==".parse().unwrap())),
            "CREDENTIALS_MALFORMED",
        ),
        (
            "malformed",
            Bearer::key("msk_short"),
            "CREDENTIALS_MALFORMED",
        ),
        ("unknown", Bearer::key(&unknown), "KEY_UNKNOWN"),
        ("revoked", Bearer::key(&revoked), "KEY_REVOKED"),
        ("expired", Bearer::key(&expired), "KEY_EXPIRED"),
    ];
    for (rpc, scope) in RPC_SCOPES {
        for (what, creds, why) in &unauthenticated {
            let status = call_empty(channel_with(s.addr, creds.clone()).await, rpc).await;
            if *what == "no key" && PUBLIC_READS.contains(rpc) {
                // Anonymous: past authentication, to the handler, which
                // looks for a public media (here: no id given).
                assert_eq!(status.code(), Code::InvalidArgument, "{rpc}: {status:?}");
                continue;
            }
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{rpc} with {what}: {status:?}"
            );
            assert_eq!(reason(&status), *why, "{rpc} with {what}");
        }
        // A key with every scope but the one needed.
        let without: Scopes = Scope::ALL.into_iter().filter(|x| x != scope).collect();
        let lacking = make_key(
            &s,
            TenantId::DEFAULT,
            &format!("without-{rpc}"),
            without,
            None,
        )
        .await;
        let status = call_empty(channel_with(s.addr, Bearer::key(&lacking)).await, rpc).await;
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{rpc} without {scope}: {status:?}"
        );
        assert_eq!(reason(&status), "SCOPE_MISSING");
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(
            info.metadata.get("scope").map(String::as_str),
            Some(scope.as_str())
        );
        assert!(
            status.message().contains(scope.as_str()),
            "{}",
            status.message()
        );
        // A key with only the scope needed, of this tenant and of another:
        // past authentication and authorization, whatever the handler
        // then says of an empty request.
        let only = make_key(
            &s,
            TenantId::DEFAULT,
            &format!("only-{rpc}"),
            Scopes::from_iter([*scope]),
            None,
        )
        .await;
        for (what, key) in [("its scope only", &only), ("another tenant's key", &other)] {
            let status = call_empty(channel_with(s.addr, Bearer::key(key)).await, rpc).await;
            if *scope == Scope::Admin && what.starts_with("another") {
                // `admin` reaches every tenant: only the operator's
                // tenant's keys hold it, whatever a key's row says.
                assert_eq!(status.code(), Code::PermissionDenied, "{rpc}: {status:?}");
                assert!(status.message().contains("operator"), "{status:?}");
                continue;
            }
            assert!(
                !matches!(
                    status.code(),
                    Code::Unauthenticated | Code::PermissionDenied
                ),
                "{rpc} with {what}: {status:?}"
            );
        }
    }
    // Health and reflection stay open.
    let status = call_empty(
        channel_with(s.addr, Bearer(None)).await,
        "grpc.health.v1.Health/Check",
    )
    .await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    // An RPC nobody serves needs a key before it is UNIMPLEMENTED.
    let status = call_empty(
        channel_with(s.addr, Bearer(None)).await,
        "mediastore.v1.MediaService/Nope",
    )
    .await;
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = call_empty(admin, "mediastore.v1.MediaService/Nope").await;
    assert_eq!(status.code(), Code::Unimplemented);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_made_through_the_api_work_at_once_and_stop_at_once_when_revoked() {
    let s = TestServer::spawn().await;
    let mut admin = access(channel(s.addr).await);
    let made = admin
        .create_api_key(pb::CreateApiKeyRequest {
            name: "gallery".into(),
            role: "service".into(),
            scopes: vec!["media:read".into(), "uploads:write".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let key = made.api_key.unwrap();
    assert!(made.secret.starts_with("msk_") && made.secret.starts_with(&key.secret_prefix));
    assert_eq!(key.scopes, ["media:read", "uploads:write"]);
    assert_eq!(key.tenant_id, TenantId::DEFAULT.to_string());
    // The secret is never listed.
    let listed = admin
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.api_keys.iter().any(|k| k.id == key.id));
    assert!(!format!("{listed:?}").contains(&made.secret));

    let mut media = MediaServiceClient::new(channel_with(s.addr, Bearer::key(&made.secret)).await);
    let up = upload(&mut media, header("a.txt", 3), b"abc")
        .await
        .unwrap();
    let m = up.media.unwrap();
    assert_eq!(m.created_by, "gallery");
    assert_eq!(m.updated_by, "gallery");
    // No media:delete.
    let err = media
        .delete_media(pb::DeleteMediaRequest {
            media_id: m.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("media:delete"), "{}", err.message());

    let revoked = admin
        .revoke_api_key(pb::RevokeApiKeyRequest {
            api_key_id: key.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    assert!(revoked.revoke_time.is_some());
    let err = media
        .get_media(pb::GetMediaRequest {
            media_id: m.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(reason(&err), "KEY_REVOKED");

    // Bad requests to the access service.
    let bad = [
        pb::CreateApiKeyRequest {
            name: "x".into(),
            scopes: vec!["media:fly".into()],
            ..Default::default()
        },
        pb::CreateApiKeyRequest {
            name: "x".into(),
            ..Default::default()
        },
        pb::CreateApiKeyRequest {
            name: String::new(),
            scopes: vec!["media:read".into()],
            ..Default::default()
        },
        pb::CreateApiKeyRequest {
            name: "x".into(),
            scopes: vec!["media:read".into()],
            expire_time: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        },
        pb::CreateApiKeyRequest {
            tenant_id: "nope".into(),
            name: "x".into(),
            scopes: vec!["media:read".into()],
            ..Default::default()
        },
    ];
    for req in bad {
        let err = admin.create_api_key(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{req:?}: {err:?}");
    }
    let err = admin
        .create_api_key(pb::CreateApiKeyRequest {
            name: "gallery".into(),
            scopes: vec!["media:read".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(reason(&err), "API_KEY_ALREADY_EXISTS");
    let err = admin
        .create_api_key(pb::CreateApiKeyRequest {
            tenant_id: uuid::Uuid::now_v7().to_string(),
            name: "x".into(),
            scopes: vec!["media:read".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = admin
        .revoke_api_key(pb::RevokeApiKeyRequest {
            api_key_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "API_KEY_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_are_created_listed_and_deleted_only_when_empty() {
    let s = TestServer::spawn().await;
    let mut admin = access(channel(s.addr).await);
    let t = new_tenant(s.addr, "team-a").await;
    let err = admin
        .create_tenant(pb::CreateTenantRequest {
            name: "team-a".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(reason(&err), "TENANT_ALREADY_EXISTS");
    for name in ["", " padded", &"n".repeat(201)] {
        let err = admin
            .create_tenant(pb::CreateTenantRequest {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}");
    }
    // Paged listing, oldest first.
    for i in 0..3 {
        new_tenant(s.addr, &format!("t{i}")).await;
    }
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin
            .list_tenants(pb::ListTenantsRequest {
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.tenants.into_iter().map(|t| t.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(names, ["default", "team-a", "t0", "t1", "t2"]);

    // A key of the tenant uploads into its own root.
    let made = admin
        .create_api_key(pb::CreateApiKeyRequest {
            tenant_id: t.id.clone(),
            name: "writer".into(),
            scopes: vec!["uploads:write".into(), "media:delete".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut media = MediaServiceClient::new(channel_with(s.addr, Bearer::key(&made.secret)).await);
    let m = upload(&mut media, header("a.txt", 1), b"a")
        .await
        .unwrap()
        .media
        .unwrap();
    assert_eq!(
        m.parent_folder_id, t.id,
        "a tenant's root folder has its id"
    );
    let err = admin
        .delete_tenant(pb::DeleteTenantRequest {
            tenant_id: t.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "TENANT_NOT_EMPTY");
    media
        .delete_media(pb::DeleteMediaRequest {
            media_id: m.id,
            ..Default::default()
        })
        .await
        .unwrap();
    let done = admin
        .delete_tenant(pb::DeleteTenantRequest {
            tenant_id: t.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.deleted_api_key_count, 1);
    // Its key went with it.
    let err = upload(&mut media, header("b.txt", 1), b"b")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = admin
        .delete_tenant(pb::DeleteTenantRequest { tenant_id: t.id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = admin
        .delete_tenant(pb::DeleteTenantRequest {
            tenant_id: TenantId::DEFAULT.to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_auth_every_call_is_the_default_tenant_as_anonymous() {
    let s = TestServer::spawn_with(|c| c.insecure_no_auth = true).await;
    let mut media = MediaServiceClient::new(channel_with(s.addr, Bearer(None)).await);
    let m = upload(&mut media, header("a.txt", 1), b"a")
        .await
        .unwrap()
        .media
        .unwrap();
    assert_eq!(m.created_by, "anonymous");
}

/// Runs the binary's `tenants`/`keys` subcommands against `dir`'s database
/// and returns their JSON lines.
fn admin_command(dir: &std::path::Path, db_url: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediastore"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--database-url", db_url, "--log", "warn"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_start_writes_one_admin_key_and_the_command_line_manages_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _db) = test_database(dir.path()).await;
    let start = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mediastore"));
        command
            .args(["--database-url", &db_url])
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("MEDIASTORE_BOOTSTRAP_KEY");
        ServerProcess::spawn(command)
    };
    let first = start();
    let addr = first.addr;
    let mut health = tonic_health::pb::health_client::HealthClient::new(raw_channel(addr).await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    let key_file = dir.path().join("admin.key");
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let printed = first.output();
    assert_eq!(printed.matches(&key).count(), 1, "{printed}");
    let mut media = MediaServiceClient::new(channel_with(addr, Bearer::key(&key)).await);
    list_all(&mut media).await;

    // The command line makes a tenant and a key the server accepts.
    let t = admin_command(dir.path(), &db_url, &["tenants", "create", "cli-team"]);
    assert_eq!(t[0]["name"], "cli-team");
    let k = admin_command(
        dir.path(),
        &db_url,
        &[
            "keys",
            "create",
            "--tenant",
            "cli-team",
            "--name",
            "cli",
            "--role",
            "editor",
            "--scopes",
            "media:read,uploads:write",
        ],
    );
    let secret = k[0]["secret"].as_str().unwrap().to_string();
    assert_eq!(k[0]["tenant_id"], t[0]["id"]);
    let mut cli_media = MediaServiceClient::new(channel_with(addr, Bearer::key(&secret)).await);
    let m = upload(&mut cli_media, header("c.txt", 1), b"c")
        .await
        .unwrap()
        .media
        .unwrap();
    assert_eq!(m.created_by, "cli");
    let listed = admin_command(
        dir.path(),
        &db_url,
        &["keys", "list", "--tenant", "cli-team"],
    );
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("secret").is_none());
    // Revoked from another process: the server stops accepting it within
    // its cache time.
    admin_command(
        dir.path(),
        &db_url,
        &["keys", "revoke", k[0]["id"].as_str().unwrap()],
    );
    let mut refused = None;
    for _ in 0..100 {
        match cli_media
            .get_media(pb::GetMediaRequest {
                media_id: m.id.clone(),
                ..Default::default()
            })
            .await
        {
            Err(e) => {
                refused = Some(e);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(refused.unwrap().code(), Code::Unauthenticated);
    drop(first);

    // A second start makes no other key.
    let second = start();
    let addr = second.addr;
    let mut health = tonic_health::pb::health_client::HealthClient::new(raw_channel(addr).await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), key);
    assert!(!second.output().contains("msk_"), "{}", second.output());
    let keys = admin_command(dir.path(), &db_url, &["keys", "list"]);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let mut media = MediaServiceClient::new(channel_with(addr, Bearer::key(&key)).await);
    assert_eq!(
        list_all(&mut media).await.len(),
        0,
        "the default tenant sees none of cli-team's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_over_its_rate_is_told_when_to_come_back() {
    let s = TestServer::spawn_with(|c| {
        c.rate_limit_per_key = 0.5;
        c.rate_limit_burst = 3.0;
    })
    .await;
    let key = new_key(s.addr, "", "chatty", "", &["media:read"]).await;
    let mut chatty = MediaServiceClient::new(channel_with(s.addr, Bearer::key(&key)).await);
    let list = || pb::ListMediaRequest::default();
    for _ in 0..3 {
        chatty.list_media(list()).await.unwrap();
    }
    let err = chatty.list_media(list()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(reason(&err), "RATE_LIMITED");
    let delay = err
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("a RetryInfo delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(2),
        "{delay:?}"
    );
    // Other keys have their own allowance.
    list_all(&mut s.client.clone()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn public_media_are_read_without_a_key_and_nothing_else_is() {
    let s = TestServer::spawn().await;
    let mut owner = s.client.clone();
    let png = &encoded(image::ImageFormat::Png, 4, 2);
    let mut h = header("open.png", png.len());
    h.public = true;
    let public = upload(&mut owner, h, png).await.unwrap().media.unwrap();
    let private = upload(&mut owner, header("closed.png", png.len()), png)
        .await
        .unwrap()
        .media
        .unwrap();
    // Another tenant's public media is public too.
    let t = new_tenant(s.addr, "elsewhere").await;
    let other_key = new_key(s.addr, &t.id, "other", "", &["uploads:write"]).await;
    let mut h = header("theirs.png", png.len());
    h.public = true;
    let theirs = upload(
        &mut MediaServiceClient::new(channel_with(s.addr, Bearer::key(&other_key)).await),
        h,
        png,
    )
    .await
    .unwrap()
    .media
    .unwrap();

    assert!(public.public && theirs.public && !private.public);
    let mut anonymous = MediaServiceClient::new(channel_with(s.addr, Bearer(None)).await);
    for m in [&public, &theirs] {
        let got = anonymous
            .get_media(pb::GetMediaRequest {
                media_id: m.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .media
            .unwrap();
        assert_eq!(got.id, m.id);
        let (_, bytes) = read(&mut anonymous, &m.id, 0, 0).await.unwrap();
        assert_eq!(&bytes, png);
        let (r, _, _) = rendition(
            &mut anonymous,
            pb::GetRenditionRequest {
                media_id: m.id.clone(),
                width: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(r.width, 2);
    }
    // A private media answers as a missing one does.
    let missing = uuid::Uuid::now_v7().to_string();
    for id in [&private.id, &missing] {
        let err = anonymous
            .get_media(pb::GetMediaRequest {
                media_id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(
            read(&mut anonymous, id, 0, 0).await.unwrap_err().code(),
            Code::NotFound
        );
    }
    // Nothing else answers without a key: no listing, no batch, no change.
    let err = anonymous
        .list_media(pb::ListMediaRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = anonymous
        .batch_get_media(pb::BatchGetMediaRequest {
            media_ids: vec![public.id.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = anonymous
        .delete_media(pb::DeleteMediaRequest {
            media_id: public.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // A bad key is not anonymity: it is refused even for a public media.
    let mut bad = MediaServiceClient::new(channel_with(s.addr, Bearer::key("msk_nope")).await);
    let err = bad
        .get_media(pb::GetMediaRequest {
            media_id: public.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // Made private, it is gone for anonymous callers at once.
    owner
        .update_media(pb::UpdateMediaRequest {
            media: Some(pb::Media {
                id: public.id.clone(),
                public: false,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["public".into()],
            }),
        })
        .await
        .unwrap();
    let err = anonymous
        .get_media(pb::GetMediaRequest {
            media_id: public.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn media_below_a_public_folder_are_public_until_it_is_made_private() {
    let s = TestServer::spawn().await;
    let mut owner = s.client.clone();
    let mut folders = FolderServiceClient::new(channel(s.addr).await);
    let folder = |parent: &str, name: &str, public: bool| pb::CreateFolderRequest {
        parent_folder_id: parent.into(),
        name: name.into(),
        public,
    };
    let site = folders
        .create_folder(folder("", "site", true))
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    assert!(site.public);
    let deep = folders
        .create_folder(folder(&site.id, "img", false))
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    assert!(!deep.public, "a subfolder's own flag is its own");
    let drafts = folders
        .create_folder(folder("", "drafts", false))
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    let put = |parent: &str, name: &str| {
        let mut h = header(name, 3);
        h.parent_folder_id = parent.into();
        h
    };
    let up = |h| {
        let mut owner = owner.clone();
        async move { upload(&mut owner, h, b"abc").await.unwrap().media.unwrap() }
    };
    let in_site = up(put(&site.id, "a.bin")).await;
    let below = up(put(&deep.id, "b.bin")).await;
    let draft = up(put(&drafts.id, "c.bin")).await;
    assert!(!in_site.public, "the media's own flag stays unset");

    let mut anonymous = MediaServiceClient::new(channel_with(s.addr, Bearer(None)).await);
    let get = |id: &str| pb::GetMediaRequest {
        media_id: id.to_string(),
        ..Default::default()
    };
    for m in [&in_site, &below] {
        anonymous.get_media(get(&m.id)).await.unwrap();
        let (_, bytes) = read(&mut anonymous, &m.id, 0, 0).await.unwrap();
        assert_eq!(bytes, b"abc");
    }
    let err = anonymous.get_media(get(&draft.id)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Moved out of the public tree, a media is private; moved in, public.
    owner
        .move_media(pb::MoveMediaRequest {
            media_id: below.id.clone(),
            parent_folder_id: drafts.id.clone(),
        })
        .await
        .unwrap();
    let err = anonymous.get_media(get(&below.id)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    owner
        .move_media(pb::MoveMediaRequest {
            media_id: draft.id.clone(),
            parent_folder_id: deep.id.clone(),
        })
        .await
        .unwrap();
    anonymous.get_media(get(&draft.id)).await.unwrap();

    // Made private, the folder's tree is private at once; the root made
    // public opens the whole tenant.
    let changed = folders
        .set_folder_public(pb::SetFolderPublicRequest {
            folder_id: site.id.clone(),
            public: false,
        })
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    assert!(!changed.public);
    assert_eq!(changed.updated_by, "admin");
    for m in [&in_site, &draft] {
        let err = anonymous.get_media(get(&m.id)).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
    folders
        .set_folder_public(pb::SetFolderPublicRequest {
            folder_id: String::new(),
            public: true,
        })
        .await
        .unwrap();
    for m in [&in_site, &below, &draft] {
        anonymous.get_media(get(&m.id)).await.unwrap();
    }
    // Listing still needs a key.
    let err = anonymous
        .list_media(pb::ListMediaRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // Setting it on a folder of another tenant: NOT_FOUND.
    let t = new_tenant(s.addr, "elsewhere").await;
    let other_key = new_key(s.addr, &t.id, "other", "", &["folders:write"]).await;
    let err = FolderServiceClient::new(channel_with(s.addr, Bearer::key(&other_key)).await)
        .set_folder_public(pb::SetFolderPublicRequest {
            folder_id: drafts.id.clone(),
            public: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_scope_belongs_to_the_operators_tenant_only() {
    let s = TestServer::spawn().await;
    let t = new_tenant(s.addr, "customer").await;
    let mut admin = access(channel(s.addr).await);
    let err = admin
        .create_api_key(pb::CreateApiKeyRequest {
            tenant_id: t.id.clone(),
            name: "would-be-operator".into(),
            scopes: vec!["media:read".into(), "admin".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("operator"), "{err:?}");
    let violation = err.get_error_details().bad_request().cloned().unwrap();
    assert_eq!(violation.field_violations[0].field, "scopes");
    // The operator's own tenant may have more admin keys.
    admin
        .create_api_key(pb::CreateApiKeyRequest {
            name: "second-operator".into(),
            scopes: vec!["admin".into()],
            ..Default::default()
        })
        .await
        .unwrap();

    // A customer's key, whatever it holds, gets no store-wide answer: no
    // garbage collection or scrub counts, no tenants, no keys.
    let customer = make_key(
        &s,
        TenantId::parse("id", &t.id).unwrap(),
        "stored-before-the-rule",
        Scopes::all(),
        None,
    )
    .await;
    let ch = channel_with(s.addr, Bearer::key(&customer)).await;
    let err = mediastore::pb::v1::admin_service_client::AdminServiceClient::new(ch.clone())
        .collect_garbage(pb::CollectGarbageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = access(ch)
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Nor from the command line.
    let url = s.config.database_url.clone().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediastore"))
        .arg("--data-dir")
        .arg(s.dir.path())
        .args(["--database-url", &url, "--log", "warn"])
        .args(["keys", "create", "--tenant", "customer", "--name", "x"])
        .args(["--scopes", "admin"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("operator"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
