//! Content analysis: facts without a column of their own (camera, sound,
//! pages) as one JSON value, and the reason analysis failed, if it did.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Media {
    Table,
    Facts,
    AnalysisError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Media::Table)
                    .add_column(ColumnDef::new(Media::Facts).json_binary().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Media::Table)
                    .add_column(ColumnDef::new(Media::AnalysisError).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [Media::AnalysisError, Media::Facts] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Media::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
