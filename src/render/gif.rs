//! Counting a GIF's frames without decoding them: a file of thousands of
//! frames is refused before any pixel is touched.

use super::RenderError;

/// Walks the GIF's blocks and fails when more than `max` images follow,
/// or when the structure is broken.
pub(super) fn check_frames(data: &[u8], max: u32) -> Result<(), RenderError> {
    let corrupt = || RenderError::Corrupt("the GIF's block structure is broken".into());
    if data.len() < 13 || !data.starts_with(b"GIF8") {
        return Err(corrupt());
    }
    let mut at = 13;
    // Global colour table: 3 * 2^(n+1) bytes when flagged.
    let flags = data[10];
    if flags & 0x80 != 0 {
        at += 3 << ((flags & 7) + 1);
    }
    let mut frames = 0u32;
    loop {
        match data.get(at) {
            // Trailer, or a file cut short: what was counted stands.
            Some(0x3B) | None => return Ok(()),
            // Extension: label, then sub-blocks.
            Some(0x21) => at = skip_sub_blocks(data, at + 2).ok_or_else(corrupt)?,
            // Image: descriptor, local colour table, LZW size, sub-blocks.
            Some(0x2C) => {
                frames += 1;
                if frames > max {
                    return Err(RenderError::TooLarge(format!(
                        "the GIF has more than {max} frames, more than this server decodes"
                    )));
                }
                let flags = *data.get(at + 9).ok_or_else(corrupt)?;
                at += 10;
                if flags & 0x80 != 0 {
                    at += 3 << ((flags & 7) + 1);
                }
                at = skip_sub_blocks(data, at + 1).ok_or_else(corrupt)?;
            }
            Some(_) => return Err(corrupt()),
        }
    }
}

/// The offset after the sub-blocks starting at `at` (each a length byte
/// then that many bytes, ended by a zero length).
fn skip_sub_blocks(data: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = usize::from(*data.get(at)?);
        at += 1;
        if len == 0 {
            return Some(at);
        }
        at += len;
    }
}
