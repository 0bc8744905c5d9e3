//! Who is calling and what they may do: scopes, principals, API key
//! secrets and the names of tenants and keys.
//!
//! A key's secret is `msk_` followed by 32 random bytes in unpadded
//! base64url (43 characters). The server stores only its [`KeyHash`]:
//! BLAKE3 in its key-derivation mode, with a context string of its own.
//! The secret holds 256 random bits, so nobody can search for it from the
//! hash, and a slow password hash (Argon2, bcrypt) would protect nothing
//! more while adding milliseconds to every call; BLAKE3 takes about
//! 100 ns here and is already the content hash. A database dump therefore
//! gives no usable key.

use std::fmt;

use base64::Engine as _;

use super::{ApiKeyId, TenantId, check_text, truncate_for_message};
use crate::error::{Error, Reason, Result};

/// Prefix of every key secret: tells a mediastore key apart in logs and
/// secret scanners, and a malformed one from an unknown one.
pub const KEY_PREFIX: &str = "msk_";
/// Characters of a secret after its prefix: 32 bytes in unpadded base64url.
const KEY_BODY_CHARS: usize = 43;
/// Characters of the secret kept in clear to recognise a key in a list:
/// the prefix and 8 more (48 bits, not enough to help a guess).
const SHOWN_PREFIX_CHARS: usize = KEY_PREFIX.len() + 8;
/// BLAKE3 key-derivation context for key hashes; never reused elsewhere.
const KEY_HASH_CONTEXT: &str = "mediastore 2026-12-03 API key secret hash";
/// Longest tenant or key name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest role, in characters.
pub const MAX_ROLE_CHARS: usize = 100;

/// A permission a key grants. The names are the API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read media, renditions, folders and bindings.
    MediaRead,
    /// Change media metadata, move media, bind and unbind.
    MediaWrite,
    /// Delete media.
    MediaDelete,
    /// Create, rename and move folders.
    FoldersWrite,
    /// Delete folders with what they hold.
    FoldersDelete,
    /// Upload new media, in one stream or resumably.
    UploadsWrite,
    /// Operate the server: tenants, keys, garbage collection, scrub.
    Admin,
    /// See the tenant's jobs and watch their progress.
    JobsRead,
    /// Start, cancel, retry and delete the tenant's jobs (reanalysis,
    /// imports).
    JobsWrite,
}

impl Scope {
    /// Every scope, in the order the API documents them.
    pub const ALL: [Scope; 9] = [
        Scope::MediaRead,
        Scope::MediaWrite,
        Scope::MediaDelete,
        Scope::FoldersWrite,
        Scope::FoldersDelete,
        Scope::UploadsWrite,
        Scope::Admin,
        Scope::JobsRead,
        Scope::JobsWrite,
    ];

    /// The scope's name in the API, e.g. `media:read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MediaRead => "media:read",
            Self::MediaWrite => "media:write",
            Self::MediaDelete => "media:delete",
            Self::FoldersWrite => "folders:write",
            Self::FoldersDelete => "folders:delete",
            Self::UploadsWrite => "uploads:write",
            Self::Admin => "admin",
            Self::JobsRead => "jobs:read",
            Self::JobsWrite => "jobs:write",
        }
    }

    /// The scope a client named in `field`.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!(
                        "{:?} is not a scope; use {}",
                        truncate_for_message(s),
                        Self::ALL.map(Scope::as_str).join(", ")
                    ),
                )
            })
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u16);

impl Scopes {
    /// Every scope.
    pub fn all() -> Self {
        Self::from_iter(Scope::ALL)
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in the set, in [`Scope::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Space-separated names, the form stored in the database.
    pub fn to_text(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    /// Parses names a client sent in `field` (one per entry); at least
    /// one is required.
    pub fn parse<'a>(field: &str, names: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut set = Self::default();
        for (i, name) in names.into_iter().enumerate() {
            set.0 |= Scope::parse(&format!("{field}[{i}]"), name.trim())?.bit();
        }
        if set.is_empty() {
            return Err(Error::required(
                field,
                format!(
                    "a key needs at least one scope: {}",
                    Scope::ALL.map(Scope::as_str).join(", ")
                ),
            ));
        }
        Ok(set)
    }

    /// Parses the stored form; `None` if it names an unknown scope.
    pub fn from_text(s: &str) -> Option<Self> {
        s.split_whitespace()
            .map(|name| Scope::ALL.into_iter().find(|x| x.as_str() == name))
            .collect::<Option<Self>>()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

/// Who a call acts as, decided once at the edge and passed to every
/// operation: the tenant whose objects it sees, the name and role it
/// records as author, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Whose objects the call reads and writes.
    pub tenant: TenantId,
    /// Recorded as `created_by` / `updated_by`: a key's name.
    pub name: String,
    /// Recorded as `created_role`.
    pub role: String,
    /// What the caller may do.
    pub scopes: Scopes,
    /// The key the call came with, if any (rate limits are per key).
    pub key: Option<ApiKeyId>,
    /// A caller without credentials, on a call that public media answer:
    /// it may read a public media of any tenant, and nothing else.
    pub public_only: bool,
}

impl Principal {
    /// The caller when the server runs with `--insecure-no-auth`: the
    /// default tenant, every scope, recorded as "anonymous".
    pub fn unauthenticated() -> Self {
        Self {
            tenant: TenantId::DEFAULT,
            name: "anonymous".to_string(),
            role: String::new(),
            scopes: Scopes::all(),
            key: None,
            public_only: false,
        }
    }

    /// A caller without credentials on a call public media answer. Its
    /// tenant owns nothing (the nil id), so an operation that forgot to
    /// look for the public media's owner would find nothing, never another
    /// tenant's private media.
    pub fn anonymous() -> Self {
        Self {
            tenant: TenantId(uuid::Uuid::nil()),
            name: "anonymous".to_string(),
            role: String::new(),
            scopes: Scopes::default(),
            key: None,
            public_only: true,
        }
    }

    /// Fails with PERMISSION_DENIED unless the caller holds `scope`
    /// (`admin` only counts for the operator's tenant: see
    /// [`check_admin_tenant`]).
    pub fn require(&self, scope: Scope) -> Result<()> {
        if scope == Scope::Admin
            && self.scopes.contains(scope)
            && check_admin_tenant(self.tenant, self.scopes).is_err()
        {
            return Err(Error::PermissionDenied {
                scope,
                message: format!(
                    "this call needs the {scope} scope, which only keys of the operator's \
                     tenant \"default\" hold; the key {:?} belongs to another tenant",
                    self.name
                ),
            });
        }
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(Error::PermissionDenied {
                scope,
                message: format!(
                    "this call needs the {scope} scope, which the key {:?} does not have; \
                     ask an operator for a key with it",
                    self.name
                ),
            })
        }
    }
}

/// `admin` is the operator's scope: it reaches every tenant (tenants,
/// keys, garbage collection and the scrub see the whole store), so only
/// principals of the operator's tenant, `default`, may hold it. Another
/// tenant's key with it would let that tenant see and change the others.
pub fn check_admin_tenant(tenant: TenantId, scopes: Scopes) -> Result<()> {
    if scopes.contains(Scope::Admin) && tenant != TenantId::DEFAULT {
        return Err(Error::invalid(
            "scopes",
            "the admin scope is the operator's: it reaches every tenant, so only keys of the \
             tenant \"default\" may have it",
        ));
    }
    Ok(())
}

/// The stored form of a key's secret (see the module's docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// Lowercase hex, the stored form.
    pub fn to_hex(self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the secret, but no reason to spread it through logs either.
        f.write_str("KeyHash(..)")
    }
}

/// A new key's secret, shown once.
#[derive(Clone)]
pub struct NewSecret {
    /// `msk_...`, to give the caller.
    pub secret: String,
    /// What the server stores.
    pub hash: KeyHash,
    /// Its first characters, stored in clear for lists.
    pub shown_prefix: String,
}

impl fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSecret")
            .field("shown_prefix", &self.shown_prefix)
            .finish_non_exhaustive()
    }
}

impl NewSecret {
    /// 32 bytes from the operating system's random source.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| {
            Error::io(
                "reading random bytes for a key",
                std::io::Error::other(e.to_string()),
            )
        })?;
        let secret = format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        Self::from_secret(secret)
    }

    /// A secret chosen by an operator (`--bootstrap-key`), which must have
    /// the format of a generated one.
    pub fn from_secret(secret: String) -> Result<Self> {
        let hash = hash_secret(&secret).ok_or_else(|| {
            Error::invalid(
                "bootstrap_key",
                format!(
                    "a key is {KEY_PREFIX} followed by 43 base64url characters (32 random \
                     bytes), e.g. from `openssl rand 32 | basenc --base64url | tr -d =`"
                ),
            )
        })?;
        Ok(Self {
            shown_prefix: secret[..SHOWN_PREFIX_CHARS].to_string(),
            secret,
            hash,
        })
    }
}

/// The hash of a secret in the key format, `None` if it is not in it.
pub fn hash_secret(secret: &str) -> Option<KeyHash> {
    let body = secret.strip_prefix(KEY_PREFIX)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .ok()?;
    if body.len() != KEY_BODY_CHARS || bytes.len() != 32 {
        return None;
    }
    let mut hasher = blake3::Hasher::new_derive_key(KEY_HASH_CONTEXT);
    hasher.update(&bytes);
    Some(KeyHash(*hasher.finalize().as_bytes()))
}

/// A checked tenant or key name: 1-200 characters, no control characters,
/// no surrounding spaces.
pub fn check_name(field: &str, name: &str) -> Result<String> {
    if name.trim().is_empty() {
        return Err(Error::required(field, format!("{field} must not be empty")));
    }
    if name.trim() != name {
        return Err(Error::invalid(
            field,
            format!("{field} must not start or end with spaces"),
        ));
    }
    check_text(field, name, MAX_NAME_CHARS)?;
    Ok(name.to_string())
}

/// A checked role: 0-100 characters, no control characters.
pub fn check_role(field: &str, role: &str) -> Result<String> {
    check_text(field, role, MAX_ROLE_CHARS)?;
    Ok(role.trim().to_string())
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Its unique name.
    pub name: String,
    /// µs since the epoch.
    pub created_at: i64,
    /// Its limits.
    pub quota: Quota,
}

/// What a tenant may hold; `None` for no limit. Every media counts its
/// full size, whatever bytes it shares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Most bytes its media may total.
    pub max_bytes: Option<u64>,
    /// Most media.
    pub max_media: Option<u64>,
}

impl Quota {
    /// Whether any limit is set.
    pub fn is_limited(self) -> bool {
        self.max_bytes.is_some() || self.max_media.is_some()
    }
}

/// What a tenant holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of its media, each counted in full.
    pub bytes: u64,
    /// Its media.
    pub media: u64,
}

/// An API key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The tenant it acts for.
    pub tenant: TenantId,
    /// Unique within the tenant.
    pub name: String,
    /// Recorded as `created_role`.
    pub role: String,
    /// What it may do.
    pub scopes: Scopes,
    /// The secret's first characters.
    pub shown_prefix: String,
    /// µs since the epoch.
    pub created_at: i64,
    /// µs since the epoch after which it no longer works.
    pub expires_at: Option<i64>,
    /// µs since the epoch when it was revoked.
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    /// The principal this key makes, if it may still be used at `now`
    /// (µs); otherwise why not.
    pub fn principal_at(&self, now: i64) -> Result<Principal> {
        if self.revoked_at.is_some() {
            return Err(Error::Unauthenticated {
                reason: Reason::KeyRevoked,
                message: format!(
                    "the key {:?} ({}...) was revoked; ask an operator for a new one",
                    self.name, self.shown_prefix
                ),
            });
        }
        if let Some(end) = self.expires_at.filter(|end| *end <= now) {
            return Err(Error::Unauthenticated {
                reason: Reason::KeyExpired,
                message: format!(
                    "the key {:?} ({}...) expired at {} (µs since the epoch); ask an operator \
                     for a new one",
                    self.name, self.shown_prefix, end
                ),
            });
        }
        Ok(Principal {
            tenant: self.tenant,
            name: self.name.clone(),
            role: self.role.clone(),
            scopes: self.scopes,
            key: Some(self.id),
            public_only: false,
        })
    }
}

/// A key to create.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// The tenant it acts for.
    pub tenant: TenantId,
    /// Its name, checked by [`check_name`].
    pub name: String,
    /// Its role, checked by [`check_role`].
    pub role: String,
    /// At least one scope.
    pub scopes: Scopes,
    /// µs since the epoch, in the future; `None` for never.
    pub expires_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_and_hash_alike() {
        let k = NewSecret::generate().expect("random bytes");
        assert!(k.secret.starts_with(KEY_PREFIX));
        assert_eq!(k.secret.len(), KEY_PREFIX.len() + KEY_BODY_CHARS);
        assert_eq!(hash_secret(&k.secret), Some(k.hash));
        assert!(k.secret.starts_with(&k.shown_prefix));
        let other = NewSecret::generate().expect("random bytes");
        assert_ne!(other.hash, k.hash);
    }

    #[test]
    fn malformed_secrets_have_no_hash() {
        let good = NewSecret::generate().expect("random bytes").secret;
        for bad in [
            String::new(),
            "msk_".to_string(),
            good[..good.len() - 1].to_string(),
            format!("{good}A"),
            good.replacen("msk_", "msx_", 1),
            good.replacen(&good[10..11], "+", 1),
            format!("{}=", &good[..good.len() - 1]),
        ] {
            assert_eq!(hash_secret(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scopes_round_trip_and_reject_unknown_names() {
        let s = Scopes::parse("scopes", ["media:read", "admin"]).expect("known scopes");
        assert!(s.contains(Scope::MediaRead) && s.contains(Scope::Admin));
        assert!(!s.contains(Scope::MediaWrite));
        assert_eq!(s.to_text(), "media:read admin");
        assert_eq!(Scopes::from_text(&s.to_text()), Some(s));
        assert_eq!(Scopes::from_text("media:read jobs:fly"), None);
        assert!(Scopes::parse("scopes", ["media:red"]).is_err());
        assert!(Scopes::parse("scopes", []).is_err());
        assert_eq!(Scopes::all().iter().count(), Scope::ALL.len());
    }
}
