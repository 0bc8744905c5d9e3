//! `GET` and `HEAD` of a media URL: who may read it, which representation
//! (the original or a rendition), and the answer HTTP's rules give.

use std::time::{Duration, SystemTime};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::Response,
};

use super::{
    Cors, Http,
    disposition::{content_disposition, shown_inline},
    preconditions::{self, Decision, Validators, whole_seconds},
};
use crate::{
    blob,
    error::Error,
    library::{Served, UrlAccess, UrlMedia, UrlRefusal, UrlRequest, unix_now},
};

/// How long anyone may cache an answer addressed by content (a year, the
/// longest RFC 9111 lets a cache rely on).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// An answer for a slot's or code's URL, whose media changes when the slot
/// is filled again: anyone may keep it, but must ask again (a cheap 304
/// while the ETag holds) before each use.
const REVALIDATE: &str = "public, no-cache";

/// Answers a GET or HEAD of a media URL.
pub(super) async fn get(
    State(http): State<Http>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut response = match answer(&http, &method, &uri, &headers).await {
        Ok(r) => r,
        Err(refusal) => refused(refusal),
    };
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    cors_headers(&http.cors, &headers, h);
    response
}

/// Answers a CORS preflight: GET and HEAD with the headers of
/// conditional and range requests, from an allowed origin.
pub(super) async fn preflight(State(http): State<Http>, headers: HeaderMap) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let h = response.headers_mut();
    if cors_headers(&http.cors, &headers, h) {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Range, If-None-Match, If-Modified-Since, If-Range"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
    }
    response
}

async fn answer(
    http: &Http,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, UrlRefusal> {
    let request = UrlRequest::parse(uri.path(), uri.query())?;
    tracing::Span::current().record("media_id", tracing::field::display(&request.media));
    let now = unix_now();
    let (served, access) = http.library.resolve_url(&request, now).await?;
    let etag = format!("\"{}\"", served.hash);
    let modified = SystemTime::UNIX_EPOCH
        + Duration::from_micros(u64::try_from(served.created_at).unwrap_or_default());
    let decision = preconditions::decide(
        headers,
        Validators {
            etag: &etag,
            last_modified: modified,
        },
        served.len,
    );
    let body = match decision {
        Decision::Whole | Decision::Partial { .. } if method != Method::HEAD => {
            let (start, len) = match decision {
                Decision::Partial { start, len } => (start, len),
                _ => (0, served.len),
            };
            match &served.bytes {
                // In memory (small): the slice, without a copy.
                Some(bytes) => Body::from(bytes.slice(start as usize..(start + len) as usize)),
                None => {
                    let reader = http.library.open_served(&served).await?;
                    Body::from_stream(blob::stream::chunks(reader, start, len))
                }
            }
        }
        _ => Body::empty(),
    };
    let cache = match access {
        UrlAccess::Public if matches!(request.media, UrlMedia::Named { .. }) => {
            REVALIDATE.to_string()
        }
        UrlAccess::Public => IMMUTABLE.to_string(),
        // Only its bearer, and no longer than the signature lasts (a
        // slot's signed URL likewise revalidates).
        UrlAccess::Signed { expires_at } => match request.media {
            UrlMedia::Named { .. } => "private, no-cache".to_string(),
            UrlMedia::Id(_) => format!("private, max-age={}", expires_at.saturating_sub(now)),
        },
    };
    Ok(respond(&served, &etag, modified, decision, body, &cache))
}

/// The answer for `rep` given `decision`, with `body` (empty for HEAD
/// and for answers without one).
fn respond(
    rep: &Served,
    etag: &str,
    modified: SystemTime,
    decision: Decision,
    body: Body,
    cache: &str,
) -> Response {
    let mut builder = Response::builder()
        .header(header::ETAG, etag)
        .header(
            header::LAST_MODIFIED,
            httpdate::fmt_http_date(whole_seconds(modified)),
        )
        .header(header::CACHE_CONTROL, cache)
        .header(header::ACCEPT_RANGES, "bytes");
    let (status, len) = match decision {
        Decision::NotModified => {
            return finish(builder.status(StatusCode::NOT_MODIFIED), Body::empty());
        }
        Decision::Unsatisfiable => {
            return finish(
                builder
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{}", rep.len)),
                Body::empty(),
            );
        }
        Decision::Whole => (StatusCode::OK, rep.len),
        Decision::Partial { start, len } => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{}", start + len - 1, rep.len),
            );
            (StatusCode::PARTIAL_CONTENT, len)
        }
    };
    let inline = shown_inline(&rep.mime);
    builder = builder
        .status(status)
        .header(header::CONTENT_TYPE, &rep.mime)
        .header(header::CONTENT_LENGTH, len)
        .header(
            header::CONTENT_DISPOSITION,
            content_disposition(inline, &rep.filename),
        );
    if !inline {
        // Even opened as a page, stored content runs no script and reaches
        // nothing of this origin.
        builder = builder.header(header::CONTENT_SECURITY_POLICY, "sandbox");
    }
    finish(builder, body)
}

/// The response `builder` describes, with `body`; a header value no
/// client can send (they are all made here) would make it a 500.
fn finish(builder: http::response::Builder, body: Body) -> Response {
    builder.body(body).unwrap_or_else(|e| {
        tracing::error!(error = %e, "building an HTTP answer");
        status_only(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
    })
}

/// The answer to a refused request: a status and a line of text that
/// says no more than the status for 403 and 404, so that guessing URLs
/// learns nothing.
fn refused(refusal: UrlRefusal) -> Response {
    match refusal {
        UrlRefusal::NotFound => status_only(StatusCode::NOT_FOUND, "not found\n"),
        UrlRefusal::Forbidden => status_only(StatusCode::FORBIDDEN, "forbidden\n"),
        UrlRefusal::BadRequest(m) => status_only(StatusCode::BAD_REQUEST, format!("{m}\n")),
        UrlRefusal::Failed(e) => failed(e),
    }
}

/// The answer to an error of the library, by its gRPC code: a request
/// outside the server's limits says why; a server-side failure says only
/// that, its details going to the log.
fn failed(e: Error) -> Response {
    use tonic::Code;
    let status = tonic::Status::from(e);
    let (code, tell) = match status.code() {
        Code::NotFound => (StatusCode::NOT_FOUND, false),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            (StatusCode::BAD_REQUEST, true)
        }
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, true),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, false),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, false),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, false),
    };
    if code.is_server_error() {
        tracing::error!(code = ?status.code(), error = status.message(), "HTTP request failed");
    }
    let text = if tell {
        format!("{}\n", status.message())
    } else {
        format!(
            "{}\n",
            code.canonical_reason().unwrap_or("error").to_lowercase()
        )
    };
    let mut response = status_only(code, text);
    if code == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn status_only(code: StatusCode, text: impl Into<String>) -> Response {
    let mut response = Response::new(Body::from(text.into()));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Adds the CORS headers an allowed `Origin` gets; returns whether it was
/// allowed.
fn cors_headers(cors: &Cors, request: &HeaderMap, h: &mut HeaderMap) -> bool {
    let allowed = match cors {
        Cors::Off => return false,
        Cors::Any => HeaderValue::from_static("*"),
        Cors::Origins(list) => {
            h.append(header::VARY, HeaderValue::from_static("Origin"));
            match request.get(header::ORIGIN) {
                Some(origin) if list.iter().any(|o| o.as_bytes() == origin.as_bytes()) => {
                    origin.clone()
                }
                _ => return false,
            }
        }
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "Content-Length, Content-Range, Accept-Ranges, ETag, Content-Disposition",
        ),
    );
    true
}
