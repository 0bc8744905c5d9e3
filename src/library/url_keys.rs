//! The keys that sign media URLs: HMAC-SHA256 under a key id, so keys can
//! rotate. The first key signs; every key verifies, so a new key goes
//! first and an old one stays until the URLs it signed have expired.
//!
//! Keys come from the operator (a flag, the environment or a file), or,
//! on a server given none, from a file the server makes once in its data
//! directory; never from the database.

use base64::Engine as _;
use hmac::Mac;

/// HMAC-SHA256.
type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Fewest characters a secret may have: 32 random characters of base64
/// carry 192 bits.
pub const MIN_SECRET_CHARS: usize = 32;
/// Longest key id: it travels in every URL.
const MAX_KEY_ID_CHARS: usize = 32;
/// Id of the key a server makes for itself.
pub const GENERATED_KEY_ID: &str = "local";

/// Signing and verification keys, the signing one first.
#[derive(Clone)]
pub struct UrlKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for UrlKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: secrets never reach a log.
        f.debug_list()
            .entries(self.keys.iter().map(|(id, _)| id))
            .finish()
    }
}

impl UrlKeys {
    /// Reads `KEY_ID=SECRET` pairs separated by commas or newlines (blank
    /// entries and `#` comments to the end of a line are skipped).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            for entry in line.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (id, secret) = entry
                    .split_once('=')
                    .ok_or_else(|| "each key is KEY_ID=SECRET (an entry has no `=`)".to_string())?;
                let (id, secret) = (id.trim(), secret.trim());
                if id.is_empty()
                    || id.len() > MAX_KEY_ID_CHARS
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(format!(
                        "key id {id:?} must be 1-{MAX_KEY_ID_CHARS} letters, digits, `-` or `_`"
                    ));
                }
                if secret.chars().count() < MIN_SECRET_CHARS {
                    return Err(format!(
                        "the secret of key {id:?} has fewer than {MIN_SECRET_CHARS} characters"
                    ));
                }
                if keys.iter().any(|(k, _)| k == id) {
                    return Err(format!("key id {id:?} is given twice"));
                }
                keys.push((id.to_string(), secret.as_bytes().to_vec()));
            }
        }
        if keys.is_empty() {
            return Err("no key is given".into());
        }
        Ok(Self { keys })
    }

    /// A new key in `parse`'s format: [`GENERATED_KEY_ID`] and 43
    /// characters of base64url (256 random bits).
    pub fn generate() -> Result<String, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(format!(
            "{GENERATED_KEY_ID}={}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    /// The id of the key that signs.
    pub fn signing_id(&self) -> &str {
        &self.keys[0].0
    }

    /// The signature of `message` under the signing key, in base64url
    /// without padding.
    pub fn sign(&self, message: &str) -> String {
        let mac = Self::mac(&self.keys[0].1, message).finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
    }

    /// Whether `signature` (base64url) is `message`'s under key `id`; the
    /// comparison takes the same time wherever the bytes differ.
    pub fn verify(&self, id: &str, message: &str, signature: &str) -> bool {
        let Some((_, secret)) = self.keys.iter().find(|(k, _)| k == id) else {
            return false;
        };
        let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        Self::mac(secret, message).verify_slice(&bytes).is_ok()
    }

    fn mac(secret: &[u8], message: &str) -> HmacSha256 {
        let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(secret) else {
            unreachable!("HMAC takes keys of any length");
        };
        mac.update(message.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn the_first_key_signs_and_every_key_verifies() {
        let old = UrlKeys::parse(&format!("k1={A}")).unwrap();
        let sig = old.sign("/image/0x0/x");
        assert_eq!(old.signing_id(), "k1");
        let rotated = UrlKeys::parse(&format!("k2={B}\nk1={A} # retiring")).unwrap();
        assert!(rotated.verify("k1", "/image/0x0/x", &sig));
        assert_eq!(rotated.signing_id(), "k2");
        assert!(!rotated.verify("k2", "/image/0x0/x", &sig));
        assert!(!rotated.verify("k3", "/image/0x0/x", &sig));
        assert!(!rotated.verify("k1", "/image/0x0/y", &sig));
        assert!(!rotated.verify("k1", "/image/0x0/x", "not base64!"));
    }

    #[test]
    fn bad_key_lists_are_refused() {
        for bad in [
            "",
            "# only a comment",
            "k1",
            &format!("k 1={A}"),
            "k1=short",
            &format!("k1={A},k1={B}"),
            &format!("{}={A}", "k".repeat(33)),
        ] {
            assert!(UrlKeys::parse(bad).is_err(), "{bad:?}");
        }
        assert!(UrlKeys::parse(&UrlKeys::generate().unwrap()).is_ok());
        let keys = UrlKeys::parse(&format!("k1={A}, k2={B}")).unwrap();
        assert_eq!(format!("{keys:?}"), r#"["k1", "k2"]"#);
    }
}
