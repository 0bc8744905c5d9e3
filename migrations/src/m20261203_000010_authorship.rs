//! Who made what: the role of a media's creator and a free project id on
//! media (seed 003's `created_role` and `project_id`), the creator and
//! last editor of folders, and indexes for listing by each.

/// Statements that read the same on both engines.
const UP: &[&str] = &[
    "ALTER TABLE media ADD COLUMN created_role VARCHAR(100) NOT NULL DEFAULT ''",
    "ALTER TABLE media ADD COLUMN project_id VARCHAR(200) NOT NULL DEFAULT ''",
    "ALTER TABLE folders ADD COLUMN created_by VARCHAR(255) NOT NULL DEFAULT ''",
    "ALTER TABLE folders ADD COLUMN updated_by VARCHAR(255) NOT NULL DEFAULT ''",
    "ALTER TABLE folders ADD COLUMN created_role VARCHAR(100) NOT NULL DEFAULT ''",
    // Folders made before keys existed were made by nobody in particular,
    // as their media say.
    "UPDATE folders SET created_by = 'anonymous', updated_by = 'anonymous' \
     WHERE parent_id IS NOT NULL",
    // A filter on one of these usually keeps few media of a tenant: each
    // has its own index in the listing's default order, so a page never
    // walks the tenant's other media to find them.
    "CREATE INDEX media_tenant_creator ON media (tenant_id, created_by, created_at, id)",
    "CREATE INDEX media_tenant_role ON media (tenant_id, created_role, created_at, id)",
    "CREATE INDEX media_tenant_project ON media (tenant_id, project_id, created_at, id)",
    "CREATE INDEX media_tenant_public ON media (tenant_id, public, created_at, id)",
];

const DOWN: &[&str] = &[
    "DROP INDEX media_tenant_public",
    "DROP INDEX media_tenant_project",
    "DROP INDEX media_tenant_role",
    "DROP INDEX media_tenant_creator",
    "ALTER TABLE folders DROP COLUMN created_role",
    "ALTER TABLE folders DROP COLUMN updated_by",
    "ALTER TABLE folders DROP COLUMN created_by",
    "ALTER TABLE media DROP COLUMN project_id",
    "ALTER TABLE media DROP COLUMN created_role",
];

plain_sql_migration!();
