//! Public folders: a folder marked public makes every media below it
//! readable without a key, as a media's own `public` flag does. Only the
//! anonymous read path asks (for the media's folder and its ancestors, by
//! path, on the existing `(tenant_id, path)` index), so no new index.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Folders {
    Table,
    Public,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Folders::Table)
                    .add_column(
                        ColumnDef::new(Folders::Public)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Folders::Table)
                    .drop_column(Folders::Public)
                    .to_owned(),
            )
            .await
    }
}
