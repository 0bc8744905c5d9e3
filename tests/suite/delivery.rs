//! The HTTP edge over real HTTP: media URLs made by GetMediaUrl (and
//! `Media.url`), fetched with a plain HTTP/1.1 client; signatures, caching
//! validators, ranges, HEAD, Content-Disposition and what is never shown
//! inline.

use mediastore::{config::Config, library::UrlKeys, pb::v1 as pb};
use tonic::Code;

use super::common::*;

/// The server's signing keys in these tests: `k2` signs, `k1` (the key
/// before a rotation) still verifies.
const OLD: &str = "k1=0123456789abcdef0123456789abcdef";
const NEW: &str = "k2=fedcba9876543210fedcba9876543210";

fn with_http(c: &mut Config) {
    c.http_listen = Some("127.0.0.1:0".parse().unwrap());
    c.url_keys = Some(format!("{NEW},{OLD}"));
}

async fn spawn() -> TestServer {
    TestServer::spawn_with(with_http).await
}

/// Uploads `data` as `name`, public or not; returns its id.
async fn put(s: &mut TestServer, name: &str, data: &[u8], public: bool) -> String {
    put_typed(s, name, "", data, public).await
}

/// [`put`], declaring `content_type` (empty: none).
async fn put_typed(
    s: &mut TestServer,
    name: &str,
    content_type: &str,
    data: &[u8],
    public: bool,
) -> String {
    let mut h = header(name, data.len());
    h.content_type = content_type.into();
    h.public = public;
    upload(&mut s.client, h, data)
        .await
        .unwrap()
        .media
        .unwrap()
        .id
}

/// GetMediaUrl of the original of `id`.
fn original(id: &str) -> pb::GetMediaUrlRequest {
    pb::GetMediaUrlRequest {
        media_id: id.into(),
        ..Default::default()
    }
}

async fn url(s: &mut TestServer, req: pb::GetMediaUrlRequest) -> pb::GetMediaUrlResponse {
    s.client.get_media_url(req).await.unwrap().into_inner()
}

/// GetMediaUrl's refusal of `req`.
async fn url_refused(s: &mut TestServer, req: pb::GetMediaUrlRequest) -> tonic::Status {
    s.client.get_media_url(req).await.unwrap_err()
}

/// The URL signed by `keys` (`ID=SECRET`) instead of the server, with
/// expiry `exp`: what a forger, or a server of the past, would make.
fn signed_by(keys: &str, path_and_query: &str, exp: u64) -> String {
    let keys = UrlKeys::parse(keys).unwrap();
    let sep = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    let unsigned = format!("{path_and_query}{sep}exp={exp}&kid={}", keys.signing_id());
    format!("{unsigned}&sig={}", keys.sign(&unsigned))
}

/// The path and query of an absolute URL.
fn path_of(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap();
    &rest[rest.find('/').unwrap()..]
}

fn decoded_size(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).unwrap();
    (img.width(), img.height())
}

#[tokio::test]
async fn public_media_have_stable_unsigned_urls_cached_for_a_year() {
    let mut s = spawn().await;
    let jpeg = encoded(image::ImageFormat::Jpeg, 640, 480);
    let id = put(&mut s, "beach.JPG", &jpeg, true).await;
    let made = url(&mut s, original(&id)).await;
    let base = format!("http://{}", s.http.unwrap());
    assert_eq!(made.url, format!("{base}/image/0x0/{id}.jpg"));
    assert!(!made.signed && made.expire_time.is_none());
    // The same URL in the media's own description.
    assert_eq!(get_media(&mut s.client, &id).await.url, made.url);

    let got = http_get(&made.url, &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, jpeg);
    assert_eq!(got.header("content-type"), "image/jpeg");
    assert_eq!(got.header("content-length"), jpeg.len().to_string());
    assert_eq!(got.header("etag"), format!("\"{}\"", blake3_hex(&jpeg)));
    assert_eq!(
        got.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(got.header("accept-ranges"), "bytes");
    assert_eq!(got.header("x-content-type-options"), "nosniff");
    assert_eq!(
        got.header("content-disposition"),
        "inline; filename=\"beach.JPG\""
    );
    assert!(httpdate::parse_http_date(got.header("last-modified")).is_ok());
    // The extension is cosmetic: none, or another, serves the same.
    for path in [format!("/image/0x0/{id}"), format!("/image/0x0/{id}.jpeg")] {
        let same = http_get(&format!("{base}{path}"), &[]).await;
        assert_eq!((same.status, same.body.len()), (200, jpeg.len()));
    }

    // A rendition by size, and a preset's, both public too.
    let r = url(
        &mut s,
        pb::GetMediaUrlRequest {
            width: 200,
            ..original(&id)
        },
    )
    .await;
    assert_eq!(r.url, format!("{base}/image/200x0/{id}.jpg"));
    let got = http_get(&r.url, &[]).await;
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(got.header("content-type"), "image/jpeg");
    assert_eq!(decoded_size(&got.body), (200, 150));
    assert_eq!(
        got.header("content-disposition"),
        "inline; filename=\"beach.jpg\""
    );
    let thumb = url(
        &mut s,
        pb::GetMediaUrlRequest {
            preset: "thumbnail".into(),
            ..original(&id)
        },
    )
    .await;
    assert_eq!(thumb.url, format!("{base}/image/thumbnail/{id}.jpg"));
    let got = http_get(&thumb.url, &[]).await;
    assert_eq!(decoded_size(&got.body), (256, 192));
    // Options spelled in the URL: a WebP that covers a square.
    let got = http_get(
        &format!("{base}/image/100x100/{id}.webp?fit=cover&format=webp"),
        &[],
    )
    .await;
    assert_eq!(got.header("content-type"), "image/webp");
    assert_eq!(decoded_size(&got.body), (100, 100));
    // The same renditions as over gRPC: one render for each request.
    let renders = s.library.renders();
    http_get(&r.url, &[]).await;
    assert_eq!(s.library.renders(), renders);
}

#[tokio::test]
async fn private_media_need_a_valid_signature() {
    let mut s = spawn().await;
    let jpeg = encoded(image::ImageFormat::Jpeg, 320, 240);
    let id = put(&mut s, "private.jpg", &jpeg, false).await;
    let base = format!("http://{}", s.http.unwrap());

    // Without a signature, exactly what an unknown media gets.
    let bare = http_get(&format!("{base}/image/0x0/{id}.jpg"), &[]).await;
    let unknown = http_get(
        &format!("{base}/image/0x0/01900000-0000-7000-8000-000000000001.jpg"),
        &[],
    )
    .await;
    assert_eq!((bare.status, unknown.status), (404, 404));
    assert_eq!(bare.body, unknown.body);

    let made = url(
        &mut s,
        pb::GetMediaUrlRequest {
            expires_in_seconds: 600,
            ..original(&id)
        },
    )
    .await;
    assert!(made.signed);
    let exp = made.expire_time.unwrap().seconds;
    assert!(made.url.contains(&format!("exp={exp}&kid=k2&sig=")));
    let got = http_get(&made.url, &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, jpeg);
    let max_age: u64 = got
        .header("cache-control")
        .strip_prefix("private, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&max_age), "{max_age}");
    // `Media.url` is signed for the default lifetime.
    let listed = get_media(&mut s.client, &id).await.url;
    assert!(listed.contains("&kid=k2&sig="), "{listed}");
    // The same URL again (expiries are rounded to an eighth of the
    // lifetime), so a browser's cache keeps serving it.
    assert_eq!(get_media(&mut s.client, &id).await.url, listed);
    assert_eq!(http_get(&listed, &[]).await.status, 200);
    // A signed rendition.
    let thumb = url(
        &mut s,
        pb::GetMediaUrlRequest {
            preset: "thumbnail".into(),
            ..original(&id)
        },
    )
    .await;
    let got = http_get(&thumb.url, &[]).await;
    assert_eq!(decoded_size(&got.body), (256, 192));

    // Tampered: the signature, the expiry, the path, an option added.
    let tampered = [
        made.url.replace("sig=", "sig=A"),
        made.url
            .replace(&format!("exp={exp}"), &format!("exp={}", exp + 1)),
        made.url.replace("/0x0/", "/10x10/"),
        thumb.url.replace("/thumbnail/", "/100x0/"),
        made.url.replace("?exp", "?quality=5&exp"),
        made.url.replace("kid=k2", "kid=k1"),
    ];
    for bad in &tampered {
        let got = http_get(bad, &[]).await;
        assert_eq!(got.status, 403, "{bad}");
        assert_eq!(got.body, b"forbidden\n");
    }
    let path = format!("/image/0x0/{id}.jpg");
    let now = mediastore::library::unix_now();
    // Expired, though signed by the server's own key.
    let expired = signed_by(NEW, &path, now - 1);
    assert_eq!(http_get(&format!("{base}{expired}"), &[]).await.status, 403);
    // A key the server does not have, under an id it has and one it has not.
    for keys in [
        "k2=a-different-secret-of-enough-length!!",
        "k9=0123456789abcdef0123456789abcdef",
    ] {
        let forged = signed_by(keys, &path, now + 600);
        assert_eq!(
            http_get(&format!("{base}{forged}"), &[]).await.status,
            403,
            "{keys}"
        );
    }
    // Rotation: URLs signed by the previous key still work until they
    // expire; new ones are signed by the new key.
    let before_rotation = signed_by(OLD, &path, now + 600);
    let got = http_get(&format!("{base}{before_rotation}"), &[]).await;
    assert_eq!((got.status, got.body.len()), (200, jpeg.len()));
    assert!(path_of(&made.url).contains("kid=k2"));
}

#[tokio::test]
async fn conditional_requests_ranges_and_head() {
    let mut s = spawn().await;
    let data = content("ranges", 10_000);
    let id = put(&mut s, "data.bin", &data, true).await;
    let u = url(&mut s, original(&id)).await.url;
    let etag = format!("\"{}\"", blake3_hex(&data));

    let not_modified = http_get(&u, &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), etag);
    let modified = http_get(&u, &[("if-none-match", "\"something-else\"")]).await;
    assert_eq!((modified.status, modified.body.len()), (200, data.len()));

    let range = async |value: &str| http_get(&u, &[("range", value)]).await;
    for (value, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=5000-5999", 5000, 5999),
        ("bytes=9990-", 9990, 9999),
        ("bytes=-10", 9990, 9999),
        ("bytes=9000-20000", 9000, 9999),
    ] {
        let got = range(value).await;
        assert_eq!(got.status, 206, "{value}");
        assert_eq!(got.body, &data[start..=end], "{value}");
        assert_eq!(
            got.header("content-range"),
            format!("bytes {start}-{end}/10000")
        );
        assert_eq!(got.header("content-length"), (end - start + 1).to_string());
    }
    let unsatisfiable = range("bytes=10000-").await;
    assert_eq!(unsatisfiable.status, 416);
    assert_eq!(unsatisfiable.header("content-range"), "bytes */10000");

    // If-Range: the current ETag keeps the range, a stale one gets the
    // whole (new) representation.
    let kept = http_get(&u, &[("range", "bytes=0-9"), ("if-range", &etag)]).await;
    assert_eq!((kept.status, kept.body.len()), (206, 10));
    let stale = http_get(&u, &[("range", "bytes=0-9"), ("if-range", "\"stale\"")]).await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, data);

    let head = http_request("HEAD", &u, &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), "10000");
    assert_eq!(head.header("etag"), etag);
    let head_range = http_request("HEAD", &u, &[("range", "bytes=0-9")]).await;
    assert_eq!(head_range.status, 206);
    assert_eq!(head_range.header("content-length"), "10");
}

#[tokio::test]
async fn names_are_encoded_and_scriptable_types_are_never_shown_inline() {
    let mut s = spawn().await;
    let base = format!("http://{}", s.http.unwrap());
    for (name, want) in [
        (
            "say \"cheese\".txt",
            "inline; filename=\"say _cheese_.txt\"; filename*=UTF-8''say%20%22cheese%22.txt",
        ),
        (
            "Überblick – été.txt",
            "inline; filename=\"_berblick _ _t_.txt\"; \
             filename*=UTF-8''%C3%9Cberblick%20%E2%80%93%20%C3%A9t%C3%A9.txt",
        ),
        ("../../etc/passwd.txt", "inline; filename=\"passwd.txt\""),
    ] {
        let id = put(&mut s, name, b"plain text\n", true).await;
        let got = http_get(&format!("{base}/image/0x0/{id}"), &[]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("content-disposition"), want, "{name}");
    }

    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>"#;
    let html = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>";
    for (name, mime, data) in [
        ("logo.svg", "image/svg+xml", &svg[..]),
        ("page.html", "text/html", &html[..]),
        ("page.xhtml", "application/xhtml+xml", &html[..]),
    ] {
        let id = put_typed(&mut s, name, mime, data, true).await;
        let got = http_get(&format!("{base}/image/0x0/{id}"), &[]).await;
        assert_eq!(got.status, 200, "{name}");
        assert!(
            got.header("content-disposition").starts_with("attachment;"),
            "{name}: {} ({})",
            got.header("content-disposition"),
            got.header("content-type")
        );
        assert_eq!(got.header("content-type"), mime);
        assert_eq!(got.header("content-security-policy"), "sandbox");
        assert_eq!(got.header("x-content-type-options"), "nosniff");
    }
    // Markup sent without a type is recorded as plain text, which a
    // browser told `nosniff` shows as text, never renders.
    let id = put(&mut s, "logo.svg", svg, true).await;
    let got = http_get(&format!("{base}/image/0x0/{id}"), &[]).await;
    assert_eq!(got.header("content-type"), "text/plain");
    assert_eq!(got.header("x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn other_tenants_and_deleted_media_are_not_found() {
    let mut s = spawn().await;
    let base = format!("http://{}", s.http.unwrap());
    let tenant = new_tenant(s.addr, "other").await;
    let key = new_key(
        s.addr,
        &tenant.id,
        "other",
        "",
        &["media:read", "uploads:write"],
    )
    .await;
    let mut other = pb::media_service_client::MediaServiceClient::new(
        channel_with(s.addr, Bearer::key(&key)).await,
    );
    let mut h = header("theirs.bin", 100);
    h.content_type = String::new();
    let theirs = upload(&mut other, h, &content("theirs", 100))
        .await
        .unwrap()
        .media
        .unwrap()
        .id;
    // Not ours to make a URL for, and not served without a signature.
    let err = s.client.get_media_url(original(&theirs)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let got = http_get(&format!("{base}/image/0x0/{theirs}"), &[]).await;
    assert_eq!(got.status, 404);
    // Their own signed URL works for them.
    let theirs_url = other
        .get_media_url(original(&theirs))
        .await
        .unwrap()
        .into_inner()
        .url;
    assert_eq!(http_get(&theirs_url, &[]).await.status, 200);

    // Deleted: a signed and a public URL both go 404.
    let private = put(&mut s, "gone.bin", &content("gone", 50), false).await;
    let public = put(&mut s, "gone-too.bin", &content("gone-too", 50), true).await;
    let urls = [
        url(&mut s, original(&private)).await.url,
        url(&mut s, original(&public)).await.url,
    ];
    for u in &urls {
        assert_eq!(http_get(u, &[]).await.status, 200);
    }
    for id in [&private, &public] {
        s.client
            .delete_media(pb::DeleteMediaRequest {
                media_id: id.to_string(),
                force: false,
            })
            .await
            .unwrap();
    }
    for u in &urls {
        assert_eq!(http_get(u, &[]).await.status, 404, "{u}");
    }
}

#[tokio::test]
async fn urls_keep_get_renditions_limits() {
    let mut s = spawn().await;
    let base = format!("http://{}", s.http.unwrap());
    let jpeg = encoded(image::ImageFormat::Jpeg, 64, 48);
    let id = put(&mut s, "small.jpg", &jpeg, true).await;
    let doc = put(&mut s, "notes.txt", b"not a picture", true).await;

    // Each refused by GetMediaUrl as GetRendition refuses it, and by
    // the HTTP edge when spelled as a URL.
    let cases = [
        (
            pb::GetMediaUrlRequest {
                width: 5000,
                ..original(&id)
            },
            Code::InvalidArgument,
            "RENDITION_SIZE_NOT_ALLOWED",
            Some(format!("/image/5000x0/{id}")),
        ),
        (
            pb::GetMediaUrlRequest {
                preset: "huge".into(),
                ..original(&id)
            },
            Code::InvalidArgument,
            "RENDITION_PRESET_UNKNOWN",
            Some(format!("/image/huge/{id}")),
        ),
        (
            pb::GetMediaUrlRequest {
                width: 10,
                ..original(&doc)
            },
            Code::FailedPrecondition,
            "NOT_AN_IMAGE",
            Some(format!("/image/10x0/{doc}")),
        ),
        (
            pb::GetMediaUrlRequest {
                expires_in_seconds: 8 * 24 * 3600,
                ..original(&id)
            },
            Code::InvalidArgument,
            "FIELD_INVALID",
            None,
        ),
    ];
    for (req, code, why, path) in cases {
        let err = url_refused(&mut s, req).await;
        assert_eq!((err.code(), reason(&err).as_str()), (code, why));
        if let Some(path) = path {
            let got = http_get(&format!("{base}{path}"), &[]).await;
            assert_eq!(got.status, 400, "{path}");
            assert!(!got.body.is_empty(), "{path} says why");
        }
    }
    for bad in ["?fit=wide", "?quality=0", "?format=gif"] {
        let got = http_get(&format!("{base}/image/10x0/{id}{bad}"), &[]).await;
        assert_eq!(got.status, 400, "{bad}");
    }
    for missing in ["/", "/image/0x0/nothing", "/media/0x0/x"] {
        assert_eq!(http_get(&format!("{base}{missing}"), &[]).await.status, 404);
    }
}

#[tokio::test]
async fn without_a_base_url_there_are_no_urls() {
    let mut s = TestServer::spawn().await;
    let id = put(&mut s, "a.bin", &content("a", 10), true).await;
    let err = s.client.get_media_url(original(&id)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "DELIVERY_NOT_CONFIGURED");
    assert_eq!(get_media(&mut s.client, &id).await.url, "");
}

#[tokio::test]
async fn a_server_given_no_keys_makes_and_keeps_its_own() {
    let mut s = TestServer::spawn_with(|c| {
        c.http_listen = Some("127.0.0.1:0".parse().unwrap());
        c.public_base_url = Some("https://media.example.com/".into());
    })
    .await;
    let id = put(&mut s, "a.bin", &content("a", 10), false).await;
    let made = url(&mut s, original(&id)).await;
    assert!(
        made.url.starts_with(&format!(
            "https://media.example.com/image/0x0/{id}.bin?exp="
        )),
        "{}",
        made.url
    );
    assert!(made.url.contains("&kid=local&sig="));
    let key = std::fs::read_to_string(s.dir.path().join("url-signing.key")).unwrap();
    assert!(key.starts_with("local="));
    // What the proxy in front would forward: the path.
    let path = made.url.strip_prefix("https://media.example.com").unwrap();
    let local = format!("http://{}{path}", s.http.unwrap());
    assert_eq!(http_get(&local, &[]).await.status, 200);
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let mut s = TestServer::spawn_with(|c| {
        with_http(c);
        c.http_cors_origins = Some("https://app.example".into());
    })
    .await;
    let id = put(&mut s, "a.bin", &content("a", 10), true).await;
    let u = url(&mut s, original(&id)).await.url;
    let allowed = http_get(&u, &[("origin", "https://app.example")]).await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        "https://app.example"
    );
    assert!(
        allowed
            .header("access-control-expose-headers")
            .contains("Content-Range")
    );
    assert_eq!(allowed.header("vary"), "Origin");
    let other = http_get(&u, &[("origin", "https://evil.example")]).await;
    assert_eq!(other.header("access-control-allow-origin"), "");
    let preflight = http_request(
        "OPTIONS",
        &u,
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "range"),
        ],
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        "GET, HEAD"
    );
    assert!(
        preflight
            .header("access-control-allow-headers")
            .contains("Range")
    );
}

#[tokio::test]
async fn a_change_of_publicity_shows_in_the_next_answer() {
    let mut s = spawn().await;
    let id = put(&mut s, "a.bin", &content("publicity", 100), true).await;
    let bare = format!("http://{}/image/0x0/{id}", s.http.unwrap());
    // Twice, so that the second answer comes from memory.
    for _ in 0..2 {
        assert_eq!(http_get(&bare, &[]).await.status, 200);
    }
    let set_public = async |s: &mut TestServer, public: bool| {
        s.client
            .update_media(pb::UpdateMediaRequest {
                media: Some(pb::Media {
                    id: id.clone(),
                    public,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["public".into()],
                }),
            })
            .await
            .unwrap();
    };
    set_public(&mut s, false).await;
    assert_eq!(http_get(&bare, &[]).await.status, 404);
    // Public through its folder (the root), then not.
    let mut folders = pb::folder_service_client::FolderServiceClient::new(channel(s.addr).await);
    let root = async |folders: &mut pb::folder_service_client::FolderServiceClient<Channel>,
                      public: bool| {
        folders
            .set_folder_public(pb::SetFolderPublicRequest {
                folder_id: String::new(),
                public,
            })
            .await
            .unwrap();
    };
    root(&mut folders, true).await;
    assert_eq!(http_get(&bare, &[]).await.status, 200);
    root(&mut folders, false).await;
    assert_eq!(http_get(&bare, &[]).await.status, 404);
}

#[tokio::test]
async fn a_preset_url_is_served_whatever_sizes_are_allowed() {
    // Only 64x64 may be asked for by size; presets are exempt, by URL as
    // by GetRendition.
    let mut s = TestServer::spawn_with(|c| {
        with_http(c);
        c.rendition_sizes = Some("64x64".into());
    })
    .await;
    let base = format!("http://{}", s.http.unwrap());
    let id = put(
        &mut s,
        "p.jpg",
        &encoded(image::ImageFormat::Jpeg, 640, 480),
        true,
    )
    .await;
    let got = http_get(&format!("{base}/image/thumbnail/{id}.jpg"), &[]).await;
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(decoded_size(&got.body), (256, 192));
    assert_eq!(
        http_get(&format!("{base}/image/64x64/{id}"), &[])
            .await
            .status,
        200
    );
    assert_eq!(
        http_get(&format!("{base}/image/100x0/{id}"), &[])
            .await
            .status,
        400
    );
}

/// A URL may name a slot or a code instead of a media: it serves whatever
/// media the slot holds when fetched, so an avatar's URL survives a new
/// avatar; unsigned only while that media is public.
#[tokio::test(flavor = "multi_thread")]
async fn urls_by_slot_and_code_follow_what_they_hold() {
    let mut s = spawn().await;
    let avatar = |n: &str| content(&format!("avatar {n}"), 5000);
    let into_slot = |n: &str, public: bool, code: &str| {
        let data = avatar(n);
        pb::UploadHeader {
            slot: Some(pb::MediaSlot {
                resource: "user/42".into(),
                key: "avatar".into(),
            }),
            public,
            code: code.into(),
            ..header(&format!("{n}.bin"), data.len())
        }
    };
    let first = upload(&mut s.client, into_slot("one", true, ""), &avatar("one"))
        .await
        .unwrap()
        .media
        .unwrap();
    let by_slot = pb::GetMediaUrlRequest {
        slot: Some(pb::MediaSlot {
            resource: "user/42".into(),
            key: "avatar".into(),
        }),
        ..Default::default()
    };
    let made = url(&mut s, by_slot.clone()).await;
    assert!(!made.signed, "the media in the slot is public");
    let tenant = mediastore::domain::TenantId::DEFAULT;
    assert!(
        made.url
            .ends_with(&format!("/image/0x0/s/{tenant}/user%2F42/avatar")),
        "{}",
        made.url
    );
    let got = http_get(&made.url, &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, avatar("one"));
    // What it serves changes: caches keep it but ask again each time.
    assert_eq!(got.header("cache-control"), "public, no-cache");
    let etag = got.header("etag").to_string();
    let again = http_get(&made.url, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    // A new avatar: the same URL serves it.
    upload(&mut s.client, into_slot("two", true, ""), &avatar("two"))
        .await
        .unwrap();
    let got = http_get(&made.url, &[("if-none-match", &etag)]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, avatar("two"));
    assert_eq!(url(&mut s, by_slot.clone()).await.url, made.url);
    let base = format!("http://{}", s.http.unwrap());
    let gone = http_get(&format!("{base}/image/0x0/{}", first.id), &[]).await;
    assert_eq!(gone.status, 404);
    // A private one: its unsigned URL answers nothing, a signed one (by
    // code here) serves it.
    upload(
        &mut s.client,
        into_slot("three", false, "AV-42"),
        &avatar("three"),
    )
    .await
    .unwrap();
    assert_eq!(http_get(&made.url, &[]).await.status, 404);
    let signed = url(
        &mut s,
        pb::GetMediaUrlRequest {
            code: "AV-42".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(signed.signed);
    assert!(
        signed
            .url
            .contains(&format!("/image/0x0/c/{tenant}/AV-42?exp=")),
        "{}",
        signed.url
    );
    let got = http_get(&signed.url, &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, avatar("three"));
    // An empty slot's URL, and a slot of another tenant, answer 404.
    for path in [
        format!("/image/0x0/s/{tenant}/user%2F43/avatar"),
        format!("/image/0x0/s/{}/user%2F42/avatar", uuid::Uuid::now_v7()),
        format!("/image/0x0/c/{tenant}/nope"),
        format!("/image/0x0/s/{tenant}/%20bad"),
    ] {
        assert_eq!(
            http_get(&format!("{base}{path}"), &[]).await.status,
            404,
            "{path}"
        );
    }
}
