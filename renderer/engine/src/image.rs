//! Image assets (PNG, JPEG): decoded once per template, embedded once per PDF file.
//!
//! JPEG data is embedded as it is (DCTDecode); its size and colour components come from
//! the frame header, so pixels are never decoded. PNG is decoded once into 8-bit gray or
//! RGB samples (deflated) and, when it has transparency, an 8-bit deflated soft mask.

use sha2::{Digest, Sha256};

/// Index of an image in an [`ImageStore`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ImageId(pub u32);

/// An image that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImageError(pub String);

/// Colour space of the embedded samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ImageColor {
    Gray,
    Rgb,
    Cmyk,
}

/// The bytes the PDF writer embeds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ImageData {
    /// A JPEG file embedded unchanged. `inverted` is set for Adobe CMYK JPEGs, whose
    /// samples are stored inverted.
    Jpeg {
        bytes: Vec<u8>,
        color: ImageColor,
        inverted: bool,
    },
    /// zlib-compressed 8-bit samples and an optional zlib-compressed 8-bit alpha mask.
    Flate {
        samples: Vec<u8>,
        color: ImageColor,
        alpha: Option<Vec<u8>>,
    },
}

/// A decoded image ready to embed.
pub struct ImageAsset {
    /// The name the template refers to the image by.
    pub name: String,
    /// Width in pixels.
    pub width_px: u32,
    /// Height in pixels.
    pub height_px: u32,
    /// Resolution used for natural size (from the file, default 300 dpi).
    pub dpi: f32,
    /// SHA-256 of the file's bytes.
    pub hash: [u8; 32],
    /// What the PDF writer embeds.
    pub(crate) data: ImageData,
}

impl std::fmt::Debug for ImageAsset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageAsset")
            .field("name", &self.name)
            .field("width_px", &self.width_px)
            .field("height_px", &self.height_px)
            .field("dpi", &self.dpi)
            .finish()
    }
}

/// Resolution assumed when the file does not say.
const DEFAULT_DPI: f32 = 300.0;

impl ImageAsset {
    /// Decodes PNG or JPEG bytes.
    pub fn load(name: &str, bytes: &[u8]) -> Result<Self, ImageError> {
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        let (width_px, height_px, dpi, data) = if bytes.starts_with(&[0xFF, 0xD8]) {
            load_jpeg(name, bytes)?
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            load_png(name, bytes)?
        } else {
            return Err(ImageError(format!(
                "image '{name}' is neither PNG nor JPEG; convert it to one of those"
            )));
        };
        if width_px == 0 || height_px == 0 {
            return Err(ImageError(format!("image '{name}' has no pixels")));
        }
        Ok(ImageAsset {
            name: name.to_string(),
            width_px,
            height_px,
            dpi,
            hash,
            data,
        })
    }

    /// Natural size in points at the image's resolution.
    pub fn natural_size(&self) -> (f32, f32) {
        let k = 72.0 / self.dpi;
        (self.width_px as f32 * k, self.height_px as f32 * k)
    }
}

type Loaded = (u32, u32, f32, ImageData);

/// Reads a JPEG's frame header (size, components), its JFIF density and its Adobe
/// marker, without decoding any pixels.
fn load_jpeg(name: &str, bytes: &[u8]) -> Result<Loaded, ImageError> {
    let bad = |what: &str| ImageError(format!("image '{name}' is a damaged JPEG: {what}"));
    let mut at = 2;
    let mut dpi = None;
    let mut adobe = false;
    loop {
        // Skip fill bytes before a marker.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) else {
            return Err(bad("no frame header before the image data"));
        };
        at += 2;
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            continue;
        }
        if marker == 0xD9 || marker == 0xDA {
            return Err(bad("no frame header before the image data"));
        }
        let len = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .filter(|&l| l >= 2)
            .ok_or_else(|| bad("truncated segment"))?;
        let seg = bytes
            .get(at + 2..at + len)
            .ok_or_else(|| bad("truncated segment"))?;
        match marker {
            0xE0 if seg.len() >= 12 && seg.starts_with(b"JFIF\0") => {
                let unit = seg[7];
                let x = f32::from(u16::from_be_bytes([seg[8], seg[9]]));
                if x > 0.0 {
                    dpi = match unit {
                        1 => Some(x),
                        2 => Some(x * 2.54),
                        _ => None,
                    };
                }
            }
            0xEE if seg.starts_with(b"Adobe") => adobe = true,
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if seg.len() < 6 {
                    return Err(bad("truncated frame header"));
                }
                if matches!(marker, 0xC3 | 0xC7 | 0xCB | 0xCF) {
                    return Err(ImageError(format!(
                        "image '{name}' is a lossless JPEG, which PDF cannot show; save it as a baseline or progressive JPEG"
                    )));
                }
                if seg[0] != 8 {
                    return Err(ImageError(format!(
                        "image '{name}' is a {}-bit JPEG; save it with 8 bits per sample",
                        seg[0]
                    )));
                }
                let height = u32::from(u16::from_be_bytes([seg[1], seg[2]]));
                let width = u32::from(u16::from_be_bytes([seg[3], seg[4]]));
                let color = match seg[5] {
                    1 => ImageColor::Gray,
                    3 => ImageColor::Rgb,
                    4 => ImageColor::Cmyk,
                    n => {
                        return Err(ImageError(format!(
                            "image '{name}' is a JPEG with {n} colour components; use gray, RGB or CMYK"
                        )));
                    }
                };
                let data = ImageData::Jpeg {
                    bytes: bytes.to_vec(),
                    color,
                    inverted: adobe && color == ImageColor::Cmyk,
                };
                return Ok((width, height, dpi.unwrap_or(DEFAULT_DPI), data));
            }
            _ => {}
        }
        at += len;
    }
}

/// Returns the resolution from a PNG's `pHYs` chunk (pixels per metre), if present.
fn png_dpi(bytes: &[u8]) -> Option<f32> {
    let mut at = 8;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        if kind == b"pHYs" {
            let d = bytes.get(at + 8..at + 8 + 9)?;
            let ppu = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
            return (d[8] == 1 && ppu > 0).then(|| (ppu as f32 * 0.0254 * 100.0).round() / 100.0);
        }
        if kind == b"IDAT" || kind == b"IEND" {
            return None;
        }
        at = at.checked_add(12 + len)?;
    }
    None
}

/// Largest width or height of a PNG in pixels (1.7 m at 300 dpi).
const MAX_PNG_SIDE: u32 = 20_000;
/// Most memory the PNG decoder may allocate (a small file can claim huge dimensions).
const MAX_PNG_DECODE_BYTES: u64 = 128 << 20;

fn load_png(name: &str, bytes: &[u8]) -> Result<Loaded, ImageError> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_PNG_SIDE);
    limits.max_image_height = Some(MAX_PNG_SIDE);
    limits.max_alloc = Some(MAX_PNG_DECODE_BYTES);
    let mut reader =
        image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Png);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ImageError(format!(
            "image '{name}' is too large to decode (at most {MAX_PNG_SIDE} pixels a side and {} MiB of samples); scale it down",
            MAX_PNG_DECODE_BYTES >> 20
        )),
        e => ImageError(format!("image '{name}' is a damaged PNG: {e}")),
    })?;
    let (w, h) = (img.width(), img.height());
    let has_alpha = img.color().has_alpha();
    let has_color = img.color().has_color();
    let level = 6;
    let (samples, color) = if has_color {
        let rgb = img.to_rgb8();
        (
            miniz_oxide::deflate::compress_to_vec_zlib(rgb.as_raw(), level),
            ImageColor::Rgb,
        )
    } else {
        let gray = img.to_luma8();
        (
            miniz_oxide::deflate::compress_to_vec_zlib(gray.as_raw(), level),
            ImageColor::Gray,
        )
    };
    let alpha = if has_alpha {
        let rgba = img.to_rgba8();
        let a: Vec<u8> = rgba.as_raw().chunks_exact(4).map(|p| p[3]).collect();
        // A fully opaque alpha channel needs no mask.
        (a.iter().any(|&v| v != 255)).then(|| miniz_oxide::deflate::compress_to_vec_zlib(&a, level))
    } else {
        None
    };
    let dpi = png_dpi(bytes).unwrap_or(DEFAULT_DPI);
    Ok((
        w,
        h,
        dpi,
        ImageData::Flate {
            samples,
            color,
            alpha,
        },
    ))
}

/// The images of a template.
#[derive(Default)]
pub struct ImageStore {
    /// The images, indexed by [`ImageId`].
    pub images: Vec<ImageAsset>,
}

impl ImageStore {
    /// Adds an image and returns its id.
    pub fn add(&mut self, asset: ImageAsset) -> ImageId {
        self.images.push(asset);
        ImageId(self.images.len() as u32 - 1)
    }
    /// Returns an image.
    pub fn get(&self, id: ImageId) -> &ImageAsset {
        &self.images[id.0 as usize]
    }
    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn png_bytes(alpha: bool, dpi_ppm: Option<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        let img = image::RgbaImage::from_fn(8, 4, |x, y| {
            image::Rgba([
                (x * 30) as u8,
                (y * 60) as u8,
                128,
                if alpha { 100 } else { 255 },
            ])
        });
        image::DynamicImage::ImageRgba8(img)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        if let Some(ppm) = dpi_ppm {
            // Insert a pHYs chunk after IHDR (8 signature + 25 IHDR bytes).
            let mut chunk = Vec::new();
            let mut body = b"pHYs".to_vec();
            body.extend_from_slice(&ppm.to_be_bytes());
            body.extend_from_slice(&ppm.to_be_bytes());
            body.push(1);
            chunk.extend_from_slice(&9u32.to_be_bytes());
            chunk.extend_from_slice(&body);
            chunk.extend_from_slice(&crc32(&body).to_be_bytes());
            out.splice(33..33, chunk);
        }
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn png_decodes_with_alpha_and_dpi() {
        let a = ImageAsset::load("logo.png", &png_bytes(true, Some(5906))).unwrap();
        assert_eq!((a.width_px, a.height_px), (8, 4));
        assert!((a.dpi - 150.0).abs() < 0.1, "{}", a.dpi);
        match &a.data {
            ImageData::Flate {
                samples,
                color,
                alpha,
            } => {
                assert_eq!(*color, ImageColor::Rgb);
                let raw = miniz_oxide::inflate::decompress_to_vec_zlib(samples).unwrap();
                assert_eq!(raw.len(), 8 * 4 * 3);
                let mask =
                    miniz_oxide::inflate::decompress_to_vec_zlib(alpha.as_ref().unwrap()).unwrap();
                assert!(mask.iter().all(|&v| v == 100));
            }
            other => panic!("{other:?}"),
        }
        let b = ImageAsset::load("opaque.png", &png_bytes(false, None)).unwrap();
        assert_eq!(b.dpi, 300.0);
        assert!(matches!(b.data, ImageData::Flate { alpha: None, .. }));
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn jpeg_is_kept_as_is() {
        let mut out = Vec::new();
        let img = image::RgbImage::from_fn(16, 9, |x, _| image::Rgb([x as u8 * 10, 50, 200]));
        image::DynamicImage::ImageRgb8(img)
            .write_to(
                &mut std::io::Cursor::new(&mut out),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let a = ImageAsset::load("photo.jpg", &out).unwrap();
        assert_eq!((a.width_px, a.height_px), (16, 9));
        match &a.data {
            ImageData::Jpeg { bytes, color, .. } => {
                assert_eq!(bytes, &out);
                assert_eq!(*color, ImageColor::Rgb);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = ImageAsset::load("x.gif", b"GIF89a....").unwrap_err();
        assert!(e.0.contains("neither PNG nor JPEG"), "{e}");
        let e = ImageAsset::load("x.png", b"\x89PNG\r\n\x1a\n\0\0").unwrap_err();
        assert!(e.0.contains("damaged PNG"), "{e}");
        let e = ImageAsset::load("x.jpg", &[0xFF, 0xD8, 0xFF, 0xD9]).unwrap_err();
        assert!(e.0.contains("damaged JPEG"), "{e}");
    }

    /// A PNG header claiming `w`×`h` RGBA pixels, with one tiny data chunk.
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], body: &[u8]| {
            out.extend_from_slice(&(body.len() as u32).to_be_bytes());
            let mut c = kind.to_vec();
            c.extend_from_slice(body);
            out.extend_from_slice(&c);
            out.extend_from_slice(&crc32(&c).to_be_bytes());
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        chunk(b"IHDR", &ihdr);
        chunk(
            b"IDAT",
            &miniz_oxide::deflate::compress_to_vec_zlib(&[0; 64], 6),
        );
        chunk(b"IEND", &[]);
        out
    }

    #[test]
    fn a_small_png_claiming_huge_dimensions_is_refused_before_decoding() {
        for (w, h) in [(30_000, 10), (10, 30_000), (15_000, 15_000)] {
            let e = ImageAsset::load("bomb.png", &png_claiming(w, h)).unwrap_err();
            assert!(e.0.contains("too large to decode"), "{w}x{h}: {e}");
        }
        // A normal size gets as far as the (damaged) data.
        let e = ImageAsset::load("ok.png", &png_claiming(100, 100)).unwrap_err();
        assert!(e.0.contains("damaged PNG"), "{e}");
    }
}
