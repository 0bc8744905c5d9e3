//! Migrations undo and redo cleanly on a database that holds media, and
//! the text index rebuilt by the redo finds what it found before.

use crate::common::*;
use mediastore::pb::v1::{ListMediaRequest, MediaFilter};
use mediastore_migrations::{Migrator, MigratorTrait};

async fn text_hits(s: &mut TestServer, text: &str) -> Vec<String> {
    let mut ids: Vec<String> = s
        .client
        .list_media(ListMediaRequest {
            filter: Some(MediaFilter {
                query: text.into(),
                ..Default::default()
            }),
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

/// How many migrations to undo so that `name` and every later one are
/// undone.
fn back_to(name: &str) -> u32 {
    let all = Migrator::migrations();
    let from_end = all
        .iter()
        .rev()
        .position(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no migration {name}"));
    u32::try_from(from_end + 1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_migrations_undo_and_redo_keeping_text_search_right() {
    let mut s = TestServer::spawn().await;
    let mut want = Vec::new();
    for name in ["harbour-at-dawn.jpg", "dawn-chorus.mp3", "invoice.pdf"] {
        let data = content(name, 500);
        let m = upload(&mut s.client, header(name, data.len()), &data)
            .await
            .unwrap()
            .media
            .unwrap();
        if name.contains("dawn") {
            want.push(m.id);
        }
    }
    want.sort();
    assert_eq!(text_hits(&mut s, "DAWN").await, want);

    let db = sea_orm::Database::connect(s.config.database_url.clone().unwrap())
        .await
        .unwrap();
    Migrator::down(&db, Some(back_to("m20261201_000007_text_terms")))
        .await
        .unwrap();
    Migrator::up(&db, None).await.unwrap();
    // The keys went with the API keys migration: the first start's key
    // comes back as a start would make it.
    mediastore::server::bootstrap_admin_key(&s.config, &s.library)
        .await
        .unwrap();
    assert_eq!(text_hits(&mut s, "dawn").await, want);

    // Media added after the redo are indexed too.
    let data = content("late", 500);
    let late = upload(&mut s.client, header("dawn-late.png", data.len()), &data)
        .await
        .unwrap()
        .media
        .unwrap();
    want.push(late.id);
    want.sort();
    assert_eq!(text_hits(&mut s, "dawn").await, want);
}

/// Structured text is a document, and media stored as "other" before the
/// rule (000008) are filed as documents by the migration.
#[tokio::test(flavor = "multi_thread")]
async fn json_xml_and_csv_are_documents_old_rows_included() {
    use mediastore::{
        domain::{MediaId, MediaType, TenantId},
        pb::v1 as pb,
    };
    let mut s = TestServer::spawn().await;
    let mut made = Vec::new();
    for (name, mime, body) in [
        ("a.json", "application/json", &b"{\"a\": [1, 2]}"[..]),
        (
            "a.geojson",
            "application/geo+json",
            b"{\"type\": \"Point\"}",
        ),
        ("a.xml", "application/xml", b"<?xml version=\"1.0\"?><a/>"),
        ("a.csv", "text/csv", b"a,b\n1,2\n"),
        ("a.yaml", "application/yaml", b"a: 1\n"),
    ] {
        let mut h = header(name, body.len());
        h.content_type = mime.into();
        let m = upload(&mut s.client, h, body).await.unwrap().media.unwrap();
        assert_eq!(
            m.media_type,
            pb::MediaType::Document as i32,
            "{name} ({})",
            m.mime_type
        );
        made.push(m);
    }
    // A JSON file as it was stored before the rule: "other".
    let json = s
        .library
        .get(TenantId::DEFAULT, MediaId(made[0].id.parse().unwrap()))
        .await
        .unwrap();
    let old = mediastore::domain::Media {
        id: MediaId::new(),
        media_type: MediaType::Other,
        ..json
    };
    seed_rows(&s, std::slice::from_ref(&old)).await;
    assert_eq!(
        get_media(&mut s.client, &old.id.to_string())
            .await
            .media_type,
        pb::MediaType::Other as i32
    );
    let db = sea_orm::Database::connect(s.config.database_url.clone().unwrap())
        .await
        .unwrap();
    Migrator::down(&db, Some(back_to("m20261203_000008_structured_text")))
        .await
        .unwrap();
    Migrator::up(&db, None).await.unwrap();
    mediastore::server::bootstrap_admin_key(&s.config, &s.library)
        .await
        .unwrap();
    assert_eq!(
        get_media(&mut s.client, &old.id.to_string())
            .await
            .media_type,
        pb::MediaType::Document as i32
    );
    // A type filter finds all six.
    let docs = list_filtered(
        &mut s.client,
        pb::MediaFilter {
            media_types: vec![pb::MediaType::Document as i32],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(docs.len(), 6);
}

/// A count read with SQL.
async fn count(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Renditions became each tenant's own (000013): undone, two tenants'
/// rows of one rendition become one shared row; redone, each tenant gets
/// its copy back, and the references on the rendition's bytes follow the
/// rows both ways.
#[tokio::test(flavor = "multi_thread")]
async fn renditions_split_per_tenant_and_back_with_their_references() {
    use mediastore::pb::v1::{
        self as pb, GetRenditionRequest, media_service_client::MediaServiceClient,
    };
    let s = TestServer::spawn().await;
    let png = encoded(image::ImageFormat::Png, 4, 2);
    let mut clients = Vec::new();
    for name in ["alpha", "beta"] {
        let t = new_tenant(s.addr, name).await;
        let key = new_key(
            s.addr,
            &t.id,
            name,
            "",
            &["media:read", "uploads:write", "media:delete"],
        )
        .await;
        let mut c = MediaServiceClient::new(channel_with(s.addr, Bearer::key(&key)).await);
        let m = upload(&mut c, header("p.png", png.len()), &png)
            .await
            .unwrap()
            .media
            .unwrap();
        let req = GetRenditionRequest {
            media_id: m.id.clone(),
            width: 2,
            ..Default::default()
        };
        let (_, cached, _) = rendition(&mut c, req).await.unwrap();
        assert!(!cached);
        clients.push((c, m.id));
    }
    let db = sea_orm::Database::connect(s.config.database_url.clone().unwrap())
        .await
        .unwrap();
    let rows = "SELECT COUNT(*) FROM renditions";
    let refs = "SELECT CAST(SUM(refcount) AS BIGINT) FROM blobs";
    assert_eq!((count(&db, rows).await, count(&db, refs).await), (2, 4));

    Migrator::down(&db, Some(back_to("m20261203_000013_rendition_tenants")))
        .await
        .unwrap();
    assert_eq!((count(&db, rows).await, count(&db, refs).await), (1, 3));
    Migrator::up(&db, None).await.unwrap();
    assert_eq!((count(&db, rows).await, count(&db, refs).await), (2, 4));

    for (c, id) in &mut clients {
        let req = GetRenditionRequest {
            media_id: id.clone(),
            width: 2,
            ..Default::default()
        };
        let (_, cached, _) = rendition(c, req).await.unwrap();
        assert!(cached, "each tenant's copy survived");
        c.delete_media(pb::DeleteMediaRequest {
            media_id: id.clone(),
            force: false,
        })
        .await
        .unwrap();
    }
    assert_eq!(
        s.stored_blobs().await,
        0,
        "the references added up: all bytes went"
    );
    assert_eq!(count(&db, rows).await, 0);
}

#[test]
fn every_migration_is_named_by_its_file() {
    // Databases record applied migrations by name: a name that changed
    // (say, a migration written through a macro that picked up another
    // file's name) would run it again on every database that has it.
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let mut files: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/src"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_prefix('m')
                    .and_then(|_| name.strip_suffix(".rs"))
                    .map(str::to_string)
            })
            .collect();
    files.sort();
    assert_eq!(names, files);
    assert!(names.contains(&"m20261203_000010_authorship".to_string()));
}
