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
    Migrator::down(&db, Some(2)).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
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
