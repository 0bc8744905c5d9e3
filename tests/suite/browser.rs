//! A real browser against the HTTP edge: headless Chromium loads a page
//! (served by the test, on another origin, as a CMS page would be) with
//! an `<img>` of a signed thumbnail URL and a `<video>` of a signed MP4
//! URL, and reports through the page's script that the picture decoded at
//! the expected size and that the video could seek to its end, which
//! takes working range requests.
//!
//! Without Chromium the test says so and passes, unless
//! `MEDIASTORE_REQUIRE_BROWSER` is set (CI sets it, having installed
//! Chromium), when it fails.

use std::{process::Stdio, time::Duration};

use axum::routing::get;
use mediastore::pb::v1 as pb;
use tokio::sync::mpsc;

use super::common::*;

/// How long the page has to report.
const PATIENCE: Duration = Duration::from_secs(60);

/// The Chromium binary, if this machine has one.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// The test page: reports what the browser saw to `/report`.
fn page(image: &str, video: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html><body>
<img id="img" src="{image}">
<video id="video" src="{video}" preload="auto" muted></video>
<script>
const report = (what, value) =>
  fetch("/report?" + new URLSearchParams({{what, value}}));
const img = document.getElementById("img");
img.onload = () => report("image", img.naturalWidth + "x" + img.naturalHeight);
img.onerror = () => report("image", "error");
const video = document.getElementById("video");
video.onloadedmetadata = () => {{ video.currentTime = video.duration; }};
video.onseeked = () => report("seeked", video.currentTime + "/" + video.duration);
video.onerror = () => report("video", "error " + (video.error && video.error.code));
// What the media element does underneath, asked for directly: a range
// (which also takes CORS, the page being on another origin).
fetch("{video}", {{headers: {{Range: "bytes=100-199"}}}})
  .then(async r => report("range", r.status + " " + (await r.arrayBuffer()).byteLength
    + " " + r.headers.get("Content-Range")))
  .catch(e => report("range", "error " + e));
</script>
</body></html>"#
    )
}

/// Kills the browser when the test ends, however it ends.
struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of `key` in a form-encoded query.
fn query_field(query: &str, key: &str) -> String {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn chromium_shows_a_signed_thumbnail_and_seeks_in_a_signed_video() {
    let Some(binary) = chromium() else {
        assert!(
            std::env::var_os("MEDIASTORE_REQUIRE_BROWSER").is_none(),
            "MEDIASTORE_REQUIRE_BROWSER is set, but no Chromium is installed \
             (apt-get install chromium)"
        );
        eprintln!("SKIPPED: no Chromium on this machine (apt-get install chromium)");
        return;
    };
    // The page's own server, another origin than the media's, which the
    // media server lets read answers from scripts.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_origin = format!("http://{}", listener.local_addr().unwrap());
    let mut s = TestServer::spawn_with(|c| {
        c.http_listen = Some("127.0.0.1:0".parse().unwrap());
        c.http_cors_origins = Some(page_origin.clone());
    })
    .await;
    let mut media = Vec::new();
    for (name, data) in [
        ("photo.jpg", encoded(image::ImageFormat::Jpeg, 1024, 768)),
        ("clip.mp4", fixture("video-h264-aac.mp4")),
    ] {
        let mut h = header(name, data.len());
        h.content_type = String::new();
        media.push(
            upload(&mut s.client, h, &data)
                .await
                .unwrap()
                .media
                .unwrap()
                .id,
        );
    }
    let mut url = async |req: pb::GetMediaUrlRequest| {
        let made = s.client.get_media_url(req).await.unwrap().into_inner();
        assert!(made.signed, "the media are private");
        made.url
    };
    let thumbnail = url(pb::GetMediaUrlRequest {
        media_id: media[0].clone(),
        preset: "thumbnail".into(),
        ..Default::default()
    })
    .await;
    let video = url(pb::GetMediaUrlRequest {
        media_id: media[1].clone(),
        ..Default::default()
    })
    .await;

    let (tx, mut reports) = mpsc::unbounded_channel::<(String, String)>();
    let html = page(&thumbnail, &video);
    let app = axum::Router::new()
        .route("/", get(move || async move { axum::response::Html(html) }))
        .route(
            "/report",
            get(move |uri: axum::http::Uri| async move {
                let field = |k: &str| query_field(uri.query().unwrap_or_default(), k);
                let _ = tx.send((field("what"), field("value")));
            }),
        );
    let page_url = format!("{page_origin}/");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let profile = tempfile::tempdir().unwrap();
    let _browser = Browser(
        std::process::Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--mute-audio",
                "--autoplay-policy=no-user-gesture-required",
                &format!("--user-data-dir={}", profile.path().display()),
                &page_url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let (mut image, mut seeked, mut range) = (None, None, None);
    let waited = tokio::time::timeout(PATIENCE, async {
        while image.is_none() || seeked.is_none() || range.is_none() {
            let Some((what, value)) = reports.recv().await else {
                break;
            };
            match what.as_str() {
                "image" => image = Some(value),
                "seeked" => seeked = Some(value),
                "range" => range = Some(value),
                _ => panic!("the page reported {what}: {value}"),
            }
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the page did not report within {PATIENCE:?}: image {image:?}, seeked {seeked:?}, \
         range {range:?}"
    );
    let size = fixture("video-h264-aac.mp4").len();
    assert_eq!(
        range.as_deref(),
        Some(format!("206 100 bytes 100-199/{size}").as_str())
    );
    assert_eq!(image.as_deref(), Some("256x192"), "the thumbnail");
    let seeked = seeked.unwrap();
    let (at, duration) = seeked.split_once('/').unwrap();
    let (at, duration): (f64, f64) = (at.parse().unwrap(), duration.parse().unwrap());
    assert!(
        (duration - 2.0).abs() < 0.1 && at > duration - 0.1,
        "the video seeked to {seeked}"
    );
}
