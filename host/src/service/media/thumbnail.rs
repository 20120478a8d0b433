//! Thumbnails of PNG and JPEG uploads, made with bounded memory: the image's size is read from
//! its header and refused past `max_image_pixels` before anything is decoded, the decoder is
//! held to that budget, a crop takes its region from the source before scaling (so a long
//! strip cropped to a square is never scaled up whole), and shrinking uses the box filter,
//! whose only buffer is the result (the triangle filter's intermediate is the source's width
//! times the target's height in 16-byte pixels: 200 MB for an 8000 px wide photo).

use std::io::{BufRead, Cursor, Seek, SeekFrom};

use image::imageops::FilterType;
use image::{DynamicImage, ImageError, ImageFormat, ImageReader, Limits};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThumbnailMethod {
    Scale,
    Crop,
}

/// Why no thumbnail was made.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The image has more pixels than the server decodes (`413 M_TOO_LARGE`).
    TooLarge(String),
    /// The file is not a readable image of its type.
    Unreadable(String),
}

/// The bytes a decoded pixel may take, within the pixel budget: RGBA with 8 bits a channel.
const BYTES_PER_PIXEL: u64 = 4;

/// A thumbnail of the image in `source` (of `format`) for a `target` box, encoded in the same
/// format. `max_pixels` bounds the source's size, and the decoder's memory at four bytes a
/// pixel.
pub(super) fn make(
    mut source: impl BufRead + Seek,
    format: ImageFormat,
    target: (u32, u32),
    method: ThumbnailMethod,
    max_pixels: u64,
) -> Result<Vec<u8>, Refusal> {
    let unreadable = |e: ImageError| Refusal::Unreadable(e.to_string());
    let (w, h) = ImageReader::with_format(&mut source, format)
        .into_dimensions()
        .map_err(unreadable)?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(Refusal::TooLarge(format!(
            "the image is {w}x{h} ({pixels} pixels); the server makes thumbnails of images of \
             up to {max_pixels} pixels"
        )));
    }
    source
        .seek(SeekFrom::Start(0))
        .map_err(|e| Refusal::Unreadable(e.to_string()))?;
    let mut reader = ImageReader::with_format(source, format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(max_pixels.saturating_mul(BYTES_PER_PIXEL));
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        ImageError::Limits(l) => Refusal::TooLarge(format!(
            "decoding the image takes more memory than the server allows for thumbnails: {l}"
        )),
        other => unreadable(other),
    })?;
    let thumb = match method {
        ThumbnailMethod::Scale if img.width() <= target.0 && img.height() <= target.1 => img,
        ThumbnailMethod::Scale => img.thumbnail(target.0, target.1),
        ThumbnailMethod::Crop => {
            let (x, y, cw, ch) = crop_region((img.width(), img.height()), target);
            let region = img.crop_imm(x, y, cw, ch);
            drop(img);
            if cw >= target.0 && ch >= target.1 {
                region.thumbnail_exact(target.0, target.1)
            } else {
                // Scaling up: the source region is smaller than the result.
                region.resize_exact(target.0, target.1, FilterType::Triangle)
            }
        }
    };
    let thumb = if format == ImageFormat::Jpeg {
        DynamicImage::ImageRgb8(thumb.to_rgb8())
    } else {
        thumb
    };
    let mut out = Cursor::new(Vec::new());
    thumb
        .write_to(&mut out, format)
        .map_err(|e| Refusal::Unreadable(e.to_string()))?;
    Ok(out.into_inner())
}

/// The largest centred region of a `source` image with the `target`'s aspect ratio, as
/// `(x, y, width, height)`: what a crop thumbnail shows. Never empty.
pub(super) fn crop_region(source: (u32, u32), target: (u32, u32)) -> (u32, u32, u32, u32) {
    let (sw, sh) = (u64::from(source.0), u64::from(source.1));
    let (tw, th) = (u64::from(target.0.max(1)), u64::from(target.1.max(1)));
    if sw * th > sh * tw {
        // Wider than the target: full height, the middle of the width.
        let cw = ((sh * tw + th / 2) / th).clamp(1, sw);
        (((sw - cw) / 2) as u32, 0, cw as u32, sh.max(1) as u32)
    } else {
        let ch = ((sw * th + tw / 2) / tw).clamp(1, sh.max(1));
        (0, ((sh - ch) / 2) as u32, sw.max(1) as u32, ch as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgba, RgbaImage};

    fn png(w: u32, h: u32) -> Cursor<Vec<u8>> {
        let img = RgbaImage::from_fn(w, h, |x, y| Rgba([x as u8, y as u8, 7, 255]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.set_position(0);
        out
    }

    fn size_of(bytes: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory(bytes).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn crop_region_takes_the_middle_of_the_long_side() {
        assert_eq!(crop_region((200, 100), (50, 50)), (50, 0, 100, 100));
        assert_eq!(crop_region((100, 200), (50, 50)), (0, 50, 100, 100));
        assert_eq!(crop_region((100, 100), (50, 25)), (0, 25, 100, 50));
        assert_eq!(crop_region((1, 10_000), (1600, 1600)), (0, 4999, 1, 1));
        assert_eq!(crop_region((600, 3), (20, 20)), (298, 0, 3, 3));
    }

    #[test]
    fn a_long_strip_cropped_to_a_big_square_is_scaled_from_its_middle_only() {
        let thumb = make(
            png(1, 5000),
            ImageFormat::Png,
            (1600, 1600),
            ThumbnailMethod::Crop,
            1 << 20,
        )
        .unwrap();
        assert_eq!(size_of(&thumb), (1600, 1600));
    }

    #[test]
    fn scale_fits_the_box_and_keeps_the_aspect() {
        let thumb = make(
            png(200, 100),
            ImageFormat::Png,
            (50, 50),
            ThumbnailMethod::Scale,
            1 << 20,
        )
        .unwrap();
        assert_eq!(size_of(&thumb), (50, 25));
    }

    #[test]
    fn an_image_with_more_pixels_than_allowed_is_refused_before_decoding() {
        let refused = make(
            png(20, 20),
            ImageFormat::Png,
            (10, 10),
            ThumbnailMethod::Scale,
            399,
        )
        .unwrap_err();
        assert!(
            matches!(&refused, Refusal::TooLarge(m) if m.contains("20x20")),
            "{refused:?}"
        );
        make(
            png(20, 20),
            ImageFormat::Png,
            (10, 10),
            ThumbnailMethod::Scale,
            400,
        )
        .unwrap();
    }

    #[test]
    fn bytes_that_are_not_the_format_are_unreadable() {
        let refused = make(
            Cursor::new(b"not a png at all".to_vec()),
            ImageFormat::Png,
            (10, 10),
            ThumbnailMethod::Scale,
            1 << 20,
        )
        .unwrap_err();
        assert!(matches!(refused, Refusal::Unreadable(_)), "{refused:?}");
    }
}
