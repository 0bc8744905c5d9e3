//! Still images: dimensions from the header (nothing is decoded), EXIF
//! with `kamadak-exif`, and the pixel density.
//!
//! EXIF dates carry no zone unless `OffsetTimeOriginal` is set; without
//! one the date is read as UTC, which is what most libraries show.

use std::io::{BufRead, Read, Seek, SeekFrom};

use exif::{Exif, In, Tag, Value};

use crate::domain::{Analysis, civil_to_micros};

/// EXIF values longer than this are left out of the readable map (maker
/// notes, thumbnails): they are binary and can be large.
const MAX_EXIF_VALUE_CHARS: usize = 256;

/// Fills `a` with what the image in `r` (of type `mime`) tells. Returns
/// the reason when the image is unreadable; EXIF that is absent is not an
/// error. EXIF read in part (a malformed entry, an IFD without its
/// next-IFD offset, as Python's piexif writes them) keeps every field that
/// was read, and what was skipped goes to `a.facts.warnings`, as exiftool
/// and Pillow warn and go on. EXIF that cannot be read at all is an error
/// (the dimensions are kept).
pub fn analyze<R: BufRead + Seek>(r: &mut R, mime: &str, a: &mut Analysis) -> Result<(), String> {
    // The containers `kamadak-exif` can look into.
    let has_exif = matches!(
        mime,
        "image/jpeg" | "image/tiff" | "image/png" | "image/webp" | "image/heif" | "image/avif"
    );
    if mime == "image/svg+xml" {
        let (w, h) = super::svg::dimensions(r)?;
        a.width = i32::try_from(w).ok();
        a.height = i32::try_from(h).ok();
        return Ok(());
    }
    if image::ImageFormat::from_mime_type(mime).is_none() && !has_exif {
        // Nothing here reads it: nothing to report.
        return Ok(());
    }
    // HEIF and AVIF: the primary image's size and its mandatory turns and
    // mirrors, from the container (no decoder here).
    let heif = matches!(mime, "image/heif" | "image/avif").then(|| super::heif::primary_image(r));
    let dims = match &heif {
        Some(Ok(h)) => Ok((h.width, h.height)),
        Some(Err(e)) => Err(e.clone()),
        None => dimensions(r, mime),
    };
    if let Ok((w, h)) = dims {
        a.width = i32::try_from(w).ok();
        a.height = i32::try_from(h).ok();
    }
    r.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    density(r, mime, a);
    r.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let read = has_exif.then(|| {
        exif::Reader::new()
            .continue_on_error(true)
            .read_from_container(r)
    });
    let exif = match read {
        None => None,
        Some(Ok(exif)) => Some(exif),
        Some(Err(exif::Error::NotFound(_))) => None,
        Some(Err(e)) => match e.distill_partial_result(|skipped| {
            a.facts.warnings.extend(
                skipped
                    .iter()
                    .map(|e| format!("EXIF: {e}; the rest was read")),
            );
        }) {
            Ok(exif) => Some(exif),
            Err(e) => {
                return match dims {
                    Ok(_) => Err(format!("the EXIF block is unreadable: {e}")),
                    Err(d) => Err(d),
                };
            }
        },
    };
    if let Some(exif) = &exif {
        read_exif(exif, a);
        if a.width.is_none() {
            // A container whose size could not be read; EXIF may say.
            a.width = uint(exif, Tag::PixelXDimension).and_then(|v| i32::try_from(v).ok());
            a.height = uint(exif, Tag::PixelYDimension).and_then(|v| i32::try_from(v).ok());
        }
    }
    if let Some(Ok(h)) = heif {
        // HEIF's irot/imir, not EXIF's informative Orientation (phones
        // write both; applying both would turn the picture twice).
        a.orientation = Some(i32::from(h.orientation));
    }
    match dims {
        Err(e) if a.width.is_none() => Err(e),
        _ => Ok(()),
    }
}

/// Width and height from the header alone.
fn dimensions<R: BufRead + Seek>(r: &mut R, mime: &str) -> Result<(u32, u32), String> {
    let format = image::ImageFormat::from_mime_type(mime)
        .ok_or_else(|| format!("{mime} images have no decoder here"))?;
    image::ImageReader::with_format(r, format)
        .into_dimensions()
        .map_err(|e| format!("the {mime} header is unreadable: {e}"))
}

fn ascii(exif: &Exif, tag: Tag) -> Option<String> {
    let f = exif.get_field(tag, In::PRIMARY)?;
    match &f.value {
        Value::Ascii(parts) => {
            let s = String::from_utf8_lossy(parts.first()?);
            let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
            (!s.is_empty()).then(|| s.to_string())
        }
        _ => None,
    }
}

fn uint(exif: &Exif, tag: Tag) -> Option<u32> {
    exif.get_field(tag, In::PRIMARY)?.value.get_uint(0)
}

fn rational(exif: &Exif, tag: Tag) -> Option<f64> {
    rationals(exif, tag)?.first().copied()
}

fn rationals(exif: &Exif, tag: Tag) -> Option<Vec<f64>> {
    let v: Vec<f64> = match &exif.get_field(tag, In::PRIMARY)?.value {
        Value::Rational(v) => v.iter().map(|r| r.to_f64()).collect(),
        Value::SRational(v) => v.iter().map(|r| r.to_f64()).collect(),
        _ => return None,
    };
    (!v.is_empty() && v.iter().all(|x| x.is_finite())).then_some(v)
}

fn read_exif(exif: &Exif, a: &mut Analysis) {
    let f = &mut a.facts;
    f.camera_make = ascii(exif, Tag::Make);
    f.camera_model = ascii(exif, Tag::Model);
    f.lens_model = ascii(exif, Tag::LensModel);
    f.flash_fired = uint(exif, Tag::Flash).map(|v| v & 1 == 1);
    f.exposure_time = rational(exif, Tag::ExposureTime);
    f.f_number = rational(exif, Tag::FNumber);
    f.iso = uint(exif, Tag::PhotographicSensitivity);
    f.focal_length_mm = rational(exif, Tag::FocalLength);
    a.orientation = uint(exif, Tag::Orientation)
        .filter(|o| (1..=8).contains(o))
        .and_then(|o| i32::try_from(o).ok());
    if let Some((x, y)) = rational(exif, Tag::XResolution).zip(rational(exif, Tag::YResolution)) {
        // ResolutionUnit: 2 = inch (the default), 3 = centimetre.
        let per_inch = if uint(exif, Tag::ResolutionUnit) == Some(3) {
            2.54
        } else {
            1.0
        };
        if x > 0.0 && y > 0.0 {
            a.dpi_x = Some(x * per_inch);
            a.dpi_y = Some(y * per_inch);
        }
    }
    taken(exif, a);
    gps(exif, a);
    a.exif = Some(readable(exif));
}

/// The date taken: `DateTimeOriginal`, else `DateTimeDigitized`, with the
/// matching offset when recorded.
fn taken(exif: &Exif, a: &mut Analysis) {
    for (date_tag, offset_tag) in [
        (Tag::DateTimeOriginal, Tag::OffsetTimeOriginal),
        (Tag::DateTimeDigitized, Tag::OffsetTimeDigitized),
    ] {
        let Some(field) = exif.get_field(date_tag, In::PRIMARY) else {
            continue;
        };
        let Value::Ascii(parts) = &field.value else {
            continue;
        };
        let Some(Ok(mut dt)) = parts.first().map(|p| exif::DateTime::from_ascii(p)) else {
            continue;
        };
        if let Some(off) = exif.get_field(offset_tag, In::PRIMARY)
            && let Value::Ascii(o) = &off.value
            && let Some(o) = o.first()
            && dt.parse_offset(o).is_ok()
        {
            a.facts.taken_offset = Some(String::from_utf8_lossy(o).trim().to_string());
        }
        if !(1..=12).contains(&dt.month)
            || !(1..=31).contains(&dt.day)
            || dt.hour > 23
            || dt.minute > 59
            || dt.second > 60
        {
            continue;
        }
        let local = i64::from(dt.hour) * 3600 + i64::from(dt.minute) * 60 + i64::from(dt.second);
        let micros = civil_to_micros(
            i64::from(dt.year),
            i64::from(dt.month),
            i64::from(dt.day),
            local - i64::from(dt.offset.unwrap_or(0)) * 60,
        ) + i64::from(dt.nanosecond.unwrap_or(0) / 1000);
        a.taken_at = Some(micros);
        // The year and month as the photographer's calendar showed them.
        a.taken_year = Some(i32::from(dt.year));
        a.taken_month = Some(i32::from(dt.month));
        return;
    }
}

/// GPS position in signed decimal degrees and metres.
fn gps(exif: &Exif, a: &mut Analysis) {
    let degrees = |tag: Tag, ref_tag: Tag, negative: u8| -> Option<f64> {
        let v = rationals(exif, tag)?;
        let d = v.first()? + v.get(1).unwrap_or(&0.0) / 60.0 + v.get(2).unwrap_or(&0.0) / 3600.0;
        let sign = match ascii(exif, ref_tag)?.as_bytes().first()? {
            c if c.eq_ignore_ascii_case(&negative) => -1.0,
            _ => 1.0,
        };
        Some(sign * d)
    };
    a.latitude = degrees(Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S').filter(|d| d.abs() <= 90.0);
    a.longitude =
        degrees(Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W').filter(|d| d.abs() <= 180.0);
    a.altitude = rational(exif, Tag::GPSAltitude).map(|alt| {
        // GPSAltitudeRef 1 means below sea level.
        if uint(exif, Tag::GPSAltitudeRef) == Some(1) {
            -alt
        } else {
            alt
        }
    });
}

/// Every primary-image tag with a short readable value, by tag name.
fn readable(exif: &Exif) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for f in exif.fields().filter(|f| f.ifd_num == In::PRIMARY) {
        if matches!(f.tag, Tag::MakerNote | Tag::UserComment) {
            continue;
        }
        let value = f.display_value().with_unit(exif).to_string();
        let value = value.trim_matches('"').trim();
        if value.is_empty() || value.chars().count() > MAX_EXIF_VALUE_CHARS {
            continue;
        }
        map.insert(f.tag.to_string(), serde_json::Value::from(value));
    }
    serde_json::Value::Object(map)
}

/// Pixel density from the JFIF header or the PNG `pHYs` chunk, for images
/// whose EXIF (read later, and preferred) does not say.
fn density<R: Read>(r: &mut R, mime: &str, a: &mut Analysis) {
    let mut head = Vec::with_capacity(64);
    // A short or unreadable file has no density to tell.
    let _ = r.take(64).read_to_end(&mut head);
    let head = head.as_slice();
    let dpi = match mime {
        // SOI, APP0 length, "JFIF\0", version, units, Xdensity, Ydensity.
        "image/jpeg" if head.len() >= 18 && &head[6..11] == b"JFIF\0" => {
            let (x, y) = (
                f64::from(u16::from_be_bytes([head[14], head[15]])),
                f64::from(u16::from_be_bytes([head[16], head[17]])),
            );
            match head[13] {
                1 => Some((x, y)),
                2 => Some((x * 2.54, y * 2.54)),
                _ => None,
            }
        }
        // pHYs right after IHDR (where encoders put it): pixels per metre.
        "image/png" if head.len() >= 54 && &head[37..41] == b"pHYs" && head[49] == 1 => {
            let x = f64::from(u32::from_be_bytes([head[41], head[42], head[43], head[44]]));
            let y = f64::from(u32::from_be_bytes([head[45], head[46], head[47], head[48]]));
            Some((x * 0.0254, y * 0.0254))
        }
        _ => None,
    };
    if let Some((x, y)) = dpi.filter(|(x, y)| *x > 0.0 && *y > 0.0) {
        a.dpi_x = Some(x);
        a.dpi_y = Some(y);
    }
}
