//! The server around the media service: reflection, health, shutdown.

use std::time::Duration;

use crate::common::*;
use futures_util::StreamExt;
use mediastore::pb::v1::UploadMediaRequest;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const EXPECTED_SERVICES: [&str; 4] = [
    "mediastore.v1.MediaService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

#[tokio::test(flavor = "multi_thread")]
async fn reflection_v1_and_v1alpha_list_every_service() {
    let s = TestServer::spawn().await;
    let channel = raw_channel(s.addr).await;

    use tonic_reflection::pb::v1 as r1;
    let mut client = r1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let req = r1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut resp = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let Some(r1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        resp.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in EXPECTED_SERVICES {
        assert!(
            names.iter().any(|n| n == want),
            "v1 lacks {want}: {names:?}"
        );
    }

    // The older protocol, which grpcurl speaks, also resolves our files.
    use tonic_reflection::pb::v1alpha as r0;
    let mut client = r0::server_reflection_client::ServerReflectionClient::new(channel);
    let req = r0::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            r0::server_reflection_request::MessageRequest::FileContainingSymbol(
                "mediastore.v1.MediaService".into(),
            ),
        ),
    };
    let mut resp = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    match resp.next().await.unwrap().unwrap().message_response {
        Some(r0::server_reflection_response::MessageResponse::FileDescriptorResponse(f)) => {
            assert!(!f.file_descriptor_proto.is_empty());
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_answers_serving_then_not_serving_on_shutdown() {
    let mut s = TestServer::spawn().await;
    let mut health = HealthClient::new(raw_channel(s.addr).await);
    // Every service of the API has its name in the health service, and
    // the server as a whole ("") too.
    let set = <prost_types::FileDescriptorSet as prost::Message>::decode(
        mediastore::pb::FILE_DESCRIPTOR_SET,
    )
    .unwrap();
    let ours: Vec<String> = set
        .file
        .iter()
        .filter(|f| f.package() == "mediastore.v1")
        .flat_map(|f| {
            f.service
                .iter()
                .map(|s| format!("mediastore.v1.{}", s.name()))
        })
        .collect();
    assert_eq!(ours.len(), 7, "{ours:?}");
    for name in &ours {
        assert!(
            mediastore::server::HEALTH_NAMES.contains(&name.as_str()),
            "{name} is not reported by the health service"
        );
    }
    assert!(mediastore::server::HEALTH_NAMES.contains(&""));
    for service in mediastore::server::HEALTH_NAMES {
        let status = health
            .check(HealthCheckRequest {
                service: (*service).into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let err = health
        .check(HealthCheckRequest {
            service: "mediastore.v1.NoSuchService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    s.shutdown().await;
    assert!(
        health
            .check(HealthCheckRequest {
                service: String::new()
            })
            .await
            .is_err(),
        "the server still answers after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_follows_the_blob_store() {
    let s = TestServer::spawn_with(|c| c.health_check_secs = 1).await;
    let mut health = HealthClient::new(raw_channel(s.addr).await);
    // The staging directory disappears: the store cannot be written.
    let staging = s.dir.path().join("tmp");
    let moved = s.dir.path().join("tmp-away");
    std::fs::rename(&staging, &moved).unwrap();
    wait_for_media_status(&mut health, ServingStatus::NotServing).await;
    std::fs::rename(&moved, &staging).unwrap();
    wait_for_media_status(&mut health, ServingStatus::Serving).await;
}

/// Polls the media service's health for up to 5 s until it is `want`.
pub(super) async fn wait_for_media_status(
    health: &mut HealthClient<tonic::transport::Channel>,
    want: ServingStatus,
) {
    let mut seen = ServingStatus::Unknown;
    for _ in 0..50 {
        let status = health
            .check(HealthCheckRequest {
                service: "mediastore.v1.MediaService".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        seen = ServingStatus::try_from(status).unwrap();
        if seen == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health stayed {seen:?}, never {want:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_an_in_flight_upload_finish() {
    let mut s = TestServer::spawn().await;
    let mut client = s.client.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<UploadMediaRequest>(4);
    let call = tokio::spawn(async move {
        upload_raw(&mut client, tokio_stream::wrappers::ReceiverStream::new(rx)).await
    });
    let data = content("inflight", 2 * MIB);
    let msgs = upload_messages(header("late.bin", data.len()), &data, MIB);
    let mut msgs = msgs.into_iter();
    tx.send(msgs.next().unwrap()).await.unwrap();
    tx.send(msgs.next().unwrap()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    s.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for m in msgs {
        tx.send(m).await.unwrap();
    }
    drop(tx);
    let media = call.await.unwrap().unwrap().media.unwrap();
    assert_eq!(media.blake3, blake3_hex(&data));
    s.shutdown().await;
    // New connections are refused once the server has stopped.
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", s.addr)).unwrap();
    assert!(endpoint.connect().await.is_err());
}

/// `mediastore --data-dir D scrub` and `mediastore scrub --data-dir D` are
/// the same command, and so are the two spellings of `serve`.
#[tokio::test(flavor = "multi_thread")]
async fn flags_work_before_and_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = test_database(dir.path()).await;
    let data_dir = dir.path().to_str().unwrap();
    let flags = ["--data-dir", data_dir, "--database-url", url.as_str()];
    for args in [
        [&flags[..], &["scrub"]].concat(),
        [&["scrub"], &flags[..]].concat(),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediastore"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["blobs_checked"], 0, "{args:?}");
    }

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mediastore"));
    command.arg("serve").args(flags);
    let server = ServerProcess::spawn(command);
    let channel = mediastore::server::connect_when_up(server.addr)
        .await
        .unwrap();
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
}
