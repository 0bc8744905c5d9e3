//! TLS and mutual TLS, with certificate authorities and certificates made
//! here by rcgen: the server's certificate, clients' certificates mapped
//! to principals by the principals file, the refusals (no certificate, a
//! foreign CA, an expired certificate), and reloads that take effect for
//! new connections without dropping open ones.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use mediastore::pb::v1::{
    self as pb, access_service_client::AccessServiceClient,
    media_service_client::MediaServiceClient,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};
use tonic::{
    Code,
    service::interceptor::InterceptedService,
    transport::{Certificate, ClientTlsConfig, Endpoint, Identity},
};

use crate::common::{
    Bearer, Channel, TEST_KEY, TestServer, header, reason, start_process, test_database, upload,
};

/// A certificate authority made for one test.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
struct Pair {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// The server's certificate, for `localhost`.
    fn server(&self) -> Pair {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "mediastore");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate with common name `cn` and DNS SANs `dns`,
    /// valid now or expired in 2021.
    fn client(&self, cn: &str, dns: &[&str], expired: bool) -> Pair {
        let mut params =
            CertificateParams::new(dns.iter().map(ToString::to_string).collect::<Vec<_>>())
                .unwrap();
        // Most general name first, as CAs issue them: RFC 4514 (and
        // `openssl -nameopt RFC2253`) prints them in reverse,
        // "CN=...,O=Acme". (rcgen's default name holds a CN already.)
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Pair {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Writes `text` to `dir/name` (replacing it atomically, as a secret
/// volume's update does) and returns the path.
fn put(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// A channel over TLS trusting `ca_pem`, with an optional client
/// certificate and the given bearer credentials.
async fn tls_channel(
    addr: SocketAddr,
    ca_pem: &str,
    identity: Option<&Pair>,
    creds: Bearer,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert, &id.key));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(InterceptedService::new(channel, creds))
}

/// `ListMedia` over a fresh TLS connection: its total, or the error of the
/// handshake or the call.
async fn list_over(
    addr: SocketAddr,
    ca_pem: &str,
    identity: Option<&Pair>,
    creds: Bearer,
) -> Result<i64, String> {
    let channel = tls_channel(addr, ca_pem, identity, creds)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    list(channel).await.map_err(|s| format!("{s:?}"))
}

async fn list(channel: Channel) -> Result<i64, tonic::Status> {
    MediaServiceClient::new(channel)
        .list_media(pb::ListMediaRequest {
            include_total_size: true,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().total_size.unwrap_or_default())
}

/// Retries `attempt` for up to 15 s until it holds: for changes a reload
/// makes, which come within `--tls-reload-secs`.
async fn eventually<F: std::future::Future<Output = bool>>(mut attempt: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !attempt().await {
        assert!(Instant::now() < deadline, "the reload did not take effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A server with TLS from `ca`'s certificate, and `tweak`'s other
/// settings; its client trusts `ca` and sends the admin key.
async fn tls_server(
    dir: &Path,
    ca: &Ca,
    tweak: impl FnOnce(&mut mediastore::config::Config),
) -> TestServer {
    let server = ca.server();
    let cert = put(dir, "server.pem", &server.cert);
    let key = put(dir, "server.key", &server.key);
    let ca_pem = ca.pem.clone();
    TestServer::spawn_connecting(
        |c| {
            c.tls_cert = Some(cert);
            c.tls_key = Some(key);
            c.tls_reload_secs = 1;
            tweak(c);
        },
        async move |addr| {
            tls_channel(addr, &ca_pem, None, Bearer::key(TEST_KEY))
                .await
                .unwrap()
        },
    )
    .await
}

/// A server with mutual TLS: `ca` signs its certificate and the clients',
/// `principals` is the map's text, `tweak` sets the rest. Its client
/// presents `admin` (a certificate the map need not know) and the admin
/// key, which decides.
async fn mtls_server(
    dir: &Path,
    ca: &Ca,
    principals: &str,
    admin: &Pair,
    tweak: impl FnOnce(&mut mediastore::config::Config),
) -> TestServer {
    let client_ca = put(dir, "clients.pem", &ca.pem);
    let principals = put(dir, "principals.json", principals);
    let server = ca.server();
    let (cert, key) = (
        put(dir, "server.pem", &server.cert),
        put(dir, "server.key", &server.key),
    );
    let (ca_pem, admin) = (ca.pem.clone(), admin.clone());
    TestServer::spawn_connecting(
        |c| {
            c.tls_cert = Some(cert);
            c.tls_key = Some(key);
            c.tls_client_ca = Some(client_ca);
            c.tls_principals = Some(principals);
            c.tls_reload_secs = 1;
            tweak(c);
        },
        async move |addr| {
            tls_channel(addr, &ca_pem, Some(&admin), Bearer::key(TEST_KEY))
                .await
                .unwrap()
        },
    )
    .await
}

#[tokio::test]
async fn tls_serves_key_holders_and_refuses_plaintext_and_strangers() {
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let mut server = tls_server(pki.path(), &ca, |_| {}).await;
    let listed = server
        .client
        .list_media(pb::ListMediaRequest::default())
        .await;
    assert!(listed.is_ok(), "{listed:?}");

    // Plaintext HTTP/2 gets no answer from a TLS port.
    let plain = match Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
    {
        Ok(ch) => list(InterceptedService::new(ch, Bearer::key(TEST_KEY)))
            .await
            .map_err(|s| format!("{s:?}")),
        Err(e) => Err(format!("{e:?}")),
    };
    assert!(plain.is_err(), "plaintext was served: {plain:?}");

    // A client that does not trust the server's CA refuses it.
    let other = Ca::new("Other CA");
    let refused = list_over(server.addr, &other.pem, None, Bearer::key(TEST_KEY)).await;
    assert!(refused.is_err(), "{refused:?}");

    // TLS alone authenticates nobody: a call still needs a key.
    let status = list(
        tls_channel(server.addr, &ca.pem, None, Bearer(None))
            .await
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "CREDENTIALS_MISSING");
}

#[tokio::test]
async fn mutual_tls_maps_client_certificates_to_principals() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    let ca = Ca::new("Client and server CA");
    let map = |tenant: &str| {
        format!(
            r#"{{"principals": [
                {{"dns": "thumbnailer.svc", "tenant": "{tenant}", "role": "service",
                  "scopes": ["media:read", "media:write", "uploads:write"]}},
                {{"subject": "CN=auditor,O=Acme", "tenant": "default", "name": "audit",
                  "scopes": ["media:read"]}}
            ]}}"#
        )
    };
    // The harness's own client authenticates with the admin key over a
    // certificate the map does not know: the key decides.
    let admin_cert = ca.client("admin-console", &[], false);
    let mut server = mtls_server(dir, &ca, &map("default"), &admin_cert, |_| {}).await;
    let addr = server.addr;

    // A mapped certificate, no key: its tenant, name, role and scopes.
    let thumbnailer = ca.client("thumbnailer", &["thumbnailer.svc"], false);
    let channel = tls_channel(addr, &ca.pem, Some(&thumbnailer), Bearer(None))
        .await
        .unwrap();
    let mut svc = MediaServiceClient::new(channel.clone());
    let media = upload(&mut svc, header("by-cert.bin", 3), b"abc")
        .await
        .unwrap()
        .media
        .unwrap();
    assert_eq!(media.created_by, "thumbnailer.svc");
    assert_eq!(media.created_role, "service");
    let denied = svc
        .delete_media(pb::DeleteMediaRequest {
            media_id: media.id.clone(),
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(reason(&denied), "SCOPE_MISSING");
    assert!(denied.message().contains("media:delete"), "{denied:?}");

    // Matched by subject, with the entry's name.
    let auditor = ca.client("auditor", &[], false);
    let mut audit = MediaServiceClient::new(
        tls_channel(addr, &ca.pem, Some(&auditor), Bearer(None))
            .await
            .unwrap(),
    );
    let seen = audit
        .get_media(pb::GetMediaRequest {
            media_id: media.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .media
        .unwrap();
    assert_eq!(seen.created_by, "thumbnailer.svc");
    let status = audit
        .upload_media(tokio_stream::iter(Vec::<pb::UploadMediaRequest>::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // A certificate of the right CA that the map does not know, without a
    // key: unauthenticated, naming the certificate; with a key, the key.
    let stranger = ca.client("stranger", &["stranger.svc"], false);
    let status = list(
        tls_channel(addr, &ca.pem, Some(&stranger), Bearer(None))
            .await
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "CERTIFICATE_UNMAPPED");
    assert!(status.message().contains("stranger.svc"), "{status:?}");
    assert_eq!(
        list_over(addr, &ca.pem, Some(&stranger), Bearer::key(TEST_KEY)).await,
        Ok(1)
    );

    // Refused at the handshake: no certificate, a foreign CA's, an expired
    // one. Nothing they send is served.
    let foreign = Ca::new("Foreign CA").client("thumbnailer", &["thumbnailer.svc"], false);
    let expired = ca.client("thumbnailer", &["thumbnailer.svc"], true);
    for (what, identity) in [
        ("no certificate", None),
        ("a foreign CA's certificate", Some(&foreign)),
        ("an expired certificate", Some(&expired)),
    ] {
        let result = list_over(addr, &ca.pem, identity, Bearer::key(TEST_KEY)).await;
        assert!(result.is_err(), "{what} was served: {result:?}");
        assert!(
            !result.as_ref().unwrap_err().contains("Unauthenticated"),
            "{what} reached the service: {result:?}"
        );
    }

    // The map is reloaded with the certificates: moving the thumbnailer to
    // a new tenant takes effect for its next calls.
    let mut access = AccessServiceClient::new(
        tls_channel(addr, &ca.pem, Some(&admin_cert), Bearer::key(TEST_KEY))
            .await
            .unwrap(),
    );
    access
        .create_tenant(pb::CreateTenantRequest {
            name: "team-a".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    put(dir, "principals.json", &map("team-a"));
    eventually(|| {
        let channel = channel.clone();
        async move { list(channel).await.ok() == Some(0) }
    })
    .await;
    let moved = upload(&mut svc, header("team-a.bin", 3), b"abc")
        .await
        .unwrap();
    assert!(!moved.deduplicated, "dedupe across tenants is not reported");
    assert_eq!(
        list_over(addr, &ca.pem, Some(&admin_cert), Bearer::key(TEST_KEY)).await,
        Ok(1),
        "the default tenant still has only its own media"
    );

    // A map naming an unknown tenant, or granting `admin` (the operator's
    // scope) to another tenant, is refused as a whole; the previous one
    // stays.
    put(dir, "principals.json", &map("no-such-tenant"));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(list(channel.clone()).await.ok(), Some(1));
    put(
        dir,
        "principals.json",
        &map("team-a").replace(
            r#""uploads:write""#,
            r#""uploads:write", "media:delete", "admin""#,
        ),
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let status = MediaServiceClient::new(channel.clone())
        .delete_media(pb::DeleteMediaRequest {
            media_id: moved.media.unwrap().id,
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "the old map stays");
    server.shutdown().await;
}

#[tokio::test]
async fn new_certificates_serve_new_connections_and_open_ones_stay() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    let first = Ca::new("First CA");
    let server = tls_server(dir, &first, |_| {}).await;
    let addr = server.addr;
    // Opened under the first certificate; it trusts only the first CA, so
    // it would fail if it had to connect again.
    let open = tls_channel(addr, &first.pem, None, Bearer::key(TEST_KEY))
        .await
        .unwrap();
    assert_eq!(list(open.clone()).await.unwrap(), 0);

    let second = Ca::new("Second CA");
    let renewed = second.server();
    put(dir, "server.key", &renewed.key);
    put(dir, "server.pem", &renewed.cert);
    eventually(|| async {
        list_over(addr, &second.pem, None, Bearer::key(TEST_KEY))
            .await
            .is_ok()
    })
    .await;
    assert!(
        list_over(addr, &first.pem, None, Bearer::key(TEST_KEY))
            .await
            .is_err(),
        "new connections get the new certificate"
    );
    assert_eq!(
        list(open).await.unwrap(),
        0,
        "the connection opened before the reload still serves"
    );
}

#[tokio::test]
async fn sighup_reloads_the_certificates_of_the_real_binary() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    let data = tempfile::tempdir().unwrap();
    let (url, _db) = test_database(data.path()).await;
    let first = Ca::new("First CA");
    let pair = first.server();
    let cert = put(dir, "server.pem", &pair.cert);
    let key = put(dir, "server.key", &pair.key);
    let process = start_process(
        data.path(),
        &url,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            // Only the signal reloads.
            "--tls-reload-secs",
            "0",
        ],
    );
    let addr = process.addr;
    eventually(|| async {
        list_over(addr, &first.pem, None, Bearer::key(TEST_KEY))
            .await
            .is_ok()
    })
    .await;

    let second = Ca::new("Second CA");
    let renewed = second.server();
    put(dir, "server.key", &renewed.key);
    put(dir, "server.pem", &renewed.cert);
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &process.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    eventually(|| async {
        list_over(addr, &second.pem, None, Bearer::key(TEST_KEY))
            .await
            .is_ok()
    })
    .await;
}

#[test]
fn uri_sans_are_read_from_certificates() {
    let ca = Ca::new("Test CA");
    let mut params = CertificateParams::new(vec!["web.svc".to_string()]).unwrap();
    params.subject_alt_names.push(SanType::URI(
        "spiffe://cluster.local/ns/a/sa/web".try_into().unwrap(),
    ));
    params.distinguished_name.push(DnType::CommonName, "web");
    let pair = ca.sign(params);
    let der = pem_der(&pair.cert);
    let names = mediastore::auth::certs::CertNames::read(&der).unwrap();
    assert_eq!(names.subject, "CN=web");
    assert_eq!(names.dns, ["web.svc"]);
    assert_eq!(names.uris, ["spiffe://cluster.local/ns/a/sa/web"]);
}

/// The DER bytes of a PEM certificate.
fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn a_certificates_principal_has_its_own_rate_limit() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    let ca = Ca::new("Test CA");
    let admin = ca.client("admin-console", &[], false);
    let map = r#"{"principals": [{"dns": "reader.svc", "tenant": "default",
        "scopes": ["media:read"]}]}"#;
    let s = mtls_server(dir, &ca, map, &admin, |c| {
        // A token every 2 s: the burst runs out long before the next.
        c.rate_limit_per_key = 0.5;
        c.rate_limit_burst = 3.0;
    })
    .await;
    let reader = ca.client("reader", &["reader.svc"], false);
    let channel = tls_channel(s.addr, &ca.pem, Some(&reader), Bearer(None))
        .await
        .unwrap();
    for _ in 0..3 {
        list(channel.clone()).await.unwrap();
    }
    let status = list(channel).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status), "RATE_LIMITED");
    // The admin key, on a connection of its own, has its own bucket.
    assert_eq!(
        list_over(s.addr, &ca.pem, Some(&admin), Bearer::key(TEST_KEY)).await,
        Ok(0)
    );
}
