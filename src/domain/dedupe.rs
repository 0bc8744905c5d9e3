//! Where stored bytes may be shared: the name a tenant's content is
//! stored under.
//!
//! With `Global` scope (the default) a content is stored once for every
//! tenant, under its BLAKE3. Answers and time already say nothing of other
//! tenants (see `library::commit`), but the bytes are shared. With
//! `Tenant` scope each tenant's copy has its own name, derived from the
//! tenant and the content's BLAKE3, so no two tenants ever touch the same
//! blob: storage is deduplicated within a tenant only, and costs one copy
//! per tenant that holds a content.

use std::{fmt, str::FromStr};

use super::{ContentHash, TenantId};

/// BLAKE3 `derive_key` context of tenant-scoped names; never changes, or
/// stored names stop matching.
const TENANT_NAME_CONTEXT: &str = "mediastore 2026-12-07 tenant-scoped blob name";

/// Which uploads share stored bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DedupeScope {
    /// Identical bytes are stored once, whoever uploads them.
    #[default]
    Global,
    /// Identical bytes are stored once per tenant.
    Tenant,
}

impl DedupeScope {
    /// The name under which `tenant` stores bytes whose BLAKE3 is
    /// `content`. Deterministic, so a tenant's second upload of the same
    /// bytes finds its first.
    pub fn blob_name(self, tenant: TenantId, content: &ContentHash) -> ContentHash {
        match self {
            Self::Global => *content,
            Self::Tenant => {
                let mut h = blake3::Hasher::new_derive_key(TENANT_NAME_CONTEXT);
                h.update(tenant.0.as_bytes());
                h.update(&content.0);
                h.finalize().into()
            }
        }
    }
}

impl FromStr for DedupeScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "global" => Ok(Self::Global),
            "tenant" => Ok(Self::Tenant),
            other => Err(format!(
                "{other:?} is not a dedupe scope; expected \"global\" or \"tenant\""
            )),
        }
    }
}

impl fmt::Display for DedupeScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Global => "global",
            Self::Tenant => "tenant",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_names_are_the_content_and_tenant_names_differ_per_tenant() {
        let content = ContentHash::from(blake3::hash(b"bytes"));
        let (a, b) = (
            TenantId(uuid::Uuid::now_v7()),
            TenantId(uuid::Uuid::now_v7()),
        );
        assert_eq!(DedupeScope::Global.blob_name(a, &content), content);
        let name = DedupeScope::Tenant.blob_name(a, &content);
        assert_ne!(name, content);
        assert_eq!(name, DedupeScope::Tenant.blob_name(a, &content));
        assert_ne!(name, DedupeScope::Tenant.blob_name(b, &content));
        assert_eq!("tenant".parse::<DedupeScope>(), Ok(DedupeScope::Tenant));
        assert!("Tenant".parse::<DedupeScope>().is_err());
    }
}
