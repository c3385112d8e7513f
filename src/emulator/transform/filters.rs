//! Per-pixel and convolution filters: `blackwhite`, `sepia`, `blur`, `sharpen`.

use image::imageops::GaussianBlurParameters;
use image::{DynamicImage, GrayAlphaImage, LumaA, RgbaImage};

/// Above this blur amount the box-blur approximation is used (same look,
/// linear cost instead of a kernel growing with the radius).
const EXACT_BLUR_MAX: u32 = 4;

/// `blackwhite`: pixels brighter than `threshold`% of white become white,
/// the others black; alpha is kept.
pub(crate) fn blackwhite(image: &DynamicImage, threshold: u32) -> DynamicImage {
    let gray = image.to_luma_alpha8();
    let cutoff = threshold * 255;
    let out = GrayAlphaImage::from_fn(gray.width(), gray.height(), |x, y| {
        let LumaA([l, a]) = *gray.get_pixel(x, y);
        let v = if u32::from(l) * 100 > cutoff { 255 } else { 0 };
        LumaA([v, a])
    });
    match image.color().has_alpha() {
        true => DynamicImage::ImageLumaA8(out),
        false => DynamicImage::ImageLuma8(DynamicImage::ImageLumaA8(out).into_luma8()),
    }
}

/// `sepia`: the classic sepia matrix, blended with the original by `tone`%.
pub(crate) fn sepia(image: &DynamicImage, tone: u32) -> DynamicImage {
    let amount = tone.min(100) as i32;
    // The sepia matrix in thousandths.
    let row = |[cr, cg, cb]: [i32; 3], r: i32, g: i32, b: i32| (cr * r + cg * g + cb * b) / 1000;
    map_rgba(image, |[r, g, b, a]| {
        let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
        let mix = |orig: i32, s: i32| (orig + (s - orig) * amount / 100).clamp(0, 255) as u8;
        [
            mix(r, row([393, 769, 189], r, g, b)),
            mix(g, row([349, 686, 168], r, g, b)),
            mix(b, row([272, 534, 131], r, g, b)),
            a,
        ]
    })
}

/// `blur=amount:1..20`: gaussian blur with sigma = amount.
pub(crate) fn blur(image: &DynamicImage, amount: u32) -> DynamicImage {
    let sigma = amount as f32;
    if amount <= EXACT_BLUR_MAX {
        image.blur_advanced(GaussianBlurParameters::new_from_sigma(sigma))
    } else {
        image.fast_blur(sigma)
    }
}

/// `sharpen=amount:0..20`: unsharp mask with sigma = amount / 2 (0 = no-op).
pub(crate) fn sharpen(image: &DynamicImage, amount: u32) -> DynamicImage {
    match amount {
        0 => image.clone(),
        _ => image.unsharpen(amount as f32 / 2.0, 0),
    }
}

/// Applies `f` to every RGBA8 pixel; the result keeps an alpha channel only
/// when the input had one. (A plain index loop: the crate's own code runs
/// unoptimised in tests, where iterator adapters cost a call per step.)
pub(crate) fn map_rgba(image: &DynamicImage, f: impl Fn([u8; 4]) -> [u8; 4]) -> DynamicImage {
    let mut rgba: RgbaImage = image.to_rgba8();
    let raw: &mut [u8] = &mut rgba;
    let mut at = 0;
    while at + 4 <= raw.len() {
        let [r, g, b, a] = f([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        raw[at] = r;
        raw[at + 1] = g;
        raw[at + 2] = b;
        raw[at + 3] = a;
        at += 4;
    }
    let out = DynamicImage::ImageRgba8(rgba);
    match image.color().has_alpha() {
        true => out,
        false => DynamicImage::ImageRgb8(out.into_rgb8()),
    }
}

#[cfg(test)]
mod tests {
    use image::{DynamicImage, GenericImageView, Rgb, RgbImage};

    use super::{blackwhite, blur, sepia, sharpen};

    fn gradient() -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(64, 8, |x, _| {
            let v = (x * 4) as u8;
            Rgb([v, v, v])
        }))
    }

    #[test]
    fn blackwhite_splits_at_the_threshold() {
        let out = blackwhite(&gradient(), 50).to_luma8();
        assert_eq!(out.get_pixel(10, 0).0, [0]);
        assert_eq!(out.get_pixel(50, 0).0, [255]);
        let darker = blackwhite(&gradient(), 90).to_luma8();
        assert_eq!(darker.get_pixel(50, 0).0, [0]);
    }

    #[test]
    fn sepia_warms_grey_and_tone_zero_changes_nothing() {
        let image = gradient();
        let warm = sepia(&image, 80).to_rgb8();
        let [r, g, b] = warm.get_pixel(30, 0).0;
        assert!(r > g && g > b, "sepia should be warm, got {r},{g},{b}");
        assert_eq!(sepia(&image, 0).to_rgb8(), image.to_rgb8());
    }

    #[test]
    fn blur_softens_an_edge_and_sharpen_steepens_it() {
        let edge = DynamicImage::ImageRgb8(RgbImage::from_fn(40, 40, |x, _| {
            if x < 20 {
                Rgb([60, 60, 60])
            } else {
                Rgb([180, 180, 180])
            }
        }));
        for amount in [2, 20] {
            let soft = blur(&edge, amount);
            assert_eq!(soft.dimensions(), (40, 40));
            let [v, ..] = soft.to_rgb8().get_pixel(19, 20).0;
            assert!(v > 60 && v < 180, "blur {amount} left the edge at {v}");
        }
        let [v, ..] = sharpen(&edge, 4).to_rgb8().get_pixel(19, 20).0;
        assert!(v < 60, "sharpen should overshoot the dark side, got {v}");
        assert_eq!(sharpen(&edge, 0).to_rgb8(), edge.to_rgb8());
    }
}
