//! Tenants and API keys: creating, listing, revoking and deleting them, the
//! first start's admin key, and turning a call's key into a [`Principal`].
//!
//! A call's key is looked up by the hash of its secret and kept in memory
//! for at most [`KEY_CACHE_TTL`], so most calls cost a hash and a map
//! look-up, not a query. A revocation made through this process drops the
//! key from its cache at once; other replicas see it within that time.
//! Expiry is checked on every call against the cached expiry time, so it
//! is exact everywhere.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::Library;
use crate::{
    domain::{
        ApiKey, ApiKeyId, KeyHash, KeySpec, NewSecret, Principal, Quota, Scopes, Tenant, TenantId,
        Usage, check_admin_tenant, now_micros,
    },
    error::{Error, Reason, Resource, Result},
    repo::TenantDeletion,
};

/// Longest time a replica may go on accepting a key revoked elsewhere.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Keys cached at most; past that the cache starts over (a bound against
/// a flood of distinct valid keys, which only an operator can make).
const KEY_CACHE_MAX: usize = 10_000;
/// Name of the key made at the first start.
pub const BOOTSTRAP_KEY_NAME: &str = "admin";

/// The answer to an upload of `size` bytes (or more) where the tenant's
/// quota leaves `room`.
pub(super) fn quota_over_bytes(size: u64, room: u64) -> Error {
    quota_exceeded(
        "tenant.max_bytes",
        format!(
            "the upload is {size} bytes or more, but the tenant's byte quota leaves room for \
             {room}; delete media, or ask an operator for a larger quota"
        ),
    )
}

fn quota_exceeded(subject: &str, message: String) -> Error {
    Error::ResourceExhausted {
        reason: Reason::QuotaExceeded,
        subject: subject.to_string(),
        message,
    }
}

/// Values recently read from the database, each kept for at most
/// [`KEY_CACHE_TTL`]: API keys by the hash of their secret (so most calls
/// cost no query), tenants' quotas (so an upload of a tenant without one
/// costs none either).
#[derive(Debug)]
pub(super) struct TtlCache<K, V>(Mutex<HashMap<K, (Instant, V)>>);

impl<K, V> Default for TtlCache<K, V> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: std::hash::Hash + Eq, V: Clone> TtlCache<K, V> {
    fn get(&self, k: &K) -> Option<V> {
        let map = self.0.lock().ok()?;
        let (at, v) = map.get(k)?;
        (at.elapsed() < KEY_CACHE_TTL).then(|| v.clone())
    }

    fn put(&self, k: K, v: V) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= KEY_CACHE_MAX {
                map.clear();
            }
            map.insert(k, (Instant::now(), v));
        }
    }

    /// Drops the entries whose value `keep` refuses.
    fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|k, (_, v)| keep(k, v));
        }
    }
}

/// API keys recently used.
pub(super) type KeyCache = TtlCache<KeyHash, ApiKey>;
/// Tenants' quotas recently read.
pub(super) type QuotaCache = TtlCache<TenantId, Quota>;

impl Library {
    /// The principal a key's secret (by its hash) stands for, or
    /// UNAUTHENTICATED saying why not.
    pub async fn authenticate(&self, hash: KeyHash) -> Result<Principal> {
        let key = match self.inner.keys.get(&hash) {
            Some(key) => key,
            None => {
                let key = self.inner.repo.key_by_hash(hash).await?.ok_or_else(|| {
                    Error::Unauthenticated {
                        reason: Reason::KeyUnknown,
                        message: "this key is not known to the server; check that the whole \
                                  secret was sent, or ask an operator for a key"
                            .to_string(),
                    }
                })?;
                self.inner.keys.put(hash, key.clone());
                key
            }
        };
        key.principal_at(now_micros())
    }

    /// Creates a tenant with its root folder.
    pub async fn create_tenant(&self, name: &str, quota: Quota) -> Result<Tenant> {
        self.inner
            .repo
            .create_tenant(name, quota)
            .await?
            .ok_or_else(|| Error::AlreadyExists {
                kind: Resource::Tenant,
                name: name.to_string(),
                message: format!("a tenant named {name:?} exists; pick another name"),
            })
    }

    /// A tenant named by its id or its name (as operators type it).
    pub async fn find_tenant(&self, id_or_name: &str) -> Result<Tenant> {
        let by_id = match uuid::Uuid::try_parse(id_or_name) {
            Ok(id) => self.inner.repo.tenant(TenantId(id)).await?,
            Err(_) => None,
        };
        match by_id {
            Some(t) => Ok(t),
            None => self
                .inner
                .repo
                .tenant_named(id_or_name)
                .await?
                .ok_or_else(|| Error::not_found(Resource::Tenant, id_or_name)),
        }
    }

    /// Sets a tenant's quota (at once for this process's uploads; within
    /// [`KEY_CACHE_TTL`] for other replicas').
    pub async fn set_quota(&self, id: TenantId, quota: Quota) -> Result<Tenant> {
        let tenant = self
            .inner
            .repo
            .set_quota(id, quota)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Tenant, id.to_string()))?;
        self.inner.quotas.retain(|t, _| *t != id);
        Ok(tenant)
    }

    /// What a tenant holds.
    pub async fn usage(&self, id: TenantId) -> Result<Usage> {
        self.inner.repo.usage(id).await
    }

    /// Tenants in creation order after `after`, each with what it holds.
    pub async fn tenants_with_usage(
        &self,
        after: Option<TenantId>,
        limit: u64,
    ) -> Result<Vec<(Tenant, Usage)>> {
        let tenants = self.inner.repo.tenants(after, limit).await?;
        let ids: Vec<TenantId> = tenants.iter().map(|t| t.id).collect();
        let mut usages = self.inner.repo.usages(&ids).await?;
        Ok(tenants
            .into_iter()
            .map(|t| {
                let usage = usages.remove(&t.id).unwrap_or_default();
                (t, usage)
            })
            .collect())
    }

    /// Checks that `tenant` may add one more media of `declared` bytes (if
    /// known) and returns how many bytes that media may have at most under
    /// the tenant's quota (`None`: no byte quota). Refuses with
    /// RESOURCE_EXHAUSTED `QUOTA_EXCEEDED` when it may not.
    pub(super) async fn quota_room(
        &self,
        tenant: TenantId,
        declared: Option<u64>,
    ) -> Result<Option<u64>> {
        let quota = match self.inner.quotas.get(&tenant) {
            Some(q) => q,
            None => {
                let q = self
                    .inner
                    .repo
                    .tenant(tenant)
                    .await?
                    .map(|t| t.quota)
                    .unwrap_or_default();
                self.inner.quotas.put(tenant, q);
                q
            }
        };
        if !quota.is_limited() {
            return Ok(None);
        }
        let usage = self.inner.repo.usage(tenant).await?;
        if let Some(max) = quota.max_media
            && usage.media >= max
        {
            return Err(quota_exceeded(
                "tenant.max_media_count",
                format!(
                    "the tenant holds {} media, its quota; delete some, or ask an operator for a larger quota",
                    usage.media
                ),
            ));
        }
        let room = quota.max_bytes.map(|max| max.saturating_sub(usage.bytes));
        if let (Some(room), Some(size)) = (room, declared)
            && size > room
        {
            return Err(quota_over_bytes(size, room));
        }
        Ok(room)
    }

    /// Deletes an empty tenant and its keys; returns how many keys went.
    pub async fn delete_tenant(&self, id: TenantId) -> Result<u64> {
        if id == TenantId::DEFAULT {
            return Err(Error::precondition(
                Reason::TenantNotEmpty,
                "the default tenant cannot be deleted",
            ));
        }
        match self.inner.repo.delete_tenant(id).await? {
            TenantDeletion::Deleted(keys) => {
                self.inner.keys.retain(|_, k| k.tenant != id);
                if let Ok(mut roots) = self.inner.roots.write() {
                    roots.remove(&id);
                }
                self.folders_changed(id);
                Ok(keys)
            }
            TenantDeletion::Missing => Err(Error::not_found(Resource::Tenant, id.to_string())),
            TenantDeletion::NotEmpty => Err(Error::precondition(
                Reason::TenantNotEmpty,
                format!(
                    "tenant {id} still holds media, folders or an active upload; delete them \
                     first"
                ),
            )),
        }
    }

    /// Creates a key, with a fresh secret or `secret` if given; returns
    /// the key and its secret (the only time the secret is seen).
    pub async fn create_key(
        &self,
        spec: KeySpec,
        secret: Option<NewSecret>,
    ) -> Result<(ApiKey, NewSecret)> {
        if spec.expires_at.is_some_and(|t| t <= now_micros()) {
            return Err(Error::invalid(
                "expire_time",
                "expire_time is in the past; give a time in the future, or none for a key \
                 that does not expire",
            ));
        }
        check_admin_tenant(spec.tenant, spec.scopes)?;
        let secret = match secret {
            Some(s) => s,
            None => NewSecret::generate()?,
        };
        let key = self
            .inner
            .repo
            .insert_key(&spec, secret.hash, &secret.shown_prefix)
            .await?
            .ok_or_else(|| Error::AlreadyExists {
                kind: Resource::ApiKey,
                name: spec.name.clone(),
                message: format!(
                    "tenant {} already has a key named {:?}; pick another name",
                    spec.tenant, spec.name
                ),
            })?;
        Ok((key, secret))
    }

    /// Keys in creation order after `after`, of one tenant or all.
    pub async fn keys(
        &self,
        tenant: Option<TenantId>,
        after: Option<ApiKeyId>,
        limit: u64,
    ) -> Result<Vec<ApiKey>> {
        self.inner.repo.keys(tenant, after, limit).await
    }

    /// Revokes a key, at once for this process's calls.
    pub async fn revoke_key(&self, id: ApiKeyId) -> Result<ApiKey> {
        let key = self
            .inner
            .repo
            .revoke_key(id)
            .await?
            .ok_or_else(|| Error::not_found(Resource::ApiKey, id.to_string()))?;
        self.inner.keys.retain(|_, k| k.id != id);
        Ok(key)
    }

    /// On a database without keys, makes the first admin key of the
    /// default tenant (every scope), with `chosen` as its secret if given.
    /// Returns it, or `None` when keys exist (or another replica made it
    /// at the same moment).
    pub async fn bootstrap_admin_key(&self, chosen: Option<&str>) -> Result<Option<NewSecret>> {
        if self.inner.repo.any_key().await? {
            return Ok(None);
        }
        let secret = chosen
            .map(|s| NewSecret::from_secret(s.to_string()))
            .transpose()?;
        let spec = KeySpec {
            tenant: TenantId::DEFAULT,
            name: BOOTSTRAP_KEY_NAME.to_string(),
            role: "admin".to_string(),
            scopes: Scopes::all(),
            expires_at: None,
        };
        match self.create_key(spec, secret).await {
            Ok((_, secret)) => Ok(Some(secret)),
            Err(Error::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
