//! SVG dimensions: the root `<svg>` element's `width` and `height`, in CSS
//! pixels (96 per inch, as browsers count them), or its `viewBox` where a
//! side is missing or relative (`%`, `em`): the size a browser gives an
//! `<img>` of it, and what media libraries report.
//!
//! Only the start of the document is tokenized (`xmlparser`, no tree), up
//! to [`MAX_HEAD_BYTES`]; an SVG is stored whatever this finds.

use std::io::Read;

use xmlparser::{ElementEnd, Token, Tokenizer};

/// Bytes read to find the root element (a long comment or DOCTYPE may
/// precede it).
pub const MAX_HEAD_BYTES: u64 = 64 * 1024;

/// Width and height in whole pixels (at least 1).
pub fn dimensions<R: Read>(r: &mut R) -> Result<(u32, u32), String> {
    let mut head = Vec::new();
    r.take(MAX_HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    // A root cut off by the 64 KiB limit leaves invalid UTF-8 at worst at
    // the end; what comes before is still read.
    let text = match std::str::from_utf8(&head) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
    };
    let (mut width, mut height, mut view_box) = (None, None, None);
    let mut in_root = false;
    for token in Tokenizer::from(text) {
        let Ok(token) = token else { break };
        match token {
            Token::ElementStart { local, .. } => {
                if local.as_str() != "svg" {
                    return Err(format!("the root element is <{local}>, not <svg>"));
                }
                in_root = true;
            }
            Token::Attribute { local, value, .. } if in_root => match local.as_str() {
                "width" => width = Some(value.as_str()),
                "height" => height = Some(value.as_str()),
                "viewBox" => view_box = Some(value.as_str()),
                _ => {}
            },
            Token::ElementEnd {
                end: ElementEnd::Open | ElementEnd::Empty,
                ..
            } if in_root => {
                break;
            }
            _ => {}
        }
    }
    if !in_root {
        return Err("no <svg> element in the first 64 KiB".to_owned());
    }
    let view_box = view_box.and_then(parse_view_box);
    let (w, h) = (width.and_then(length), height.and_then(length));
    let (w, h) = match (w, h, view_box) {
        (Some(w), Some(h), _) => (w, h),
        // One side given: the other keeps the viewBox's aspect ratio.
        (Some(w), None, Some((bw, bh))) => (w, w * bh / bw),
        (None, Some(h), Some((bw, bh))) => (h * bw / bh, h),
        (None, None, Some((bw, bh))) => (bw, bh),
        (Some(side), None, None) | (None, Some(side), None) => {
            return Err(format!("the <svg> has one side ({side} px) and no viewBox"));
        }
        (None, None, None) => {
            return Err("the <svg> has no usable width, height or viewBox".to_owned());
        }
    };
    Ok((pixels(w), pixels(h)))
}

/// `min-x min-y width height`, separated by spaces and/or commas.
fn parse_view_box(v: &str) -> Option<(f64, f64)> {
    let n: Vec<f64> = v
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match n[..] {
        [_, _, w, h] if w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite() => Some((w, h)),
        _ => None,
    }
}

/// An absolute CSS length in pixels; `None` for relative units.
fn length(v: &str) -> Option<f64> {
    let v = v.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().ok()?;
    let per_unit = match unit.trim() {
        "" | "px" => 1.0,
        "in" => 96.0,
        "cm" => 96.0 / 2.54,
        "mm" => 96.0 / 25.4,
        "pt" => 96.0 / 72.0,
        "pc" => 16.0,
        _ => return None,
    };
    let px = number * per_unit;
    (px > 0.0 && px.is_finite()).then_some(px)
}

/// Rounded to whole pixels, at least 1, at most `u32::MAX`.
fn pixels(v: f64) -> u32 {
    v.round().clamp(1.0, f64::from(u32::MAX)) as u32
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::dimensions;

    fn dims(svg: &str) -> Result<(u32, u32), String> {
        dimensions(&mut svg.as_bytes())
    }

    #[test]
    fn sizes_as_browsers_give_them() {
        // Inkscape's A4 page: millimetres, with a viewBox in user units.
        let a4 = r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!-- Created with Inkscape (http://www.inkscape.org/) -->
<svg width="210mm" height="297mm" viewBox="0 0 210 297" version="1.1"
   xmlns="http://www.w3.org/2000/svg" xmlns:svg="http://www.w3.org/2000/svg"><g/></svg>"#;
        assert_eq!(dims(a4), Ok((794, 1123)));
        // Icons often carry only a viewBox (commas allowed).
        assert_eq!(
            dims(
                r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0,0,24,24"><path d=""/></svg>"#
            ),
            Ok((24, 24))
        );
        // One side: the other keeps the viewBox's ratio.
        assert_eq!(
            dims(r#"<svg width="100" viewBox="0 0 24 12"/>"#),
            Ok((100, 50))
        );
        // Relative sizes fall back to the viewBox.
        assert_eq!(
            dims(r#"<svg width="100%" height="100%" viewBox="0 0 640 480"/>"#),
            Ok((640, 480))
        );
        // Pixels, points, a DOCTYPE and a namespace prefix.
        let doc = r#"<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">
<svg:svg xmlns:svg="http://www.w3.org/2000/svg" width="300px" height="72pt"></svg:svg>"#;
        assert_eq!(dims(doc), Ok((300, 96)));
    }

    #[test]
    fn what_has_no_size_is_an_error() {
        assert!(dims(r#"<svg xmlns="http://www.w3.org/2000/svg"/>"#).is_err());
        assert!(dims(r#"<svg width="50%"/>"#).is_err());
        assert!(dims(r#"<svg width="10" viewBox="0 0 -1 5"/>"#).is_err());
        assert!(dims("<html><svg width='1' height='1'/></html>").is_err());
        assert!(dims("not xml at all").is_err());
        assert!(dims("").is_err());
    }
}
