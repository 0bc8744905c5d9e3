//! The administration subcommands (`mediastore tenants ...`,
//! `mediastore keys ...`): the same library operations as
//! `AccessService`, against the configured database, printing JSON.

use serde_json::{Value, json};

use crate::{
    config::{Config, KeysCommand, TenantsCommand},
    domain::{
        ApiKey, ApiKeyId, KeySpec, Quota, Scopes, Tenant, Usage, check_name, check_role, now_micros,
    },
    error::Result,
    server,
};

/// Most rows a list prints per database round trip.
const PAGE: u64 = 1000;

/// Runs a `tenants` subcommand.
pub async fn tenants(config: &Config, command: TenantsCommand) -> Result<()> {
    let library = server::open_library(config).await?;
    match command {
        TenantsCommand::Create {
            name,
            max_bytes,
            max_media,
        } => {
            let name = check_name("name", &name)?;
            let quota = Quota {
                max_bytes,
                max_media,
            };
            let t = library.create_tenant(&name, quota).await?;
            print(tenant_json(&t, Usage::default()));
        }
        TenantsCommand::SetQuota {
            tenant,
            max_bytes,
            max_media,
        } => {
            let tenant = library.find_tenant(&tenant).await?;
            let quota = Quota {
                max_bytes,
                max_media,
            };
            let t = library.set_quota(tenant.id, quota).await?;
            print(tenant_json(&t, library.usage(t.id).await?));
        }
        TenantsCommand::List => {
            let mut after = None;
            loop {
                let page = library.tenants_with_usage(after, PAGE).await?;
                for (t, usage) in &page {
                    print(tenant_json(t, *usage));
                }
                match page.last() {
                    Some((last, _)) if page.len() as u64 == PAGE => after = Some(last.id),
                    _ => break,
                }
            }
        }
        TenantsCommand::Delete { tenant } => {
            let tenant = library.find_tenant(&tenant).await?;
            let keys = library.delete_tenant(tenant.id).await?;
            print(
                json!({"deleted_tenant_id": tenant.id.to_string(), "deleted_api_key_count": keys}),
            );
        }
    }
    Ok(())
}

/// Runs a `keys` subcommand.
pub async fn keys(config: &Config, command: KeysCommand) -> Result<()> {
    let library = server::open_library(config).await?;
    match command {
        KeysCommand::Create {
            tenant,
            name,
            role,
            scopes,
            expires_in_days,
        } => {
            let tenant = library.find_tenant(&tenant).await?;
            let spec = KeySpec {
                tenant: tenant.id,
                name: check_name("--name", &name)?,
                role: check_role("--role", &role)?,
                scopes: Scopes::parse("--scopes", scopes.iter().map(String::as_str))?,
                expires_at: expires_in_days
                    .map(|d| now_micros().saturating_add(i64::from(d) * 86_400_000_000)),
            };
            let (key, secret) = library.create_key(spec, None).await?;
            let mut out = key_json(&key);
            out["secret"] = Value::String(secret.secret);
            print(out);
        }
        KeysCommand::List { tenant } => {
            let tenant = match tenant {
                Some(t) => Some(library.find_tenant(&t).await?.id),
                None => None,
            };
            let mut after = None;
            loop {
                let page = library.keys(tenant, after, PAGE).await?;
                for k in &page {
                    print(key_json(k));
                }
                match page.last() {
                    Some(last) if page.len() as u64 == PAGE => after = Some(last.id),
                    _ => break,
                }
            }
        }
        KeysCommand::Revoke { id } => {
            let id = ApiKeyId::parse("id", &id)?;
            print(key_json(&library.revoke_key(id).await?));
        }
    }
    Ok(())
}

/// One JSON object per line.
fn print(v: Value) {
    println!("{v}");
}

fn tenant_json(t: &Tenant, usage: Usage) -> Value {
    json!({
        "id": t.id.to_string(),
        "name": t.name,
        "created_at_micros": t.created_at,
        "max_bytes": t.quota.max_bytes,
        "max_media": t.quota.max_media,
        "used_bytes": usage.bytes,
        "media_count": usage.media,
    })
}

fn key_json(k: &ApiKey) -> Value {
    json!({
        "id": k.id.to_string(),
        "tenant_id": k.tenant.to_string(),
        "name": k.name,
        "role": k.role,
        "scopes": k.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "secret_prefix": k.shown_prefix,
        "created_at_micros": k.created_at,
        "expires_at_micros": k.expires_at,
        "revoked_at_micros": k.revoked_at,
    })
}
