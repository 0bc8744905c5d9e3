//! Media URLs for browsers and CDNs: what a URL looks like, who may make
//! one, and what a requested URL asks for and whether it may have it. The
//! gRPC services make URLs here and the HTTP edge reads them here, so a
//! URL means the same to both, and a rendition asked for by URL meets
//! exactly GetRendition's limits.
//!
//! # Format
//!
//! Paths follow seed 002's `/image/{width}x{height}/{key}`, the key being
//! the media id with, optionally, an extension (ignored: it only gives
//! the saved file a name a browser likes):
//!
//! - `/image/0x0/{id}.{ext}`: the original, whatever its type;
//! - `/image/{w}x{h}/{id}.{ext}?fit=cover&format=webp&quality=90`: a
//!   rendition; options at their defaults (contain, jpeg, 80) are left
//!   out, except that `0x0` with no option at all is the original;
//! - `/image/{preset}/{id}.{ext}`: a preset's rendition.
//!
//! Instead of `{id}.{ext}`, a URL may name what a tenant's slot or code
//! holds, whatever media that is when it is fetched (an avatar's URL that
//! survives a new avatar): `s/{tenant}/{resource}` (a slot with an empty
//! key), `s/{tenant}/{resource}/{key}`, `c/{tenant}/{code}`, each part
//! percent-encoded (`/` too). The tenant is in the path because slots and
//! codes are a tenant's names; it says no more than a signed URL's media
//! id would.
//!
//! A signed URL adds `exp` (Unix seconds), `kid` (the key's id) and
//! `sig` (base64url HMAC-SHA256), `sig` last. The MAC covers the path and
//! every parameter before `sig` exactly as sent, so no part of the URL
//! can change without breaking it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::{Library, RenditionRequest, url_keys::UrlKeys};
use crate::{
    domain::{Media, MediaId, MediaRef, MediaType, Slot, TenantId, parse_code},
    error::{Error, Reason, Result},
    render::{Fit, OutputFormat, RenditionSpec},
};

/// Where the prefix of URL paths begins; seed 002's.
const IMAGE_PREFIX: &str = "/image/";
/// JPEG quality a URL without `quality` asks for (GetRendition's default).
const DEFAULT_QUALITY: u8 = 80;
/// Longest extension a key may carry.
const MAX_EXTENSION_CHARS: usize = 10;
/// What a slot's or code's path segment escapes: all but unreserved
/// characters, so `/` in a resource stays inside its segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How a URL names its media.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UrlMedia {
    /// By id.
    Id(MediaId),
    /// By what a tenant's slot or code holds when the URL is fetched.
    Named {
        /// Whose slot or code.
        tenant: TenantId,
        /// Which.
        by: MediaRef,
    },
}

impl std::fmt::Display for UrlMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Named {
                by: MediaRef::Id(id),
                ..
            } => id.fmt(f),
            Self::Named {
                by: MediaRef::Slot(slot),
                ..
            } => write!(f, "slot {slot}"),
            Self::Named {
                by: MediaRef::Code(code),
                ..
            } => write!(f, "code {code:?}"),
        }
    }
}

impl UrlMedia {
    /// The key part of a URL's path naming this media (`ext`, for an id).
    fn key(&self, ext: Option<&str>) -> String {
        let enc = |s: &str| utf8_percent_encode(s, SEGMENT).to_string();
        match self {
            Self::Id(id)
            | Self::Named {
                by: MediaRef::Id(id),
                ..
            } => match ext {
                Some(ext) => format!("{id}.{ext}"),
                None => id.to_string(),
            },
            Self::Named {
                tenant,
                by: MediaRef::Slot(slot),
            } if slot.key.is_empty() => {
                format!("s/{tenant}/{}", enc(&slot.resource))
            }
            Self::Named {
                tenant,
                by: MediaRef::Slot(slot),
            } => {
                format!("s/{tenant}/{}/{}", enc(&slot.resource), enc(&slot.key))
            }
            Self::Named {
                tenant,
                by: MediaRef::Code(code),
            } => format!("c/{tenant}/{}", enc(code)),
        }
    }

    /// Reads a key part of a path; `None` for anything else.
    fn parse(key: &str) -> Option<Self> {
        let dec = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        };
        let tenant = |s: &str| uuid::Uuid::try_parse(s).ok().map(TenantId);
        if let Some(named) = key.strip_prefix("s/") {
            let parts: Vec<&str> = named.split('/').collect();
            let (t, resource, slot_key) = match parts.as_slice() {
                [t, r] => (*t, dec(r)?, String::new()),
                [t, r, k] => (*t, dec(r)?, dec(k)?),
                _ => return None,
            };
            let slot = Slot::parse("slot", &resource, &slot_key).ok()?;
            return Some(Self::Named {
                tenant: tenant(t)?,
                by: MediaRef::Slot(slot),
            });
        }
        if let Some(named) = key.strip_prefix("c/") {
            let (t, code) = named.split_once('/')?;
            let code = parse_code("code", &dec(code)?).ok()?;
            return Some(Self::Named {
                tenant: tenant(t)?,
                by: MediaRef::Code(code),
            });
        }
        let id = match key.split_once('.') {
            Some((id, ext))
                if !ext.is_empty()
                    && ext.len() <= MAX_EXTENSION_CHARS
                    && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                id
            }
            Some(_) => return None,
            None => key,
        };
        uuid::Uuid::try_parse(id).ok().map(|u| Self::Id(MediaId(u)))
    }
}

/// The URL the HTTP listener is reached at, without a trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Checks an `http(s)://host[:port][/prefix]` URL.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().trim_end_matches('/');
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or("it must start with http:// or https://")?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err("it has no host".into());
        }
        if rest
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
        {
            return Err("it may hold no spaces, query or fragment".into());
        }
        Ok(Self(s.to_string()))
    }
}

/// How the server makes and checks URLs.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Where URLs point; without it the server makes none.
    pub base: Option<BaseUrl>,
    /// Keys signing private media's URLs; without them only public media
    /// get URLs.
    pub keys: Option<UrlKeys>,
    /// Lifetime of a signed URL when the request does not say.
    pub ttl: Duration,
    /// Longest lifetime a request may ask for.
    pub max_ttl: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            base: None,
            keys: None,
            ttl: Duration::from_secs(3600),
            max_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What a URL serves.
#[derive(Debug, Clone, PartialEq)]
pub enum UrlTarget {
    /// The media's own bytes.
    Original,
    /// A rendition of an image media.
    Rendition(RenditionRequest),
}

/// A URL made for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUrl {
    /// The absolute URL.
    pub url: String,
    /// Until when a signed URL works, Unix seconds; `None` when unsigned.
    pub expires_at: Option<u64>,
}

/// What a requested URL asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlRequest {
    /// The media.
    pub media: UrlMedia,
    /// Its original or a rendition.
    pub target: UrlTarget,
    /// The signature, when the URL carries one.
    pub signature: Option<Signature>,
}

/// A URL's signature, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// What was signed: the path and the parameters before `sig`.
    message: String,
    /// The key's id.
    kid: String,
    /// Expiry, Unix seconds.
    expires_at: u64,
    /// The MAC, base64url.
    sig: String,
}

/// Why a requested URL is not served. `Forbidden` and `NotFound` say
/// nothing more, so that a guess learns nothing.
#[derive(Debug)]
pub enum UrlRefusal {
    /// No such URL, media, or no access without a valid signature.
    NotFound,
    /// A signature that is expired, altered or under an unknown key.
    Forbidden,
    /// A malformed request a person should fix (bad option values).
    BadRequest(String),
    /// Anything else the library answered.
    Failed(Error),
}

impl From<Error> for UrlRefusal {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound { .. } => Self::NotFound,
            e => Self::Failed(e),
        }
    }
}

/// Who may read what a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlAccess {
    /// Anyone, the media being public: cacheable by anyone, for long.
    Public,
    /// The bearer of a signature valid until `expires_at` (Unix seconds).
    Signed {
        /// When the signature stops working.
        expires_at: u64,
    },
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl UrlRequest {
    /// Reads a request's path and raw query; `NotFound` for a path that
    /// is no media URL, `BadRequest` for options out of their domain.
    pub fn parse(path: &str, query: Option<&str>) -> std::result::Result<Self, UrlRefusal> {
        let rest = path
            .strip_prefix(IMAGE_PREFIX)
            .ok_or(UrlRefusal::NotFound)?;
        let (size, key) = rest.split_once('/').ok_or(UrlRefusal::NotFound)?;
        let media = UrlMedia::parse(key).ok_or(UrlRefusal::NotFound)?;

        let params: Vec<(&str, &str)> = query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let bad = |m: String| UrlRefusal::BadRequest(m);

        let fit = param("fit")
            .map(|v| match v {
                "contain" => Ok(Fit::Contain),
                "cover" => Ok(Fit::Cover),
                "fill" => Ok(Fit::Fill),
                "scale-down" => Ok(Fit::ScaleDown),
                v => Err(bad(format!(
                    "fit {v:?} is not contain, cover, fill or scale-down"
                ))),
            })
            .transpose()?;
        let format = param("format")
            .map(|v| match v {
                "jpeg" | "jpg" => Ok(OutputFormat::Jpeg),
                "png" => Ok(OutputFormat::Png),
                "webp" => Ok(OutputFormat::Webp),
                v => Err(bad(format!("format {v:?} is not jpeg, png or webp"))),
            })
            .transpose()?;
        let quality = param("quality")
            .map(|v| match v.parse::<u8>() {
                Ok(q @ 1..=100) => Ok(q),
                _ => Err(bad(format!("quality {v:?} is not 1-100"))),
            })
            .transpose()?;
        let options = fit.is_some() || format.is_some() || quality.is_some();

        let target = match size.split_once('x').map(|(w, h)| (w.parse(), h.parse())) {
            Some((Ok(0), Ok(0))) if !options => UrlTarget::Original,
            Some((Ok(width), Ok(height))) => {
                UrlTarget::Rendition(RenditionRequest::Spec(RenditionSpec {
                    width,
                    height,
                    fit: fit.unwrap_or(Fit::Contain),
                    format: format.unwrap_or(OutputFormat::Jpeg),
                    quality: quality.unwrap_or(DEFAULT_QUALITY),
                }))
            }
            _ if is_preset_name(size) => {
                if options {
                    return Err(bad(
                        "a preset's URL takes no fit, format or quality".to_string()
                    ));
                }
                UrlTarget::Rendition(RenditionRequest::Preset(size.to_string()))
            }
            _ => return Err(UrlRefusal::NotFound),
        };

        let signature = match params.iter().position(|(k, _)| *k == "sig") {
            None => None,
            Some(at) => {
                // `sig` is last, so the message is exactly what precedes it.
                if at + 1 != params.len() {
                    return Err(UrlRefusal::Forbidden);
                }
                let (exp, kid) = (param("exp"), param("kid"));
                let (Some(Ok(expires_at)), Some(kid)) = (exp.map(str::parse::<u64>), kid) else {
                    return Err(UrlRefusal::Forbidden);
                };
                let signed_query = query
                    .unwrap_or_default()
                    .rsplit_once("sig=")
                    .map_or("", |(before, _)| before.trim_end_matches('&'));
                Some(Signature {
                    message: message(path, signed_query),
                    kid: kid.to_string(),
                    expires_at,
                    sig: params[at].1.to_string(),
                })
            }
        };
        Ok(Self {
            media,
            target,
            signature,
        })
    }
}

/// Preset names a path segment may be: a lowercase letter, then
/// lowercase letters, digits, `-` and `_`.
fn is_preset_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// What a signature covers.
fn message(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// The path and query (without signature) of `target` of `media`.
fn path_and_query(media: &UrlMedia, target: &UrlTarget, ext: Option<&str>) -> (String, String) {
    let key = media.key(ext);
    match target {
        UrlTarget::Original => (format!("{IMAGE_PREFIX}0x0/{key}"), String::new()),
        UrlTarget::Rendition(RenditionRequest::Preset(name)) => {
            (format!("{IMAGE_PREFIX}{name}/{key}"), String::new())
        }
        UrlTarget::Rendition(RenditionRequest::Spec(spec)) => {
            let mut query = Vec::new();
            let fit = match spec.fit {
                Fit::Contain => None,
                Fit::Cover => Some("cover"),
                Fit::Fill => Some("fill"),
                Fit::ScaleDown => Some("scale-down"),
            };
            if let Some(fit) = fit {
                query.push(format!("fit={fit}"));
            }
            // `0x0` alone is the original; an explicit format tells the
            // rendition at the source's size apart from it.
            if spec.format != OutputFormat::Jpeg || (spec.width == 0 && spec.height == 0) {
                query.push(format!("format={}", extension_of(spec.format)));
            }
            if spec.format == OutputFormat::Jpeg && spec.quality != DEFAULT_QUALITY {
                query.push(format!("quality={}", spec.quality));
            }
            (
                format!("{IMAGE_PREFIX}{}x{}/{key}", spec.width, spec.height),
                query.join("&"),
            )
        }
    }
}

/// The file extension of a rendition format.
fn extension_of(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Jpeg => "jpg",
        OutputFormat::Png => "png",
        OutputFormat::Webp => "webp",
    }
}

/// The extension of a media's name, when it is one a URL may carry.
fn media_extension(media: &Media) -> Option<String> {
    let (_, ext) = media.filename.rsplit_once('.')?;
    (!ext.is_empty()
        && ext.len() <= MAX_EXTENSION_CHARS
        && ext.bytes().all(|b| b.is_ascii_alphanumeric()))
    .then(|| ext.to_ascii_lowercase())
}

impl Library {
    /// The URL settings.
    pub fn delivery(&self) -> &Delivery {
        &self.inner.limits.delivery
    }

    /// A URL of `target` of media `id` of `tenant`: unsigned when the
    /// media is public (itself or by a folder) and `always_sign` is not
    /// set, else signed for `ttl` (the server's default when `None`).
    /// Renditions are checked as GetRendition checks them. With `by`, the
    /// URL names the media by that slot or code (`id` is what it holds
    /// now) and serves whatever it holds when fetched.
    pub async fn media_url(
        &self,
        tenant: TenantId,
        id: MediaId,
        by: Option<MediaRef>,
        target: UrlTarget,
        ttl: Option<Duration>,
        always_sign: bool,
    ) -> Result<MediaUrl> {
        let delivery = self.delivery();
        let base = delivery.base.as_ref().ok_or_else(|| {
            Error::precondition(
                Reason::DeliveryNotConfigured,
                "this server makes no URLs: its operator has not set --public-base-url \
                 (nor --http-listen); read media with ReadMedia and GetRendition instead",
            )
        })?;
        if let Some(ttl) = ttl
            && ttl > delivery.max_ttl
        {
            return Err(Error::invalid(
                "expires_in_seconds",
                format!(
                    "{} seconds is longer than the {} this server signs URLs for",
                    ttl.as_secs(),
                    delivery.max_ttl.as_secs()
                ),
            ));
        }
        let target = match target {
            UrlTarget::Rendition(request) => {
                let normalized = match &request {
                    RenditionRequest::Preset(_) => {
                        self.check_request(request.clone())?;
                        request
                    }
                    RenditionRequest::Spec(_) => {
                        RenditionRequest::Spec(self.check_request(request)?)
                    }
                };
                UrlTarget::Rendition(normalized)
            }
            t => t,
        };
        let media = self.get(tenant, id).await?;
        if matches!(target, UrlTarget::Rendition(_)) && media.media_type != MediaType::Image {
            return Err(super::renditions::not_an_image(&media));
        }
        let public = !always_sign && self.inner.repo.public_media_owner(id).await? == Some(tenant);
        let expires_at = (!public).then(|| unix_now() + ttl.unwrap_or(delivery.ttl).as_secs());
        let named = match by {
            Some(by) => UrlMedia::Named { tenant, by },
            None => UrlMedia::Id(id),
        };
        self.url_for(base, &media, &named, &target, expires_at)
    }

    /// `Media.url`: when the server has a base URL, the original's URL,
    /// unsigned if the media itself is public, else signed for the
    /// default lifetime (rounded down to an eighth of it, so repeated
    /// answers give browsers the same URL to cache for a while).
    pub fn url_of(&self, media: &Media) -> Option<String> {
        let delivery = self.delivery();
        let base = delivery.base.as_ref()?;
        let expires_at = (!media.public).then(|| {
            let step = (delivery.ttl.as_secs() / 8).max(1);
            let now = unix_now();
            now - now % step + delivery.ttl.as_secs()
        });
        self.url_for(
            base,
            media,
            &UrlMedia::Id(media.id),
            &UrlTarget::Original,
            expires_at,
        )
        .ok()
        .map(|u| u.url)
    }

    /// The URL of `target` of `media`, named as `named`, under `base`,
    /// signed until `expires_at` (Unix seconds) when given.
    fn url_for(
        &self,
        base: &BaseUrl,
        media: &Media,
        named: &UrlMedia,
        target: &UrlTarget,
        expires_at: Option<u64>,
    ) -> Result<MediaUrl> {
        let ext = match target {
            UrlTarget::Original => media_extension(media),
            UrlTarget::Rendition(RenditionRequest::Spec(spec)) => {
                Some(extension_of(spec.format).to_string())
            }
            UrlTarget::Rendition(RenditionRequest::Preset(name)) => self
                .inner
                .limits
                .renditions
                .presets
                .get(name)
                .map(|spec| extension_of(spec.format).to_string()),
        };
        let (path, query) = path_and_query(named, target, ext.as_deref());
        let Some(expires_at) = expires_at else {
            return Ok(MediaUrl {
                url: format!("{}{}", base.0, message(&path, &query)),
                expires_at: None,
            });
        };
        let keys = self.delivery().keys.as_ref().ok_or_else(|| {
            Error::precondition(
                Reason::DeliveryNotConfigured,
                "this server has no URL signing keys, so only public media have URLs",
            )
        })?;
        let mut query = query;
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&format!("exp={expires_at}&kid={}", keys.signing_id()));
        let sig = keys.sign(&message(&path, &query));
        Ok(MediaUrl {
            url: format!("{}{path}?{query}&sig={sig}", base.0),
            expires_at: Some(expires_at),
        })
    }

    /// The access a signature grants, `None` for an unsigned request;
    /// `Forbidden` for a signature that is invalid, expired or under a
    /// key this server does not hold.
    pub(super) fn check_signature(
        &self,
        request: &UrlRequest,
        now: u64,
    ) -> std::result::Result<Option<UrlAccess>, UrlRefusal> {
        let Some(sig) = &request.signature else {
            return Ok(None);
        };
        let keys = self.delivery().keys.as_ref().ok_or(UrlRefusal::Forbidden)?;
        // The MAC first: an expired and a forged URL answer alike whatever
        // their expiry says.
        if !keys.verify(&sig.kid, &sig.message, &sig.sig) || sig.expires_at < now {
            return Err(UrlRefusal::Forbidden);
        }
        Ok(Some(UrlAccess::Signed {
            expires_at: sig.expires_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ID: &str = "01900000-0000-7000-8000-000000000001";

    fn parse(path: &str, query: Option<&str>) -> UrlRequest {
        UrlRequest::parse(path, query).unwrap()
    }

    #[test]
    fn paths_read_back_as_what_they_were_made_for() {
        let id = MediaId(uuid::Uuid::try_parse(ID).unwrap());
        let spec = |width, height, fit, format, quality| {
            UrlTarget::Rendition(RenditionRequest::Spec(RenditionSpec {
                width,
                height,
                fit,
                format,
                quality,
            }))
        };
        for target in [
            UrlTarget::Original,
            UrlTarget::Rendition(RenditionRequest::Preset("thumbnail".into())),
            spec(256, 0, Fit::Contain, OutputFormat::Jpeg, 80),
            spec(0, 0, Fit::Contain, OutputFormat::Jpeg, 80),
            spec(100, 50, Fit::Cover, OutputFormat::Webp, 80),
            spec(10, 10, Fit::ScaleDown, OutputFormat::Jpeg, 55),
        ] {
            let (path, query) = path_and_query(&UrlMedia::Id(id), &target, Some("jpg"));
            let read = parse(&path, Some(&query));
            assert_eq!(read.media, UrlMedia::Id(id));
            assert_eq!(read.target, target, "{path}?{query}");
            assert_eq!(read.signature, None);
        }
        // Slots and codes, escaped within their segments.
        let tenant = TenantId(uuid::Uuid::try_parse(ID).unwrap());
        for by in [
            MediaRef::Slot(Slot::parse("s", "user/42", "avatar").unwrap()),
            MediaRef::Slot(Slot::parse("s", "page home?", "").unwrap()),
            MediaRef::Slot(Slot::parse("s", "ü/é", "a%b&c").unwrap()),
            MediaRef::Code(parse_code("c", "SKU#7/x").unwrap()),
        ] {
            let named = UrlMedia::Named { tenant, by };
            let (path, query) = path_and_query(&named, &UrlTarget::Original, Some("jpg"));
            assert!(!path.contains('?') && !path.contains('#'), "{path}");
            assert_eq!(parse(&path, Some(&query)).media, named, "{path}");
        }
        assert_eq!(
            path_and_query(
                &UrlMedia::Id(id),
                &spec(256, 0, Fit::Contain, OutputFormat::Jpeg, 80),
                None
            ),
            (format!("/image/256x0/{ID}"), String::new())
        );
    }

    #[test]
    fn what_is_no_media_url_is_not_found_and_bad_options_are_bad() {
        for (path, query) in [
            ("/", None),
            ("/image/0x0", None),
            ("/image/0x0/not-a-uuid", None),
            (&format!("/image/0x0/{ID}.t/x"), None),
            (&format!("/image/0x0/{ID}."), None),
            (&format!("/image/Thumb/{ID}"), None),
            (&format!("/image/12x/{ID}"), None),
            (&format!("/other/0x0/{ID}"), None),
        ] {
            assert!(
                matches!(UrlRequest::parse(path, query), Err(UrlRefusal::NotFound)),
                "{path}"
            );
        }
        for query in ["fit=wide", "format=gif", "quality=0", "quality=101"] {
            assert!(matches!(
                UrlRequest::parse(&format!("/image/10x10/{ID}"), Some(query)),
                Err(UrlRefusal::BadRequest(_))
            ));
        }
        assert!(matches!(
            UrlRequest::parse(&format!("/image/thumbnail/{ID}"), Some("fit=cover")),
            Err(UrlRefusal::BadRequest(_))
        ));
        // A signature that is not last, or lacks its expiry or key.
        for query in [
            "sig=x&exp=1&kid=k",
            "exp=1&sig=x",
            "kid=k&sig=x",
            "exp=x&kid=k&sig=y",
        ] {
            assert!(matches!(
                UrlRequest::parse(&format!("/image/0x0/{ID}"), Some(query)),
                Err(UrlRefusal::Forbidden)
            ));
        }
    }

    #[test]
    fn a_signature_covers_everything_before_it() {
        let path = format!("/image/10x10/{ID}.jpg");
        let read = parse(&path, Some("fit=cover&exp=99&kid=k1&sig=abc"));
        let sig = read.signature.unwrap();
        assert_eq!(sig.message, format!("{path}?fit=cover&exp=99&kid=k1"));
        assert_eq!((sig.kid.as_str(), sig.expires_at), ("k1", 99));
        assert_eq!(sig.sig, "abc");
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            BaseUrl::parse("https://cdn.example.com/media/").unwrap().0,
            "https://cdn.example.com/media"
        );
        for bad in [
            "cdn.example.com",
            "ftp://x",
            "http://",
            "http:///x",
            "http://a?b",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
