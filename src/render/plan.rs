//! What a rendition request asks for, and the output size it gives.

/// How the picture fits the requested box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// Inside the box, keeping the aspect ratio; may enlarge.
    Contain,
    /// Exactly the box, keeping the aspect ratio by cropping the centre.
    Cover,
    /// Exactly the box, stretched.
    Fill,
    /// As `Contain`, but never larger than the source.
    ScaleDown,
}

/// Encoding of a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// Baseline JPEG at `quality`.
    Jpeg,
    /// Lossless PNG, keeping transparency.
    Png,
    /// Lossless WebP, keeping transparency (the `image` crate encodes
    /// WebP losslessly only).
    Webp,
}

impl OutputFormat {
    /// The MIME type of renditions in this format.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }
}

/// A rendition request, validated: `width` and `height` in pixels (0
/// keeps the aspect ratio; both 0 is the source's size), quality 1-100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RenditionSpec {
    /// Box width; 0 follows from `height`.
    pub width: u32,
    /// Box height; 0 follows from `width`.
    pub height: u32,
    /// How the picture fits the box.
    pub fit: Fit,
    /// Output encoding.
    pub format: OutputFormat,
    /// JPEG quality, 1-100 (recorded as 0 for lossless formats).
    pub quality: u8,
}

impl RenditionSpec {
    /// The request with what cannot change the output normalised away
    /// (quality of lossless formats; the fit when one side is free, where
    /// every fit but `scale-down` gives the same picture), so equal
    /// outputs share one cache entry.
    pub fn normalized(mut self) -> Self {
        if self.format != OutputFormat::Jpeg {
            self.quality = 0;
        }
        if (self.width == 0 || self.height == 0) && self.fit != Fit::ScaleDown {
            self.fit = Fit::Contain;
        }
        self
    }

    /// The cache key of the (normalised) request: stable text, part of a
    /// stored row's identity, so never change its shape.
    pub fn key(&self) -> String {
        let fit = match self.fit {
            Fit::Contain => "contain",
            Fit::Cover => "cover",
            Fit::Fill => "fill",
            Fit::ScaleDown => "scale-down",
        };
        format!(
            "{}x{}-{fit}-{}-q{}",
            self.width,
            self.height,
            self.format.name(),
            self.quality
        )
    }

    /// The output size for a source shown as `sw` x `sh`.
    pub fn output_size(&self, sw: u32, sh: u32) -> (u32, u32) {
        let (w, h) = (self.width, self.height);
        let (sw_f, sh_f) = (f64::from(sw.max(1)), f64::from(sh.max(1)));
        let scaled = |s: f64| -> (u32, u32) { (round(sw_f * s), round(sh_f * s)) };
        let out = match (w, h) {
            (0, 0) => (sw, sh),
            (w, 0) => scaled(f64::from(w) / sw_f),
            (0, h) => scaled(f64::from(h) / sh_f),
            (w, h) => match self.fit {
                Fit::Cover | Fit::Fill => (w, h),
                Fit::Contain | Fit::ScaleDown => {
                    let s = (f64::from(w) / sw_f).min(f64::from(h) / sh_f);
                    let (a, b) = scaled(s);
                    (a.min(w), b.min(h))
                }
            },
        };
        if self.fit == Fit::ScaleDown && (out.0 > sw || out.1 > sh) {
            (sw, sh)
        } else {
            out
        }
    }
}

fn round(v: f64) -> u32 {
    (v.round() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(width: u32, height: u32, fit: Fit) -> RenditionSpec {
        RenditionSpec {
            width,
            height,
            fit,
            format: OutputFormat::Jpeg,
            quality: 80,
        }
    }

    #[test]
    fn each_fit_gives_its_size() {
        // A 4000x3000 source into a 256x256 box.
        assert_eq!(
            spec(256, 256, Fit::Contain).output_size(4000, 3000),
            (256, 192)
        );
        assert_eq!(
            spec(256, 256, Fit::ScaleDown).output_size(4000, 3000),
            (256, 192)
        );
        assert_eq!(
            spec(256, 256, Fit::Cover).output_size(4000, 3000),
            (256, 256)
        );
        assert_eq!(
            spec(256, 256, Fit::Fill).output_size(4000, 3000),
            (256, 256)
        );
        // Enlarging: only scale-down refuses.
        assert_eq!(
            spec(800, 800, Fit::Contain).output_size(400, 300),
            (800, 600)
        );
        assert_eq!(
            spec(800, 800, Fit::ScaleDown).output_size(400, 300),
            (400, 300)
        );
        // One side free keeps the ratio; both free is the source.
        assert_eq!(spec(256, 0, Fit::Cover).output_size(4000, 3000), (256, 192));
        assert_eq!(spec(0, 300, Fit::Fill).output_size(4000, 3000), (400, 300));
        assert_eq!(
            spec(0, 0, Fit::Contain).output_size(4000, 3000),
            (4000, 3000)
        );
        // Never a zero side.
        assert_eq!(spec(10, 0, Fit::Contain).output_size(4000, 3), (10, 1));
    }

    #[test]
    fn equal_outputs_share_a_key() {
        let a = spec(256, 0, Fit::Cover).normalized();
        let b = spec(256, 0, Fit::Fill).normalized();
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key(), "256x0-contain-jpeg-q80");
        let png = RenditionSpec {
            format: OutputFormat::Png,
            ..spec(10, 10, Fit::Cover)
        };
        assert_eq!(png.normalized().key(), "10x10-cover-png-q0");
    }
}
