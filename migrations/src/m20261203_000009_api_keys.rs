//! API keys: each acts for one tenant with a name, a role and scopes. Only
//! a hash of the secret is stored (see `domain::access` in the server).
//! Tenant names become unique, since operators address tenants by name
//! from the command line.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    Name,
    Role,
    Scopes,
    SecretHash,
    ShownPrefix,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("tenants_name")
                    .table(Tenants::Table)
                    .col(Tenants::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(ColumnDef::new(ApiKeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(ApiKeys::TenantId).uuid().not_null())
                    .col(ColumnDef::new(ApiKeys::Name).string_len(200).not_null())
                    .col(ColumnDef::new(ApiKeys::Role).string_len(100).not_null())
                    // Space-separated scope names, e.g. "media:read admin".
                    .col(ColumnDef::new(ApiKeys::Scopes).text().not_null())
                    // Hex of the secret's hash: how a call finds its key.
                    .col(
                        ColumnDef::new(ApiKeys::SecretHash)
                            .string_len(64)
                            .not_null(),
                    )
                    // The secret's first characters, to recognise it in lists.
                    .col(
                        ColumnDef::new(ApiKeys::ShownPrefix)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ApiKeys::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(ApiKeys::ExpiresAt).big_integer().null())
                    .col(ColumnDef::new(ApiKeys::RevokedAt).big_integer().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeys::Table, ApiKeys::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("api_keys_secret")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::SecretHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // A key's name is what its tenant's records say made them, so it
        // names one key; it also makes the bootstrap key's insert
        // idempotent when replicas start together.
        manager
            .create_index(
                Index::create()
                    .name("api_keys_tenant_name")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::TenantId)
                    .col(ApiKeys::Name)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("tenants_name")
                    .table(Tenants::Table)
                    .to_owned(),
            )
            .await
    }
}
