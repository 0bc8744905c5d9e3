//! Resumable uploads: one row per upload, holding its header, how many
//! bytes are durably held, and which server stream may write to it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Uploads {
    Table,
    Id,
    TenantId,
    Spec,
    DeclaredSize,
    CommittedSize,
    State,
    MediaId,
    ExpiresAt,
    WriterId,
    WriterUntil,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Uploads::Table)
                    .col(ColumnDef::new(Uploads::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Uploads::TenantId).uuid().not_null())
                    // The validated header as JSON: read back only by the
                    // finish, never queried.
                    .col(ColumnDef::new(Uploads::Spec).text().not_null())
                    .col(ColumnDef::new(Uploads::DeclaredSize).big_integer())
                    .col(
                        ColumnDef::new(Uploads::CommittedSize)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Uploads::State).small_integer().not_null())
                    .col(ColumnDef::new(Uploads::MediaId).uuid())
                    .col(ColumnDef::new(Uploads::ExpiresAt).big_integer().not_null())
                    // The stream allowed to write, and until when unless it
                    // renews: a second stream is refused while this holds,
                    // and a server that died stops holding it.
                    .col(ColumnDef::new(Uploads::WriterId).uuid())
                    .col(ColumnDef::new(Uploads::WriterUntil).big_integer())
                    .col(ColumnDef::new(Uploads::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Uploads::UpdatedAt).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Uploads::Table, Uploads::TenantId)
                            .to(Alias::new("tenants"), Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        // The cleaner's two questions: which active uploads expired, and
        // which ended ones may be forgotten.
        manager
            .create_index(
                Index::create()
                    .name("uploads_state_expiry")
                    .table(Uploads::Table)
                    .col(Uploads::State)
                    .col(Uploads::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Uploads::Table).to_owned())
            .await
    }
}
