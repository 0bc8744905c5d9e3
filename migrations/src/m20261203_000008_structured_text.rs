//! JSON, XML and YAML are documents: media stored before the rule changed
//! were recorded as "other" and move to "document" (the integer the
//! domain's `MediaType` stores: 4 document, 5 other), so that a type filter
//! finds old and new files alike.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `MediaType::Document` and `MediaType::Other` as stored.
const DOCUMENT: i16 = 4;
const OTHER: i16 = 5;

/// The rows concerned, in the same words as `MediaType::from_mime`.
const STRUCTURED_TEXT: &str = "(mime_type IN ('application/json', 'application/xml', \
     'application/yaml', 'application/x-yaml') \
     OR mime_type LIKE 'application/%+json' OR mime_type LIKE 'application/%+xml')";

/// Moves the structured-text rows recorded as `from` to `to`.
async fn reclassify(manager: &SchemaManager<'_>, from: i16, to: i16) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "UPDATE media SET media_type = {to} WHERE media_type = {from} AND {STRUCTURED_TEXT}"
        ))
        .await
        .map(|_| ())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        reclassify(manager, OTHER, DOCUMENT).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        reclassify(manager, DOCUMENT, OTHER).await
    }
}
