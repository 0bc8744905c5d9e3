//! Client certificates as principals: the `--tls-principals` file maps a
//! verified client certificate, by its subject or one of its subject
//! alternative names, to a tenant, a role and scopes, so that services
//! that authenticate with mutual TLS need no bearer key.
//!
//! The file is JSON:
//!
//! ```json
//! {"principals": [
//!   {"subject": "CN=thumbnailer,O=Acme", "tenant": "default",
//!    "role": "service", "scopes": ["media:read", "media:write"]},
//!   {"dns": "uploader.media.svc", "tenant": "team-a", "scopes": ["uploads:write"]},
//!   {"uri": "spiffe://cluster.local/ns/a/sa/web", "tenant": "team-a",
//!    "name": "web", "scopes": ["media:read"]}
//! ]}
//! ```
//!
//! Each entry names exactly one of `subject` (the distinguished name in
//! RFC 4514 form, as `openssl x509 -noout -subject -nameopt RFC2253`
//! prints it), `dns` (a DNS name SAN, compared without case) or `uri` (a
//! URI SAN, such as a SPIFFE id). The first entry that matches wins. The
//! principal's name, recorded as `created_by`, is the entry's `name`, or
//! else the subject or SAN it matched on. Tenants are named by name or id
//! and looked up when the file is loaded, so a file naming an unknown
//! tenant is refused as a whole (the server keeps the previous one).
//!
//! Only the TLS layer decides whether a certificate is valid (the client
//! CA, expiry, key usage); this module only reads the names of one it
//! already accepted.

use std::sync::{Arc, RwLock};

use x509_cert::{
    Certificate,
    der::Decode as _,
    ext::pkix::{SubjectAltName, name::GeneralName},
};

use crate::{
    domain::{Principal, Scopes, TenantId, check_admin_tenant, check_name, check_role},
    library::Library,
};

/// What an entry matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Identity {
    /// The subject's distinguished name, RFC 4514.
    Subject(String),
    /// A DNS name SAN, lower-cased.
    Dns(String),
    /// A URI SAN.
    Uri(String),
}

/// One entry of the file, resolved.
#[derive(Debug, Clone)]
struct Entry {
    identity: Identity,
    tenant: TenantId,
    name: String,
    role: String,
    scopes: Scopes,
}

/// The names a client certificate carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertNames {
    /// The subject, RFC 4514.
    pub subject: String,
    /// DNS name SANs.
    pub dns: Vec<String>,
    /// URI SANs.
    pub uris: Vec<String>,
}

impl CertNames {
    /// Reads the subject and SANs of a DER certificate; `None` if it cannot
    /// be parsed (rustls accepted it, so this does not happen in practice).
    pub fn read(der: &[u8]) -> Option<Self> {
        let cert = Certificate::from_der(der).ok()?;
        let tbs = &cert.tbs_certificate;
        let mut names = Self {
            subject: tbs.subject.to_string(),
            ..Self::default()
        };
        if let Ok(Some((_, SubjectAltName(sans)))) = tbs.get::<SubjectAltName>() {
            for san in sans {
                match san {
                    GeneralName::DnsName(d) => names.dns.push(d.to_string()),
                    GeneralName::UniformResourceIdentifier(u) => names.uris.push(u.to_string()),
                    _ => {}
                }
            }
        }
        Some(names)
    }

    /// How the names read in a message: the subject and the SANs.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("subject {:?}", self.subject)];
        parts.extend(self.dns.iter().map(|d| format!("dns {d:?}")));
        parts.extend(self.uris.iter().map(|u| format!("uri {u:?}")));
        parts.join(", ")
    }
}

/// The certificate-to-principal map of one load of the file.
#[derive(Debug, Clone, Default)]
pub struct CertPrincipals {
    entries: Vec<Entry>,
}

/// The file's form, before its tenants are looked up.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    principals: Vec<EntryForm>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryForm {
    subject: Option<String>,
    dns: Option<String>,
    uri: Option<String>,
    tenant: String,
    name: Option<String>,
    #[serde(default)]
    role: String,
    scopes: Vec<String>,
}

impl CertPrincipals {
    /// Parses the file's text and looks up its tenants; the error says
    /// which entry is wrong and why.
    pub async fn load(text: &str, library: &Library) -> Result<Self, String> {
        let form: FileForm =
            serde_json::from_str(text).map_err(|e| format!("not a principals file: {e}"))?;
        let mut entries = Vec::with_capacity(form.principals.len());
        for (i, e) in form.principals.into_iter().enumerate() {
            let at = format!("principals[{i}]");
            let identity = match (e.subject, e.dns, e.uri) {
                (Some(s), None, None) => Identity::Subject(s.trim().to_string()),
                (None, Some(d), None) => Identity::Dns(d.trim().to_ascii_lowercase()),
                (None, None, Some(u)) => Identity::Uri(u.trim().to_string()),
                _ => {
                    return Err(format!(
                        "{at}: name exactly one of \"subject\", \"dns\" or \"uri\""
                    ));
                }
            };
            let matched = match &identity {
                Identity::Subject(s) | Identity::Dns(s) | Identity::Uri(s) => s.clone(),
            };
            let name = check_name(&format!("{at}.name"), e.name.as_deref().unwrap_or(&matched))
                .map_err(|e| e.to_string())?;
            let role = check_role(&format!("{at}.role"), &e.role).map_err(|e| e.to_string())?;
            let scopes =
                Scopes::parse(&format!("{at}.scopes"), e.scopes.iter().map(String::as_str))
                    .map_err(|e| e.to_string())?;
            let tenant = library
                .find_tenant(&e.tenant)
                .await
                .map_err(|err| format!("{at}.tenant {:?}: {err}", e.tenant))?;
            check_admin_tenant(tenant.id, scopes).map_err(|e| format!("{at}: {e}"))?;
            entries.push(Entry {
                identity,
                tenant: tenant.id,
                name,
                role,
                scopes,
            });
        }
        Ok(Self { entries })
    }

    /// The principal a certificate with `names` acts as, if an entry
    /// matches it.
    pub fn principal(&self, names: &CertNames) -> Option<Principal> {
        let entry = self.entries.iter().find(|e| match &e.identity {
            Identity::Subject(s) => *s == names.subject,
            Identity::Dns(d) => names.dns.iter().any(|n| n.eq_ignore_ascii_case(d)),
            Identity::Uri(u) => names.uris.iter().any(|n| n == u),
        })?;
        Some(Principal {
            tenant: entry.tenant,
            name: entry.name.clone(),
            role: entry.role.clone(),
            scopes: entry.scopes,
            key: None,
            public_only: false,
        })
    }

    /// How many entries the map has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The map in force, shared by the authenticator (which reads it on every
/// call with a certificate) and the TLS reloader (which replaces it).
#[derive(Debug, Clone, Default)]
pub struct SharedCertPrincipals(Arc<RwLock<Arc<CertPrincipals>>>);

impl SharedCertPrincipals {
    /// The map in force.
    pub fn get(&self) -> Arc<CertPrincipals> {
        match self.0.read() {
            Ok(map) => Arc::clone(&map),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts `map` in force for the calls that follow.
    pub fn set(&self, map: CertPrincipals) {
        let map = Arc::new(map);
        match self.0.write() {
            Ok(mut slot) => *slot = map,
            Err(poisoned) => *poisoned.into_inner() = map,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(identity: Identity) -> Entry {
        Entry {
            identity,
            tenant: TenantId::DEFAULT,
            name: "svc".into(),
            role: "service".into(),
            scopes: Scopes::all(),
        }
    }

    fn names(subject: &str, dns: &[&str], uris: &[&str]) -> CertNames {
        CertNames {
            subject: subject.into(),
            dns: dns.iter().map(|s| s.to_string()).collect(),
            uris: uris.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn entries_match_by_subject_dns_without_case_and_uri() {
        let map = CertPrincipals {
            entries: vec![
                entry(Identity::Subject("CN=a,O=Acme".into())),
                entry(Identity::Dns("b.svc".into())),
                entry(Identity::Uri("spiffe://x/c".into())),
            ],
        };
        assert!(map.principal(&names("CN=a,O=Acme", &[], &[])).is_some());
        assert!(map.principal(&names("CN=a", &[], &[])).is_none());
        assert!(map.principal(&names("", &["B.SVC"], &[])).is_some());
        assert!(map.principal(&names("", &["c.svc"], &[])).is_none());
        assert!(map.principal(&names("", &[], &["spiffe://x/c"])).is_some());
        assert!(map.principal(&names("", &[], &["spiffe://x/C"])).is_none());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(CertNames::read(b"not der"), None);
    }
}
