//! HEIF (HEIC) and AVIF still images: the primary image's size and how it
//! is shown, from the ISO base media file format's item properties, in
//! pure Rust (no decoder needed).
//!
//! A HEIF file's `meta` box names the primary item (`pitm`) and gives
//! every item its properties (`iprp`: the `ipco` list, and `ipma`, which
//! item has which, in order). The primary item, a coded image or the
//! `grid` of tiles phones write, has an `ispe` (its size), maybe a `clap`
//! (a crop), and the transformations a reader must apply to show it:
//! `irot` (quarter turns anticlockwise) and `imir` (a mirror). Those are
//! mandatory, unlike EXIF's `Orientation`, which HEIF calls informative:
//! phones write both, and applying both would turn the picture twice, so
//! the orientation here comes from `irot`/`imir` alone, expressed as the
//! EXIF value (1-8) that describes the same transformation, which is what
//! the rest of the service understands. EXIF itself (camera, date, GPS) is
//! read by `kamadak-exif`, which finds the `Exif` item on its own.
//!
//! # Bounds
//!
//! At most [`MAX_TOP_BOXES`] top-level boxes are looked at for `meta`, and
//! a `meta` larger than [`MAX_META_BYTES`] is refused; everything is read
//! through checked cursors.

use std::io::{Read, Seek, SeekFrom};

use super::cursor::Cur;

/// Top-level boxes examined before giving up on finding `meta` (it follows
/// `ftyp` in every writer's files).
pub const MAX_TOP_BOXES: usize = 16;
/// Largest `meta` box read: item tables of a grid image with a few hundred
/// tiles are a few KiB; a thumbnail or depth map adds little.
pub const MAX_META_BYTES: u64 = 1024 * 1024;

/// What the primary image is and how it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeifImage {
    /// Width of the image before its rotation (after its crop).
    pub width: u32,
    /// Height of the image before its rotation.
    pub height: u32,
    /// The EXIF orientation (1-8) equivalent to its `irot` and `imir`.
    pub orientation: u8,
}

/// Reads the primary image's properties from the HEIF or AVIF file `r`.
pub fn primary_image<R: Read + Seek>(r: &mut R) -> Result<HeifImage, String> {
    let meta = read_meta(r)?;
    parse_meta(&meta).ok_or_else(|| {
        "the HEIF meta box has no readable primary image (pitm, ipco, ipma, ispe)".to_owned()
    })
}

/// The body of the top-level `meta` box.
fn read_meta<R: Read + Seek>(r: &mut R) -> Result<Vec<u8>, String> {
    let len = r.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
    let mut pos = 0u64;
    for n in 0..MAX_TOP_BOXES {
        if pos + 8 > len {
            break;
        }
        r.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
        let mut head = [0u8; 16];
        r.read_exact(&mut head[..8]).map_err(|e| e.to_string())?;
        let kind: [u8; 4] = [head[4], head[5], head[6], head[7]];
        let mut size = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        let mut body = pos + 8;
        if size == 1 {
            r.read_exact(&mut head[8..16]).map_err(|e| e.to_string())?;
            size = u64::from_be_bytes(head[8..16].try_into().map_err(|_| "box header")?);
            body += 8;
        } else if size == 0 {
            size = len - pos;
        }
        let end = pos
            .checked_add(size)
            .filter(|&e| e <= len && e >= body)
            .ok_or("a HEIF box runs past the end of the file")?;
        if n == 0 && &kind != b"ftyp" {
            return Err("not an ISO base media file (no ftyp box first)".to_owned());
        }
        if &kind == b"meta" {
            let size = end - body;
            if size > MAX_META_BYTES {
                return Err(format!(
                    "the HEIF meta box is {size} bytes; at most {MAX_META_BYTES} are read"
                ));
            }
            let mut meta = vec![0u8; usize::try_from(size).map_err(|_| "meta box size")?];
            r.seek(SeekFrom::Start(body)).map_err(|e| e.to_string())?;
            r.read_exact(&mut meta).map_err(|e| e.to_string())?;
            return Ok(meta);
        }
        pos = end;
    }
    Err("the HEIF file has no meta box near its start".to_owned())
}

/// The child boxes of `body`, as (type, body) pairs; a malformed box ends
/// the list.
fn boxes(body: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut c = Cur::new(body);
    while out.len() < 4096 {
        let Some(size) = c.u32() else { break };
        let Some(kind) = c.fourcc() else { break };
        let body_len = match size {
            0 => c.rest().len(),
            1 => {
                let Some(large) = c.u64().and_then(|s| usize::try_from(s).ok()) else {
                    break;
                };
                let Some(n) = large.checked_sub(16) else {
                    break;
                };
                n
            }
            n => {
                let Some(n) = (n as usize).checked_sub(8) else {
                    break;
                };
                n
            }
        };
        let Some(b) = c.take(body_len) else { break };
        out.push((kind, b));
    }
    out
}

/// Everything after a full box's version and flags.
fn full(body: &[u8]) -> Option<(u8, u32, &[u8])> {
    let (&version, rest) = body.split_first()?;
    let flags = u32::from_be_bytes([0, *rest.first()?, *rest.get(1)?, *rest.get(2)?]);
    Some((version, flags, rest.get(3..)?))
}

fn parse_meta(meta: &[u8]) -> Option<HeifImage> {
    let (_, _, children) = full(meta)?;
    let children = boxes(children);
    let find = |kind: &[u8; 4]| children.iter().find(|(k, _)| k == kind).map(|(_, b)| *b);
    let primary = {
        let (version, _, b) = full(find(b"pitm")?)?;
        let mut c = Cur::new(b);
        if version == 0 {
            u32::from(c.u16()?)
        } else {
            c.u32()?
        }
    };
    let iprp = boxes(find(b"iprp")?);
    let ipco = iprp
        .iter()
        .find(|(k, _)| k == b"ipco")
        .map(|(_, b)| boxes(b))?;
    let (_, ipma) = iprp.iter().find(|(k, _)| k == b"ipma")?;
    let props = properties_of(ipma, primary)?;

    let mut size = None;
    let mut crop = None;
    let mut shown = Dihedral::IDENTITY;
    for index in props {
        // Indices count from 1; 0 means "no property".
        let Some((kind, body)) = index.checked_sub(1).and_then(|i| ipco.get(usize::from(i))) else {
            continue;
        };
        match kind {
            b"ispe" => {
                let (_, _, b) = full(body)?;
                let mut c = Cur::new(b);
                size = Some((c.u32()?, c.u32()?));
            }
            b"clap" => crop = clean_aperture(body),
            // Anticlockwise quarter turns, applied after what came before.
            b"irot" => {
                let turns = body.first()? & 3;
                for _ in 0..turns {
                    shown = Dihedral::QUARTER_ANTICLOCKWISE.after(shown);
                }
            }
            // Axis 1 swaps left and right, axis 0 top and bottom: how
            // libheif decodes it, and how libheif, libavif and Pillow write
            // EXIF orientations 2 and 4 (the fixtures avif-o*.avif, checked
            // against libheif's decoding). Early readings of the standard
            // had the axes the other way round.
            b"imir" => {
                let mirror = if body.first()? & 1 == 1 {
                    Dihedral::MIRROR_LEFT_RIGHT
                } else {
                    Dihedral::MIRROR_TOP_BOTTOM
                };
                shown = mirror.after(shown);
            }
            _ => {}
        }
    }
    let (mut width, mut height) = size.filter(|&(w, h)| w > 0 && h > 0)?;
    if let Some((w, h)) = crop {
        width = w.min(width);
        height = h.min(height);
    }
    Some(HeifImage {
        width,
        height,
        orientation: shown.exif_orientation(),
    })
}

/// The property indices `ipma` associates with `item`, in order.
fn properties_of(ipma: &[u8], item: u32) -> Option<Vec<u16>> {
    let (version, flags, b) = full(ipma)?;
    let mut c = Cur::new(b);
    let entries = c.u32()?;
    for _ in 0..entries.min(1 << 16) {
        let id = if version < 1 {
            u32::from(c.u16()?)
        } else {
            c.u32()?
        };
        let count = c.u8()?;
        let mut props = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            // The top bit says "essential"; the rest is the index.
            let index = if flags & 1 == 1 {
                c.u16()? & 0x7FFF
            } else {
                u16::from(c.u8()? & 0x7F)
            };
            props.push(index);
        }
        if id == item {
            return Some(props);
        }
    }
    None
}

/// The size a `clap` crops to (its width and height fractions).
fn clean_aperture(body: &[u8]) -> Option<(u32, u32)> {
    let mut c = Cur::new(body);
    let (wn, wd, hn, hd) = (c.u32()?, c.u32()?, c.u32()?, c.u32()?);
    let w = wn.checked_div(wd)?;
    let h = hn.checked_div(hd)?;
    (w > 0 && h > 0).then_some((w, h))
}

/// One of the eight ways to turn and mirror a picture: the 2x2 matrix it
/// applies to (x, y), with y growing downwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dihedral([[i8; 2]; 2]);

impl Dihedral {
    const IDENTITY: Self = Self([[1, 0], [0, 1]]);
    /// A quarter turn anticlockwise: right goes up.
    const QUARTER_ANTICLOCKWISE: Self = Self([[0, 1], [-1, 0]]);
    const MIRROR_LEFT_RIGHT: Self = Self([[-1, 0], [0, 1]]);
    const MIRROR_TOP_BOTTOM: Self = Self([[1, 0], [0, -1]]);

    /// `self` applied after `first`.
    fn after(self, first: Self) -> Self {
        let (a, b) = (self.0, first.0);
        let mut m = [[0i8; 2]; 2];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = a[i][0] * b[0][j] + a[i][1] * b[1][j];
            }
        }
        Self(m)
    }

    /// The EXIF orientation that describes the same transformation.
    fn exif_orientation(self) -> u8 {
        match self.0 {
            [[1, 0], [0, 1]] => 1,
            [[-1, 0], [0, 1]] => 2,
            [[-1, 0], [0, -1]] => 3,
            [[1, 0], [0, -1]] => 4,
            [[0, 1], [1, 0]] => 5,
            [[0, -1], [1, 0]] => 6,
            [[0, -1], [-1, 0]] => 7,
            _ => 8,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn turns_and_mirrors_map_to_exif_orientations() {
        let turn = |n| {
            (0..n).fold(Dihedral::IDENTITY, |d, _| {
                Dihedral::QUARTER_ANTICLOCKWISE.after(d)
            })
        };
        // irot counts anticlockwise: one turn is EXIF's "rotate 270 CW".
        assert_eq!(turn(0).exif_orientation(), 1);
        assert_eq!(turn(1).exif_orientation(), 8);
        assert_eq!(turn(2).exif_orientation(), 3);
        assert_eq!(turn(3).exif_orientation(), 6);
        assert_eq!(Dihedral::MIRROR_LEFT_RIGHT.exif_orientation(), 2);
        assert_eq!(Dihedral::MIRROR_TOP_BOTTOM.exif_orientation(), 4);
        // Mirrored left to right, then turned: EXIF's 5 and 7.
        assert_eq!(
            turn(1)
                .after(Dihedral::MIRROR_LEFT_RIGHT)
                .exif_orientation(),
            5
        );
        assert_eq!(
            turn(3)
                .after(Dihedral::MIRROR_LEFT_RIGHT)
                .exif_orientation(),
            7
        );
    }

    fn read(name: &str) -> HeifImage {
        let bytes = std::fs::read(crate::analyze::fixture(name)).unwrap();
        primary_image(&mut std::io::Cursor::new(bytes)).unwrap()
    }

    #[test]
    fn files_from_libheif_libavif_and_pillow() {
        // Pillow (libavif) writes each EXIF orientation as irot and imir;
        // libheif shows each file as that orientation says.
        for n in 1..=8 {
            let image = read(&format!("avif-o{n}.avif"));
            assert_eq!(
                image,
                HeifImage {
                    width: 64,
                    height: 32,
                    orientation: n,
                },
                "avif-o{n}.avif"
            );
        }
        // pillow-heif: irot 3 over a 64x64 coded picture cropped to 64x32.
        assert_eq!(
            read("heic-irot.heic"),
            HeifImage {
                width: 64,
                height: 32,
                orientation: 6,
            }
        );
        // heif-enc: a grid item, as phones write their photos.
        assert_eq!(
            read("heic-grid.heic"),
            HeifImage {
                width: 64,
                height: 32,
                orientation: 1,
            }
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\0\0\0\x08ftyp",
            b"\0\0\0\x10ftypheic\0\0\0\0\0\0\0\x08meta",
            b"\0\0\0\x0cftypheic\xff\xff\xff\xffmeta",
            b"\0\0\0\x08mdat",
        ] {
            assert!(primary_image(&mut std::io::Cursor::new(bytes)).is_err());
        }
    }
}
