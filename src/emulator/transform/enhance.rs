//! `enhance`: the emulator's stand-in for Filestack's AI enhancement.
//!
//! 1. Auto-levels: each of R, G, B is stretched so that its 1st percentile
//!    becomes 0 and its 99th percentile 255 (a flat channel is left alone).
//! 2. Saturation: each pixel is pushed away from its grey value by 15%
//!    (30% for the `vivid` preset), in integer arithmetic.
//! 3. A mild unsharp mask (sigma 1, threshold 2).
//!
//! Every other preset behaves like the default. Dimensions and alpha are kept.

use image::DynamicImage;

use super::filters::map_rgba;

/// Share of pixels clipped at each end of a channel by auto-levels.
const CLIP_PERCENT: u64 = 1;

/// Runs the three steps above.
pub(crate) fn enhance(image: &DynamicImage, preset: Option<&str>) -> DynamicImage {
    let [red, green, blue] = level_tables(image);
    // Saturation factor in 256ths.
    let saturation: i32 = match preset {
        Some("vivid") => 333,
        _ => 294,
    };
    let adjusted = map_rgba(image, |[r, g, b, a]| {
        let levelled = [
            red[usize::from(r)],
            green[usize::from(g)],
            blue[usize::from(b)],
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
    let raw: &[u8] = &rgb;
    let mut at = 0;
    while at + 3 <= raw.len() {
        histograms[0][usize::from(raw[at])] += 1;
        histograms[1][usize::from(raw[at + 1])] += 1;
        histograms[2][usize::from(raw[at + 2])] += 1;
        at += 3;
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

/// Moves a colour away from its luma by `factor`/256.
fn saturate([r, g, b]: [u8; 3], factor: i32) -> [u8; 3] {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let luma = (77 * r + 150 * g + 29 * b + 128) >> 8;
    let push = |c: i32| (luma + (c - luma) * factor / 256).clamp(0, 255) as u8;
    [push(r), push(g), push(b)]
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
        let [r, _, b] = saturate([150, 100, 50], 333);
        assert!(r > 150 && b < 50);
        assert_eq!(saturate([90, 90, 90], 333), [90, 90, 90]);
    }
}
