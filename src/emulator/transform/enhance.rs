//! `enhance`: the emulator's stand-in for Filestack's AI enhancement.
//!
//! 1. Auto-levels: each of R, G, B is stretched so that its 1st percentile
//!    becomes 0 and its 99th percentile 255 (a flat channel is left alone).
//! 2. Saturation: each pixel is pushed away from its grey value by 15%
//!    (30% for the `vivid` preset).
//! 3. A mild unsharp mask (sigma 1, threshold 2).
//!
//! Every other preset behaves like the default. Dimensions and alpha are kept.

use image::DynamicImage;

use super::filters::map_rgba;

/// Share of pixels clipped at each end of a channel by auto-levels.
const CLIP_PERCENT: u64 = 1;

/// Runs the three steps above.
pub(crate) fn enhance(image: &DynamicImage, preset: Option<&str>) -> DynamicImage {
    let tables = level_tables(image);
    let saturation = match preset {
        Some("vivid") => 1.3,
        _ => 1.15,
    };
    let adjusted = map_rgba(image, |[r, g, b, a]| {
        let levelled = [
            tables[0][usize::from(r)],
            tables[1][usize::from(g)],
            tables[2][usize::from(b)],
        ];
        let [r, g, b] = saturate(levelled, saturation);
        [r, g, b, a]
    });
    adjusted.unsharpen(1.0, 2)
}

/// One lookup table per colour channel implementing auto-levels.
fn level_tables(image: &DynamicImage) -> [[u8; 256]; 3] {
    let mut histograms = [[0u64; 256]; 3];
    let rgb = image.to_rgb8();
    for pixel in rgb.pixels() {
        for (histogram, value) in histograms.iter_mut().zip(pixel.0) {
            histogram[usize::from(value)] += 1;
        }
    }
    histograms.map(|histogram| {
        let (low, high) = percentiles(&histogram);
        stretch(low, high)
    })
}

/// The values at the [`CLIP_PERCENT`] and `100 - CLIP_PERCENT` percentiles.
fn percentiles(histogram: &[u64; 256]) -> (u8, u8) {
    let total: u64 = histogram.iter().sum();
    let clip = total * CLIP_PERCENT / 100;
    let first_past_clip = |order: &mut dyn Iterator<Item = usize>| {
        let mut seen = 0;
        for v in order {
            seen += histogram[v];
            if seen > clip {
                return u8::try_from(v).ok();
            }
        }
        None
    };
    let low = first_past_clip(&mut (0..256)).unwrap_or(0);
    let high = first_past_clip(&mut (0..256).rev()).unwrap_or(255);
    (low, high)
}

/// Maps `low..=high` linearly onto `0..=255`, clamping outside it.
fn stretch(low: u8, high: u8) -> [u8; 256] {
    if high <= low {
        return std::array::from_fn(|v| v as u8);
    }
    let (low, span) = (f32::from(low), f32::from(high) - f32::from(low));
    std::array::from_fn(|v| ((v as f32 - low) * 255.0 / span).round().clamp(0.0, 255.0) as u8)
}

/// Moves a colour away from its luma by `factor`.
fn saturate([r, g, b]: [u8; 3], factor: f32) -> [u8; 3] {
    let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
    let luma = 0.299 * r + 0.587 * g + 0.114 * b;
    [r, g, b].map(|c| (luma + (c - luma) * factor).round().clamp(0.0, 255.0) as u8)
}

#[cfg(test)]
mod tests {
    use image::{DynamicImage, GenericImageView, Rgb, RgbImage};

    use super::{enhance, saturate};

    /// Difference between the brightest and darkest red value.
    fn spread(image: &DynamicImage) -> u8 {
        let rgb = image.to_rgb8();
        let reds = rgb.pixels().map(|p| p.0[0]);
        let (min, max) = reds.fold((255, 0), |(lo, hi), v| (v.min(lo), v.max(hi)));
        max - min
    }

    #[test]
    fn enhance_widens_the_histogram_of_a_dull_image_and_keeps_its_size() {
        let dull = DynamicImage::ImageRgb8(RgbImage::from_fn(120, 80, |x, y| {
            let v = 100 + ((x + y) % 50) as u8;
            Rgb([v, v + 5, v.saturating_sub(5)])
        }));
        for preset in [None, Some("vivid"), Some("fix_dark")] {
            let out = enhance(&dull, preset);
            assert_eq!(out.dimensions(), (120, 80));
            assert!(
                spread(&out) > spread(&dull) + 100,
                "spread {} -> {}",
                spread(&dull),
                spread(&out)
            );
        }
    }

    #[test]
    fn enhance_leaves_a_flat_grey_image_grey() {
        let flat = DynamicImage::ImageRgb8(RgbImage::from_pixel(10, 10, Rgb([128, 128, 128])));
        let out = enhance(&flat, None).to_rgb8();
        assert!(out.pixels().all(|p| p.0 == [128, 128, 128]));
    }

    #[test]
    fn saturation_pushes_colours_apart_and_leaves_grey_alone() {
        let [r, _, b] = saturate([150, 100, 50], 1.3);
        assert!(r > 150 && b < 50);
        assert_eq!(saturate([90, 90, 90], 1.3), [90, 90, 90]);
    }
}
