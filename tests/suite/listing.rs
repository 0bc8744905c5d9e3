//! ListMedia through the real server: every filter, folder scopes, sort
//! orders, paging, read masks, bad requests, and keyset pages that stay
//! consistent while other clients upload and delete.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use crate::common::*;
use mediastore::pb::v1::{
    self as pb, CreateFolderRequest, DeleteMediaRequest, GetRootFolderRequest, ListMediaRequest,
    ListMediaResponse, MediaFilter, MediaOrderBy, MediaType, TimeRange, UploadHeader,
    folder_service_client::FolderServiceClient, media_service_client::MediaServiceClient,
};
use prost_types::FieldMask;
use tonic::{Code, Status};

use crate::common::Channel;

type Client = MediaServiceClient<Channel>;
/// A change to a request.
type Change = Box<dyn Fn(&mut ListMediaRequest)>;

/// Uploads `len` bytes (distinct per `name`) as `name`, after `tweak` has
/// adjusted the header.
async fn up(
    client: &mut Client,
    name: &str,
    len: usize,
    tweak: impl FnOnce(&mut UploadHeader),
) -> pb::Media {
    let mut h = header(name, len);
    tweak(&mut h);
    let data = with_magic(&h.content_type, content(name, len));
    upload(client, h, &data).await.unwrap().media.unwrap()
}

/// Uploads, then pauses so consecutive uploads get distinct creation times.
async fn up_spaced(
    client: &mut Client,
    name: &str,
    len: usize,
    tweak: impl FnOnce(&mut UploadHeader),
) -> pb::Media {
    let m = up(client, name, len, tweak).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    m
}

async fn list(client: &mut Client, req: ListMediaRequest) -> Result<ListMediaResponse, Status> {
    client
        .list_media(req)
        .await
        .map(tonic::Response::into_inner)
}

/// Every media the request matches, walking pages of `req.page_size`.
async fn walk(client: &mut Client, mut req: ListMediaRequest) -> Vec<pb::Media> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let page = list(client, req.clone()).await.unwrap();
        out.extend(page.media);
        if page.next_page_token.is_empty() {
            return out;
        }
        req.page_token = page.next_page_token;
    }
    panic!("the walk never ended");
}

fn ids(media: &[pb::Media]) -> Vec<String> {
    media.iter().map(|m| m.id.clone()).collect()
}

fn id_set(media: &[pb::Media]) -> HashSet<String> {
    media.iter().map(|m| m.id.clone()).collect()
}

/// Ids of every media matching `filter`, as a set.
async fn matching(client: &mut Client, filter: MediaFilter) -> HashSet<String> {
    let page = list(
        client,
        ListMediaRequest {
            page_size: 1000,
            filter: Some(filter),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(page.next_page_token.is_empty());
    id_set(&page.media)
}

fn set_of(media: &[&pb::Media]) -> HashSet<String> {
    media.iter().map(|m| m.id.clone()).collect()
}

/// (year, month) in UTC of a timestamp, by the service's own calendar
/// rule.
fn year_month(t: &prost_types::Timestamp) -> (u32, u32) {
    let micros = t.seconds * 1_000_000 + i64::from(t.nanos / 1000);
    let (year, month) = mediastore::domain::year_month(micros);
    (u32::try_from(year).unwrap(), u32::try_from(month).unwrap())
}

fn expect_invalid(r: Result<ListMediaResponse, Status>, field: &str) {
    let status = r.expect_err("the request should be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(bad_field(&status).as_deref(), Some(field), "{status:?}");
}

/// The five media the filter tests look for.
struct Five {
    a: pb::Media,
    b: pb::Media,
    c: pb::Media,
    d: pb::Media,
    e: pb::Media,
}

async fn five(client: &mut Client) -> Five {
    let with = |ct: &'static str, title: &'static str, tags: &'static [&'static str]| {
        move |h: &mut UploadHeader| {
            h.content_type = ct.into();
            h.title = title.into();
            h.tags = tags.iter().map(|t| (*t).to_string()).collect();
        }
    };
    let a = up_spaced(
        client,
        "a1.png",
        100,
        with("image/png", "beach day", &["sea", "sun"]),
    )
    .await;
    let b = up_spaced(client, "b2.jpg", 200, with("image/jpeg", "city", &["sun"])).await;
    let c = up_spaced(
        client,
        "c3_Sunset.mp4",
        300,
        with("video/mp4", "holiday clip", &["sea", "family"]),
    )
    .await;
    let d = up_spaced(
        client,
        "d4.pdf",
        400,
        with("application/pdf", "report", &[]),
    )
    .await;
    let e = up_spaced(
        client,
        "e5.bin",
        500,
        with("application/octet-stream", "data", &["beachwear"]),
    )
    .await;
    Five { a, b, c, d, e }
}

#[tokio::test(flavor = "multi_thread")]
async fn type_mime_and_tag_filters_select_exactly_the_matching_media() {
    let mut s = TestServer::spawn().await;
    let Five { a, b, c, d, e } = five(&mut s.client).await;
    assert_eq!(a.media_type, MediaType::Image as i32);
    assert_eq!(c.media_type, MediaType::Video as i32);
    assert_eq!(d.media_type, MediaType::Document as i32);
    assert_eq!(e.media_type, MediaType::Other as i32);
    let cl = &mut s.client;

    let f = |types: &[MediaType]| MediaFilter {
        media_types: types.iter().map(|t| *t as i32).collect(),
        ..Default::default()
    };
    assert_eq!(
        matching(cl, f(&[MediaType::Image])).await,
        set_of(&[&a, &b])
    );
    assert_eq!(
        matching(cl, f(&[MediaType::Video, MediaType::Document])).await,
        set_of(&[&c, &d])
    );
    assert_eq!(matching(cl, f(&[MediaType::Other])).await, set_of(&[&e]));
    assert!(matching(cl, f(&[MediaType::Audio])).await.is_empty());

    let m = |mimes: &[&str]| MediaFilter {
        mime_types: mimes.iter().map(|m| (*m).to_string()).collect(),
        ..Default::default()
    };
    assert_eq!(matching(cl, m(&["image/png"])).await, set_of(&[&a]));
    assert_eq!(matching(cl, m(&["image/*"])).await, set_of(&[&a, &b]));
    assert_eq!(
        matching(cl, m(&["image/*", "application/pdf"])).await,
        set_of(&[&a, &b, &d])
    );
    assert_eq!(matching(cl, m(&["video/*"])).await, set_of(&[&c]));
    assert!(matching(cl, m(&["image/gif"])).await.is_empty());
    // "application/*" is a family of its own, not a prefix of "app".
    assert_eq!(matching(cl, m(&["application/*"])).await, set_of(&[&d, &e]));

    let any = |tags: &[&str]| MediaFilter {
        tags_any: tags.iter().map(|t| (*t).to_string()).collect(),
        ..Default::default()
    };
    assert_eq!(matching(cl, any(&["sea"])).await, set_of(&[&a, &c]));
    assert_eq!(
        matching(cl, any(&["family", "sun"])).await,
        set_of(&[&a, &b, &c])
    );
    assert!(matching(cl, any(&["nope"])).await.is_empty());
    // Tags match whole, not by prefix: "beach" is not "beachwear".
    assert!(matching(cl, any(&["beach"])).await.is_empty());

    let all = |tags: &[&str]| MediaFilter {
        tags_all: tags.iter().map(|t| (*t).to_string()).collect(),
        ..Default::default()
    };
    assert_eq!(matching(cl, all(&["sea", "sun"])).await, set_of(&[&a]));
    assert_eq!(matching(cl, all(&["sun"])).await, set_of(&[&a, &b]));
    assert_eq!(matching(cl, all(&["sea", "family"])).await, set_of(&[&c]));
    assert!(
        matching(cl, all(&["sea", "sun", "family"]))
            .await
            .is_empty()
    );

    // Conditions combine with AND.
    let combined = MediaFilter {
        media_types: vec![MediaType::Image as i32],
        tags_any: vec!["sea".into()],
        ..Default::default()
    };
    assert_eq!(matching(cl, combined).await, set_of(&[&a]));
    let combined = MediaFilter {
        mime_types: vec!["image/*".into()],
        tags_all: vec!["sun".into()],
        max_size_bytes: Some(150),
        ..Default::default()
    };
    assert_eq!(matching(cl, combined).await, set_of(&[&a]));
}

#[tokio::test(flavor = "multi_thread")]
async fn time_size_dimension_and_text_filters_select_exactly_the_matching_media() {
    let mut s = TestServer::spawn().await;
    let Five { a, b, c, d, e } = five(&mut s.client).await;
    let everything = set_of(&[&a, &b, &c, &d, &e]);
    let cl = &mut s.client;

    // Year and month: those of the creation time (no EXIF here).
    let (year, month) = year_month(a.create_time.as_ref().unwrap());
    assert_eq!((a.taken_year, a.taken_month), (year, month));
    let f = MediaFilter {
        year: Some(year),
        ..Default::default()
    };
    assert_eq!(matching(cl, f).await, everything);
    let f = MediaFilter {
        year: Some(1999),
        ..Default::default()
    };
    assert!(matching(cl, f).await.is_empty());
    let f = MediaFilter {
        month: Some(month),
        ..Default::default()
    };
    assert_eq!(matching(cl, f).await, everything);
    let f = MediaFilter {
        month: Some(month % 12 + 1),
        ..Default::default()
    };
    assert!(matching(cl, f).await.is_empty());
    let f = MediaFilter {
        year: Some(year),
        month: Some(month),
        tags_any: vec!["sea".into()],
        ..Default::default()
    };
    assert_eq!(matching(cl, f).await, set_of(&[&a, &c]));

    // Creation time: a half-open range.
    let times: Vec<_> = [&a, &b, &c, &d, &e]
        .iter()
        .map(|m| m.create_time.unwrap())
        .collect();
    for w in times.windows(2) {
        assert!(
            (w[0].seconds, w[0].nanos) < (w[1].seconds, w[1].nanos),
            "uploads got non-increasing creation times: {times:?}"
        );
    }
    let range =
        |start: Option<prost_types::Timestamp>, end: Option<prost_types::Timestamp>| MediaFilter {
            create_time: Some(TimeRange {
                start_time: start,
                end_time: end,
            }),
            ..Default::default()
        };
    assert_eq!(
        matching(cl, range(b.create_time, d.create_time)).await,
        set_of(&[&b, &c])
    );
    assert_eq!(
        matching(cl, range(d.create_time, None)).await,
        set_of(&[&d, &e])
    );
    assert_eq!(
        matching(cl, range(None, b.create_time)).await,
        set_of(&[&a])
    );
    assert!(
        matching(cl, range(c.create_time, c.create_time))
            .await
            .is_empty()
    );
    // Nothing was taken (no EXIF): a taken-time range matches nothing.
    let f = MediaFilter {
        taken_time: Some(TimeRange {
            start_time: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            end_time: None,
        }),
        ..Default::default()
    };
    assert!(matching(cl, f).await.is_empty());

    // Size bounds are inclusive.
    let size = |min: Option<u64>, max: Option<u64>| MediaFilter {
        min_size_bytes: min,
        max_size_bytes: max,
        ..Default::default()
    };
    assert_eq!(
        matching(cl, size(Some(200), None)).await,
        set_of(&[&b, &c, &d, &e])
    );
    assert_eq!(
        matching(cl, size(None, Some(300))).await,
        set_of(&[&a, &b, &c])
    );
    assert_eq!(
        matching(cl, size(Some(200), Some(300))).await,
        set_of(&[&b, &c])
    );
    assert_eq!(
        matching(cl, size(Some(201), Some(299))).await,
        HashSet::new()
    );

    // Width and height: unknown (0) for all of these, so no lower bound
    // above 0 matches.
    let f = MediaFilter {
        min_width: Some(1),
        ..Default::default()
    };
    assert!(matching(cl, f).await.is_empty());
    let f = MediaFilter {
        min_height: Some(1),
        ..Default::default()
    };
    assert!(matching(cl, f).await.is_empty());

    // Text: a substring of the title, the filename or a tag, any ASCII case.
    let q = |text: &str| MediaFilter {
        query: text.into(),
        ..Default::default()
    };
    // Title "beach day" and tag "beachwear".
    assert_eq!(matching(cl, q("BEACH")).await, set_of(&[&a, &e]));
    assert_eq!(matching(cl, q("beach day")).await, set_of(&[&a]));
    // Title only.
    assert_eq!(matching(cl, q("HoLiDaY")).await, set_of(&[&c]));
    // Filename only ("c3_Sunset.mp4"), whatever the case.
    assert_eq!(matching(cl, q("sunset")).await, set_of(&[&c]));
    assert_eq!(matching(cl, q(".PDF")).await, set_of(&[&d]));
    // Tag only.
    assert_eq!(matching(cl, q("FAMIL")).await, set_of(&[&c]));
    assert_eq!(matching(cl, q("wear")).await, set_of(&[&e]));
    // Tags "sun" of a and b, filename "c3_Sunset.mp4" of c.
    assert_eq!(matching(cl, q("Sun")).await, set_of(&[&a, &b, &c]));
    assert!(matching(cl, q("zzz")).await.is_empty());
    // Blank text does not filter.
    assert_eq!(matching(cl, q("   ")).await, everything);
    // Combined with another condition.
    let f = MediaFilter {
        query: "sun".into(),
        media_types: vec![MediaType::Video as i32],
        ..Default::default()
    };
    assert_eq!(matching(cl, f).await, set_of(&[&c]));
}

#[tokio::test(flavor = "multi_thread")]
async fn folder_scope_is_direct_unless_recursive() {
    let mut s = TestServer::spawn().await;
    let mut folders = FolderServiceClient::new(channel(s.addr).await);
    let root = folders
        .get_root_folder(GetRootFolderRequest {})
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    let fa = folders
        .create_folder(CreateFolderRequest {
            parent_folder_id: String::new(),
            name: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    let fb = folders
        .create_folder(CreateFolderRequest {
            parent_folder_id: fa.id.clone(),
            name: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    let other = folders
        .create_folder(CreateFolderRequest {
            parent_folder_id: String::new(),
            name: "other".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();

    let cl = &mut s.client;
    let r = up(cl, "r.bin", 10, |_| {}).await;
    let x1 = up(cl, "x1.bin", 11, |h| h.parent_folder_id = fa.id.clone()).await;
    let x2 = up(cl, "x2.bin", 12, |h| {
        h.parent_folder_id = fa.id.clone();
        h.tags = vec!["t".into()];
    })
    .await;
    let y = up(cl, "y.bin", 13, |h| {
        h.parent_folder_id = fb.id.clone();
        h.tags = vec!["t".into()];
    })
    .await;
    let o = up(cl, "o.bin", 14, |h| h.parent_folder_id = other.id.clone()).await;
    assert_eq!(x1.parent_folder_id, fa.id);
    assert_eq!(y.parent_folder_id, fb.id);

    let scope = |folder: &str, recursive: bool| ListMediaRequest {
        parent_folder_id: folder.into(),
        recursive,
        page_size: 100,
        ..Default::default()
    };
    let got = |resp: ListMediaResponse| id_set(&resp.media);

    assert_eq!(
        got(list(cl, scope(&fa.id, false)).await.unwrap()),
        set_of(&[&x1, &x2])
    );
    assert_eq!(
        got(list(cl, scope(&fa.id, true)).await.unwrap()),
        set_of(&[&x1, &x2, &y])
    );
    assert_eq!(
        got(list(cl, scope(&fb.id, false)).await.unwrap()),
        set_of(&[&y])
    );
    assert_eq!(
        got(list(cl, scope(&fb.id, true)).await.unwrap()),
        set_of(&[&y])
    );
    assert_eq!(
        got(list(cl, scope(&other.id, true)).await.unwrap()),
        set_of(&[&o])
    );
    assert_eq!(
        got(list(cl, scope(&root.id, false)).await.unwrap()),
        set_of(&[&r])
    );
    assert_eq!(
        got(list(cl, scope(&root.id, true)).await.unwrap()),
        set_of(&[&r, &x1, &x2, &y, &o])
    );
    assert_eq!(
        got(list(cl, scope("", false)).await.unwrap()),
        set_of(&[&r, &x1, &x2, &y, &o])
    );

    // Scope and filter together.
    let mut req = scope(&fa.id, true);
    req.filter = Some(MediaFilter {
        tags_any: vec!["t".into()],
        ..Default::default()
    });
    req.include_total_size = true;
    let resp = list(cl, req.clone()).await.unwrap();
    assert_eq!(resp.total_size, Some(2));
    assert_eq!(got(resp), set_of(&[&x2, &y]));
    req.recursive = false;
    let resp = list(cl, req).await.unwrap();
    assert_eq!(resp.total_size, Some(1));
    assert_eq!(got(resp), set_of(&[&x2]));

    // Paging a recursive scope returns each media once.
    let mut req = scope(&fa.id, true);
    req.page_size = 1;
    let walked = walk(cl, req).await;
    assert_eq!(walked.len(), 3);
    assert_eq!(id_set(&walked), set_of(&[&x1, &x2, &y]));
}

#[tokio::test(flavor = "multi_thread")]
async fn sort_orders_return_exactly_the_expected_sequence() {
    let mut s = TestServer::spawn().await;
    let cl = &mut s.client;
    let sizes = [300, 100, 500, 200, 400];
    let titles = ["delta", "alpha", "echo", "charlie", "bravo"];
    let filenames = ["b.bin", "e.bin", "a.bin", "d.bin", "c.bin"];
    let mut media = Vec::new();
    for i in 0..5 {
        media.push(
            up_spaced(cl, filenames[i], sizes[i], |h| {
                h.title = titles[i].into();
            })
            .await,
        );
    }
    let by = |idx: &[usize]| -> Vec<String> { idx.iter().map(|&i| media[i].id.clone()).collect() };

    async fn order(cl: &mut Client, order_by: MediaOrderBy, ascending: bool) -> Vec<String> {
        let full = list(
            cl,
            ListMediaRequest {
                page_size: 100,
                order_by: order_by as i32,
                ascending,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // The same order one media per page.
        let paged = walk(
            cl,
            ListMediaRequest {
                page_size: 1,
                order_by: order_by as i32,
                ascending,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            ids(&paged),
            ids(&full.media),
            "{order_by:?} asc={ascending}"
        );
        ids(&full.media)
    }

    // Default: newest first.
    assert_eq!(
        order(cl, MediaOrderBy::Unspecified, false).await,
        by(&[4, 3, 2, 1, 0])
    );
    assert_eq!(
        order(cl, MediaOrderBy::CreateTime, false).await,
        by(&[4, 3, 2, 1, 0])
    );
    assert_eq!(
        order(cl, MediaOrderBy::CreateTime, true).await,
        by(&[0, 1, 2, 3, 4])
    );
    assert_eq!(
        order(cl, MediaOrderBy::Size, true).await,
        by(&[1, 3, 0, 4, 2])
    );
    assert_eq!(
        order(cl, MediaOrderBy::Size, false).await,
        by(&[2, 4, 0, 3, 1])
    );
    assert_eq!(
        order(cl, MediaOrderBy::Title, true).await,
        by(&[1, 4, 3, 0, 2])
    );
    assert_eq!(
        order(cl, MediaOrderBy::Title, false).await,
        by(&[2, 0, 3, 4, 1])
    );
    assert_eq!(
        order(cl, MediaOrderBy::Filename, true).await,
        by(&[2, 0, 4, 3, 1])
    );
    assert_eq!(
        order(cl, MediaOrderBy::Filename, false).await,
        by(&[1, 3, 4, 0, 2])
    );
    // No metadata changed since upload: update time follows creation time.
    assert_eq!(
        order(cl, MediaOrderBy::UpdateTime, true).await,
        by(&[0, 1, 2, 3, 4])
    );
    // Nothing was taken: taken time falls back to the creation time.
    assert_eq!(
        order(cl, MediaOrderBy::TakenTime, false).await,
        by(&[4, 3, 2, 1, 0])
    );

    // Equal keys: the id breaks the tie, in the same direction.
    let t1 = up(cl, "tie1.bin", 250, |_| {}).await;
    let t2 = up(cl, "tie2.bin", 250, |_| {}).await;
    let t3 = up(cl, "tie3.bin", 250, |_| {}).await;
    let mut tied = vec![t1.id.clone(), t2.id.clone(), t3.id.clone()];
    tied.sort();
    let asc = order(cl, MediaOrderBy::Size, true).await;
    assert_eq!(
        asc,
        [by(&[1, 3]), tied.clone(), by(&[0, 4, 2])].concat(),
        "ascending size with ties"
    );
    tied.reverse();
    let desc = order(cl, MediaOrderBy::Size, false).await;
    assert_eq!(
        desc,
        [by(&[2, 4, 0]), tied, by(&[3, 1])].concat(),
        "descending size with ties"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_cover_every_media_once_with_totals_and_read_masks() {
    let mut s = TestServer::spawn().await;
    let cl = &mut s.client;
    let mut uploaded = Vec::new();
    for i in 0..7 {
        uploaded.push(
            up_spaced(cl, &format!("p{i}.bin"), 10 + i, |h| {
                h.title = format!("page {i}");
                if i.is_multiple_of(2) {
                    h.tags = vec!["even".into()];
                }
            })
            .await,
        );
    }
    let newest_first: Vec<String> = uploaded.iter().rev().map(|m| m.id.clone()).collect();

    // Pages of 2: 2, 2, 2, 1, in order, the last without a token.
    let mut req = ListMediaRequest {
        page_size: 2,
        include_total_size: true,
        ..Default::default()
    };
    let mut walked = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let page = list(cl, req.clone()).await.unwrap();
        assert_eq!(page.total_size, Some(7));
        sizes.push(page.media.len());
        walked.extend(ids(&page.media));
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(sizes.len() < 10, "too many pages");
        req.page_token = page.next_page_token;
    }
    assert_eq!(sizes, vec![2, 2, 2, 1]);
    assert_eq!(walked, newest_first);

    // Changing only the page size keeps the token valid.
    let first = list(
        cl,
        ListMediaRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(first.total_size, None, "total_size was not asked for");
    let rest = list(
        cl,
        ListMediaRequest {
            page_size: 100,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(rest.next_page_token.is_empty());
    assert_eq!([ids(&first.media), ids(&rest.media)].concat(), newest_first);

    // Exactly a page's worth: no empty page after it.
    let exact = list(
        cl,
        ListMediaRequest {
            page_size: 7,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(exact.media.len(), 7);
    assert!(exact.next_page_token.is_empty());

    // Page size 0 means the default (50).
    let dflt = list(cl, ListMediaRequest::default()).await.unwrap();
    assert_eq!(ids(&dflt.media), newest_first);
    assert!(dflt.next_page_token.is_empty());

    // The total counts the filtered media, not the page.
    let even = list(
        cl,
        ListMediaRequest {
            page_size: 1,
            include_total_size: true,
            filter: Some(MediaFilter {
                tags_all: vec!["even".into()],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(even.total_size, Some(4));
    assert_eq!(even.media.len(), 1);
    let none = list(
        cl,
        ListMediaRequest {
            include_total_size: true,
            filter: Some(MediaFilter {
                tags_all: vec!["nope".into()],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(none.total_size, Some(0));
    assert!(none.media.is_empty());
    assert!(none.next_page_token.is_empty());

    // A read mask keeps the id and the named fields only, on every page.
    let masked = walk(
        cl,
        ListMediaRequest {
            page_size: 3,
            read_mask: Some(FieldMask {
                paths: vec!["title".into()],
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&masked), newest_first);
    for (m, u) in masked.iter().zip(uploaded.iter().rev()) {
        assert_eq!(m.title, u.title);
        assert!(m.filename.is_empty(), "filename not cleared: {m:?}");
        assert!(m.blake3.is_empty(), "blake3 not cleared: {m:?}");
        assert_eq!(m.size_bytes, 0);
        assert!(m.parent_folder_id.is_empty());
        assert!(m.mime_type.is_empty());
        assert!(m.tags.is_empty());
        assert!(m.create_time.is_none());
        assert!(!m.ready);
    }
    let masked = list(
        cl,
        ListMediaRequest {
            read_mask: Some(FieldMask {
                paths: vec!["id".into(), "size_bytes".into(), "tags".into()],
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for (m, u) in masked.media.iter().zip(uploaded.iter().rev()) {
        assert_eq!(m.id, u.id);
        assert_eq!(m.size_bytes, u.size_bytes);
        assert_eq!(m.tags, u.tags);
        assert!(m.title.is_empty());
        assert!(m.blake3.is_empty());
    }
    // Without a mask, everything comes back.
    let full = list(cl, ListMediaRequest::default()).await.unwrap();
    for (m, u) in full.media.iter().zip(uploaded.iter().rev()) {
        assert_eq!(m.filename, u.filename);
        assert_eq!(m.blake3, u.blake3);
        assert_eq!(m.create_time, u.create_time);
        assert!(m.ready);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_with_the_field_named() {
    let mut s = TestServer::spawn().await;
    let cl = &mut s.client;
    for i in 0..4 {
        up(cl, &format!("bad{i}.bin"), 20 + i, |h| {
            h.tags = vec!["x".into()];
        })
        .await;
    }
    let base = ListMediaRequest {
        page_size: 1,
        ..Default::default()
    };
    let token = list(cl, base.clone()).await.unwrap().next_page_token;
    assert!(!token.is_empty());
    // The token works with the same request.
    let mut ok = base.clone();
    ok.page_token = token.clone();
    assert_eq!(list(cl, ok).await.unwrap().media.len(), 1);

    // Tampered tokens.
    let flip = |pos: usize| -> String {
        let mut chars: Vec<char> = token.chars().collect();
        chars[pos] = if chars[pos] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect()
    };
    let len = token.chars().count();
    for pos in [len / 2, len / 3, 4, len - 3] {
        let mut req = base.clone();
        req.page_token = flip(pos);
        assert_ne!(req.page_token, token);
        expect_invalid(list(cl, req).await, "page_token");
    }
    for junk in ["garbage", "v2.", "v2.!!!!", "v1.AAAA", &token[..len / 2]] {
        let mut req = base.clone();
        req.page_token = junk.to_string();
        expect_invalid(list(cl, req).await, "page_token");
    }

    // A real token with a different filter, order, direction or folder.
    let root = FolderServiceClient::new(channel(s.addr).await)
        .get_root_folder(GetRootFolderRequest {})
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    let cl = &mut s.client;
    let variants: Vec<(&str, Change)> = vec![
        (
            "filter",
            Box::new(|r| {
                r.filter = Some(MediaFilter {
                    tags_any: vec!["x".into()],
                    ..Default::default()
                });
            }),
        ),
        (
            "query",
            Box::new(|r| {
                r.filter = Some(MediaFilter {
                    query: "bad".into(),
                    ..Default::default()
                });
            }),
        ),
        (
            "order",
            Box::new(|r| r.order_by = MediaOrderBy::Size as i32),
        ),
        ("direction", Box::new(|r| r.ascending = true)),
        (
            "folder",
            Box::new(move |r| r.parent_folder_id = root.id.clone()),
        ),
    ];
    for (what, change) in &variants {
        let mut req = base.clone();
        change(&mut req);
        // The changed request itself is fine.
        list(cl, req.clone()).await.unwrap();
        req.page_token = token.clone();
        let status = list(cl, req).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_eq!(
            bad_field(&status).as_deref(),
            Some("page_token"),
            "{what}: {status:?}"
        );
    }

    // Page sizes.
    for n in [-1, 1001, i32::MIN, i32::MAX] {
        let req = ListMediaRequest {
            page_size: n,
            ..Default::default()
        };
        expect_invalid(list(cl, req).await, "page_size");
    }
    for n in [0, 1, 1000] {
        let req = ListMediaRequest {
            page_size: n,
            ..Default::default()
        };
        let resp = list(cl, req).await.unwrap();
        assert_eq!(resp.media.len(), if n == 1 { 1 } else { 4 });
    }

    // Read masks.
    let status = list(
        cl,
        ListMediaRequest {
            read_mask: Some(FieldMask {
                paths: vec!["title".into(), "no_such_field".into()],
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        bad_field(&status).is_some_and(|f| f.starts_with("read_mask")),
        "{status:?}"
    );

    // Folders.
    expect_invalid(
        list(
            cl,
            ListMediaRequest {
                recursive: true,
                ..Default::default()
            },
        )
        .await,
        "recursive",
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    for recursive in [false, true] {
        let status = list(
            cl,
            ListMediaRequest {
                parent_folder_id: unknown.clone(),
                recursive,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    expect_invalid(
        list(
            cl,
            ListMediaRequest {
                parent_folder_id: "not-a-folder-id".into(),
                ..Default::default()
            },
        )
        .await,
        "parent_folder_id",
    );

    // Filters.
    let with = |f: MediaFilter| ListMediaRequest {
        filter: Some(f),
        ..Default::default()
    };
    for month in [0, 13] {
        expect_invalid(
            list(
                cl,
                with(MediaFilter {
                    month: Some(month),
                    ..Default::default()
                }),
            )
            .await,
            "filter.month",
        );
    }
    let status = list(
        cl,
        with(MediaFilter {
            min_size_bytes: Some(10),
            max_size_bytes: Some(9),
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let t = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
    let status = list(
        cl,
        with(MediaFilter {
            create_time: Some(TimeRange {
                start_time: Some(t(2_000_000_000)),
                end_time: Some(t(1_000_000_000)),
            }),
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = list(
        cl,
        with(MediaFilter {
            mime_types: vec!["image".into()],
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = list(
        cl,
        with(MediaFilter {
            media_types: vec![MediaType::Unspecified as i32],
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = list(
        cl,
        with(MediaFilter {
            tags_all: (0..21).map(|i| format!("t{i}")).collect(),
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = list(
        cl,
        with(MediaFilter {
            query: "x".repeat(201),
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    expect_invalid(
        list(
            cl,
            ListMediaRequest {
                order_by: 99,
                ..Default::default()
            },
        )
        .await,
        "order_by",
    );
}

/// Walks every page while media come and go, checking the walk's own order.
async fn walk_checked(
    client: &mut Client,
    order_by: MediaOrderBy,
    ascending: bool,
    ops: &AtomicUsize,
) -> Vec<pb::Media> {
    let ops_before = ops.load(Ordering::SeqCst);
    let req = ListMediaRequest {
        page_size: 7,
        order_by: order_by as i32,
        ascending,
        ..Default::default()
    };
    let mut out: Vec<pb::Media> = Vec::new();
    let mut req = req;
    loop {
        let page = list(client, req.clone()).await.unwrap();
        assert!(page.media.len() <= 7);
        out.extend(page.media);
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
        // Let the other client change something between pages: wait for
        // its next change (however slow a loaded machine makes it), up to
        // a bound that only a stuck server reaches.
        let seen = ops.load(Ordering::SeqCst);
        for _ in 0..1000 {
            if ops.load(Ordering::SeqCst) > seen {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(
        ops.load(Ordering::SeqCst) > ops_before,
        "nothing changed during the walk; the test proves nothing"
    );
    // Keyset pages never go back: the walk is sorted as a whole.
    let key = |m: &pb::Media| -> (i64, i32, u64) {
        match order_by {
            MediaOrderBy::Size => (0, 0, m.size_bytes),
            _ => {
                let t = m.create_time.unwrap();
                (t.seconds, t.nanos, 0)
            }
        }
    };
    for w in out.windows(2) {
        let (a, b) = ((key(&w[0]), &w[0].id), (key(&w[1]), &w[1].id));
        if ascending {
            assert!(a < b, "walk out of order: {a:?} then {b:?}");
        } else {
            assert!(a > b, "walk out of order: {a:?} then {b:?}");
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn page_walks_stay_consistent_while_media_are_added_and_deleted() {
    let mut s = TestServer::spawn().await;
    // Originals and deletable extras, interleaved in time and in size.
    let mut originals = HashSet::new();
    let mut extras = Vec::new();
    for i in 0..90usize {
        let len = 1 + (i * 37) % 251;
        let m = up(&mut s.client, &format!("orig{i}"), len, |_| {}).await;
        if i % 3 == 2 {
            extras.push(m.id);
        } else {
            originals.insert(m.id);
        }
    }
    assert_eq!(originals.len(), 60);

    // Page size 0 is 50 per page.
    let first = list(&mut s.client, ListMediaRequest::default())
        .await
        .unwrap();
    assert_eq!(first.media.len(), 50);
    assert!(!first.next_page_token.is_empty());

    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicUsize::new(0));
    let churn = {
        let stop = stop.clone();
        let ops = ops.clone();
        let mut other = connect(s.addr).await;
        let mut deletable = extras;
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let len = 1 + (n * 53) % 251;
                let m = up(&mut other, &format!("churn{n}"), len, |_| {}).await;
                deletable.push(m.id);
                // Alternate between old extras and fresh uploads.
                let victim = if n.is_multiple_of(2) {
                    deletable.remove(0)
                } else {
                    deletable.remove(deletable.len() / 2)
                };
                other
                    .delete_media(DeleteMediaRequest {
                        media_id: victim,
                        force: false,
                    })
                    .await
                    .unwrap();
                n += 1;
                ops.fetch_add(1, Ordering::SeqCst);
            }
            n
        })
    };

    let walks = [
        (MediaOrderBy::Size, true),
        (MediaOrderBy::Size, false),
        (MediaOrderBy::CreateTime, false),
        (MediaOrderBy::CreateTime, true),
    ];
    let mut failures = Vec::new();
    for (order_by, ascending) in walks {
        let walked = walk_checked(&mut s.client, order_by, ascending, &ops).await;
        let mut seen = HashSet::new();
        let dups: Vec<_> = walked
            .iter()
            .filter(|m| !seen.insert(m.id.clone()))
            .map(|m| m.id.clone())
            .collect();
        let missing: Vec<_> = originals.difference(&seen).cloned().collect();
        if !dups.is_empty() || !missing.is_empty() {
            failures.push(format!(
                "{order_by:?} asc={ascending}: {} repeated {dups:?}, {} missing {missing:?}",
                dups.len(),
                missing.len()
            ));
        }
    }
    stop.store(true, Ordering::SeqCst);
    let churned = churn.await.unwrap();
    assert!(churned > 0);
    assert!(failures.is_empty(), "{failures:#?}");

    // Afterwards: 90 - deleted + uploaded, each once.
    let all = list_all(&mut s.client).await;
    assert_eq!(all.len(), 90);
    assert_eq!(id_set(&all).len(), 90);
    assert!(originals.is_subset(&id_set(&all)));
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_filters_page_newest_first_in_both_directions() {
    let mut s = TestServer::spawn().await;
    let mut tagged = Vec::new();
    for i in 0..9 {
        let tags: Vec<String> = match i % 3 {
            0 => vec!["red".into(), "sea".into()],
            1 => vec!["red".into()],
            _ => vec!["blue".into()],
        };
        let m = up_spaced(&mut s.client, &format!("t{i}.bin"), 10 + i, |h| {
            h.tags = tags
        })
        .await;
        tagged.push(m);
    }
    let with = |tag: &str| -> Vec<String> {
        tagged
            .iter()
            .filter(|m| m.tags.iter().any(|t| t == tag))
            .map(|m| m.id.clone())
            .collect()
    };
    let mut red_newest = with("red");
    red_newest.reverse();
    for ascending in [false, true] {
        for (any, all) in [(vec!["red"], vec![]), (vec![], vec!["red"])] {
            let req = ListMediaRequest {
                page_size: 2,
                ascending,
                filter: Some(MediaFilter {
                    tags_any: any.iter().map(|t| t.to_string()).collect(),
                    tags_all: all.iter().map(|t| t.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let got = ids(&walk(&mut s.client, req).await);
            let mut want = red_newest.clone();
            if ascending {
                want.reverse();
            }
            assert_eq!(got, want, "ascending {ascending}, any {any:?}, all {all:?}");
        }
    }
    // Two tags at once: the first drives, the second still filters.
    let req = ListMediaRequest {
        page_size: 1,
        filter: Some(MediaFilter {
            tags_all: vec!["red".into(), "sea".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut want = with("sea");
    want.reverse();
    assert_eq!(ids(&walk(&mut s.client, req).await), want);
}

/// Text queries in creation order page exactly as sorting every match
/// would: ties within one microsecond break by id, and media whose time
/// falls outside the text index's time order (before 1970, or more than
/// 1024 in one microsecond) are neither missed nor repeated. On SQLite
/// this drives the walk of the FTS5 index in creation order, with and
/// without another condition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_query_pages_in_creation_order_are_exact_at_ties_and_odd_times() {
    use mediastore::domain::{MediaId, TenantId};
    let mut s = TestServer::spawn().await;
    let first = up(&mut s.client, "template.bin", 100, |_| {}).await;
    let template = s
        .library
        .get(TenantId::DEFAULT, MediaId(first.id.parse().unwrap()))
        .await
        .unwrap();
    let base = template.created_at + 1_000_000;
    let row = |title: &str, created_at: i64| {
        let mut r = template.clone();
        r.id = MediaId::new();
        r.title = title.into();
        r.created_at = created_at;
        r
    };
    let mut rows = Vec::new();
    for i in 0..60 {
        let title = if i % 3 == 0 { "plain" } else { "a Needle here" };
        rows.push(row(title, base + i * 10));
    }
    // Ids grow with creation (UUIDv7); inserting a microsecond's media in
    // reverse makes the index's order within it the opposite of id order.
    rows.extend((0..25).map(|_| row("needle tie", base + 305)).rev());
    let crowd: Vec<_> = (0..1030)
        .map(|i| {
            row(
                if i % 2 == 0 { "needle crowd" } else { "other" },
                base + 415,
            )
        })
        .collect();
    rows.extend(crowd.into_iter().rev());
    rows.extend((0..5).map(|i| row("old needle", -1000 - i)));
    seed_rows(&s, &rows).await;

    let mut expected: Vec<_> = rows
        .iter()
        .filter(|r| r.title.to_lowercase().contains("needle"))
        .map(|r| (r.created_at, r.id.0))
        .collect();
    expected.sort();
    let newest_first: Vec<String> = expected
        .iter()
        .rev()
        .map(|(_, id)| id.to_string())
        .collect();
    let oldest_first: Vec<String> = expected.iter().map(|(_, id)| id.to_string()).collect();
    let root = FolderServiceClient::new(channel(s.addr).await)
        .get_root_folder(GetRootFolderRequest::default())
        .await
        .unwrap()
        .into_inner()
        .folder
        .unwrap();
    for folder_id in [String::new(), root.id] {
        for (ascending, want) in [(false, &newest_first), (true, &oldest_first)] {
            for page_size in [7, 50, 1000] {
                let got = walk(
                    &mut s.client,
                    ListMediaRequest {
                        page_size,
                        parent_folder_id: folder_id.clone(),
                        filter: Some(MediaFilter {
                            query: "NEEDLE".into(),
                            ..Default::default()
                        }),
                        order_by: MediaOrderBy::CreateTime as i32,
                        ascending,
                        ..Default::default()
                    },
                )
                .await;
                assert_eq!(
                    &ids(&got),
                    want,
                    "folder {folder_id:?}, ascending {ascending}, page size {page_size}"
                );
            }
        }
    }
}

/// The text index follows every change of a media's words: a media whose
/// words hold the text twice comes once, a word longer than the index
/// stores whole is found from anywhere inside it, edits of the title and
/// tags move the media to its new words, and a deleted media is found no
/// more. On PostgreSQL these go through the term index and its chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_queries_follow_edits_deletes_repeats_and_long_words() {
    let mut s = TestServer::spawn().await;
    let cl = &mut s.client;
    let hits = |text: &str| MediaFilter {
        query: text.into(),
        ..Default::default()
    };
    let twice = up(cl, "fruit.bin", 10, |h| {
        h.title = "Apple pineapple".into();
        h.tags = vec!["apples".into()];
    })
    .await;
    let page = list(
        cl,
        ListMediaRequest {
            filter: Some(hits("apple")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(&page.media), std::slice::from_ref(&twice.id));

    // One 448-character word: "w000w001...w111" (queries stop at 200).
    let long: String = (0..112).map(|i| format!("w{i:03}")).collect();
    let word = up(cl, "long.bin", 11, |h| h.title = long.clone()).await;
    for (from, len) in [
        (0, 100),
        (150, 100),
        (348, 100),
        (388, 60),
        (120, 101),
        (248, 200),
    ] {
        let part = &long[from..from + len];
        assert_eq!(
            matching(cl, hits(&part.to_uppercase())).await,
            set_of(&[&word]),
            "{len} characters from {from}"
        );
    }
    assert!(
        matching(cl, hits(&format!("{}x", &long[300..400])))
            .await
            .is_empty()
    );

    let edited = up(cl, "notes.bin", 12, |h| {
        h.title = "old caption".into();
        h.tags = vec!["oldtag".into()];
    })
    .await;
    assert_eq!(matching(cl, hits("oldtag")).await, set_of(&[&edited]));
    let mut change = edited.clone();
    change.title = "new caption".into();
    change.tags = vec!["newtag".into()];
    cl.update_media(pb::UpdateMediaRequest {
        media: Some(change),
        update_mask: Some(FieldMask {
            paths: vec!["title".into(), "tags".into()],
        }),
    })
    .await
    .unwrap();
    assert!(matching(cl, hits("old")).await.is_empty());
    assert_eq!(matching(cl, hits("newtag")).await, set_of(&[&edited]));
    assert_eq!(matching(cl, hits("NEW CAPTION")).await, set_of(&[&edited]));
    assert_eq!(matching(cl, hits("notes.b")).await, set_of(&[&edited]));

    cl.delete_media(DeleteMediaRequest {
        media_id: edited.id.clone(),
        force: false,
    })
    .await
    .unwrap();
    assert!(matching(cl, hits("caption")).await.is_empty());
    assert!(matching(cl, hits("newtag")).await.is_empty());
    assert_eq!(matching(cl, hits("APPLES")).await, set_of(&[&twice]));
}
