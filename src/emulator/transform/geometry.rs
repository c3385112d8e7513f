//! Tasks that change the image's geometry: `resize`, `crop`, `rotate`.

use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, GenericImageView, RgbaImage};

use super::TransformError;
use super::codec::check_pixels;
use super::params::bad;
use super::spec::{Align, Fit, HAlign, Rect, Resize, Rotate, VAlign};

/// Resampling filter for `resize`: sharp, and cheaper than Lanczos3.
const FILTER: FilterType = FilterType::CatmullRom;

/// `resize`: see [`Fit`] for the modes.
pub(crate) fn resize(image: &DynamicImage, r: &Resize) -> Result<DynamicImage, TransformError> {
    let (width, height) = image.dimensions();
    let plan = plan_resize((width, height), r)?;
    if plan.scaled == (width, height) && plan.cut.is_none() {
        return Ok(image.clone());
    }
    let scaled = image.resize_exact(plan.scaled.0, plan.scaled.1, FILTER);
    Ok(match plan.cut {
        Some(rect) => scaled.crop_imm(rect.x, rect.y, rect.width, rect.height),
        None => scaled,
    })
}

/// What `resize` does: scale to `scaled`, then maybe keep only `cut`.
#[derive(Debug, PartialEq)]
struct Plan {
    scaled: (u32, u32),
    cut: Option<Rect>,
}

fn plan_resize(source: (u32, u32), r: &Resize) -> Result<Plan, TransformError> {
    let (sw, sh) = (f64::from(source.0), f64::from(source.1));
    let fx = r.width.map(|w| f64::from(w) / sw);
    let fy = r.height.map(|h| f64::from(h) / sh);
    let factor = match (fx, fy, r.fit) {
        (Some(fx), Some(fy), Fit::Scale) => {
            return plan((sw * fx, sh * fy), None);
        }
        (Some(fx), Some(fy), Fit::Crop) => fx.max(fy),
        (Some(fx), Some(fy), Fit::Clip | Fit::Max) => fx.min(fy),
        (Some(f), None, _) | (None, Some(f), _) => f,
        (None, None, _) => return Err(bad("resize", "width", "give width, height or both")),
    };
    let factor = match r.fit {
        Fit::Max => factor.min(1.0),
        _ => factor,
    };
    let scaled = (sw * factor, sh * factor);
    let cut = match (r.fit, r.width, r.height) {
        (Fit::Crop, Some(w), Some(h)) => Some((w, h)),
        _ => None,
    };
    plan(scaled, cut.map(|box_size| (box_size, r.align)))
}

/// Rounds the scaled size (at least 1x1, capped) and places the crop box.
fn plan(scaled: (f64, f64), cut: Option<((u32, u32), Align)>) -> Result<Plan, TransformError> {
    let round = |v: f64| v.round().max(1.0);
    let (w, h) = (round(scaled.0), round(scaled.1));
    check_pixels(w as u64, h as u64)?;
    let (w, h) = (w as u32, h as u32);
    let cut = cut.map(|((bw, bh), align)| {
        let (width, height) = (bw.min(w), bh.min(h));
        let x = match align.horizontal {
            HAlign::Left => 0,
            HAlign::Center => (w - width) / 2,
            HAlign::Right => w - width,
        };
        let y = match align.vertical {
            VAlign::Top => 0,
            VAlign::Middle => (h - height) / 2,
            VAlign::Bottom => h - height,
        };
        Rect {
            x,
            y,
            width,
            height,
        }
    });
    Ok(Plan {
        scaled: (w, h),
        cut,
    })
}

/// `crop=dim:[x,y,w,h]`, clamped to the image.
pub(crate) fn crop(image: &DynamicImage, rect: Rect) -> Result<DynamicImage, TransformError> {
    let (width, height) = image.dimensions();
    if rect.x >= width || rect.y >= height {
        return Err(bad(
            "crop",
            "dim",
            &format!(
                "the area starts at {},{}, outside the {width}x{height} image",
                rect.x, rect.y
            ),
        ));
    }
    let w = rect.width.min(width - rect.x);
    let h = rect.height.min(height - rect.y);
    Ok(image.crop_imm(rect.x, rect.y, w, h))
}

/// `rotate`: clockwise; right angles exactly, other angles on a canvas
/// grown to fit, filled with the background colour.
pub(crate) fn rotate(
    image: &DynamicImage,
    r: &Rotate,
    orientation: Orientation,
) -> Result<DynamicImage, TransformError> {
    Ok(match r.degrees {
        None => {
            let mut oriented = image.clone();
            oriented.apply_orientation(orientation);
            oriented
        }
        Some(0) => image.clone(),
        Some(90) => image.rotate90(),
        Some(180) => image.rotate180(),
        Some(270) => image.rotate270(),
        Some(deg) => {
            let rotated = DynamicImage::ImageRgba8(rotate_any(image, deg, r.background)?);
            match image.color().has_alpha() || r.background[3] < 255 {
                true => rotated,
                false => DynamicImage::ImageRgb8(rotated.into_rgb8()),
            }
        }
    })
}

/// Rotation by any angle with bilinear sampling (fixed-point weights; plain
/// index arithmetic because the crate's own code runs unoptimised in tests).
fn rotate_any(
    image: &DynamicImage,
    deg: u32,
    background: [u8; 4],
) -> Result<RgbaImage, TransformError> {
    let src = image.to_rgba8();
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let (sin, cos) = f64::from(deg).to_radians().sin_cos();
    // Shave float noise so that e.g. 45 degrees of a square is not one pixel wider.
    let side = |v: f64| (v - 1e-6).ceil().max(1.0);
    let (dw, dh) = (
        side(sw as f64 * cos.abs() + sh as f64 * sin.abs()),
        side(sw as f64 * sin.abs() + sh as f64 * cos.abs()),
    );
    check_pixels(dw as u64, dh as u64)?;
    let mut out = RgbaImage::new(dw as u32, dh as u32);
    let (dw, dh) = (dw as usize, dh as usize);
    let pixels: &[u8] = src.as_raw();
    let buffer: &mut [u8] = &mut out;
    for y in 0..dh {
        let dy = y as f64 + 0.5 - dh as f64 / 2.0;
        let dx0 = 0.5 - dw as f64 / 2.0;
        // Source position of the output pixel (0, y); each step in x adds (cos, -sin).
        let mut sx = sw as f64 / 2.0 + dx0 * cos + dy * sin - 0.5;
        let mut sy = sh as f64 / 2.0 - dx0 * sin + dy * cos - 0.5;
        for x in 0..dw {
            let at = (y * dw + x) * 4;
            let value = bilinear(pixels, (sw, sh), (sx, sy), background);
            buffer[at..at + 4].copy_from_slice(&value);
            sx += cos;
            sy -= sin;
        }
    }
    Ok(out)
}

/// Samples an RGBA8 buffer of `size` at a fractional position; pixels outside
/// count as `background`.
fn bilinear(pixels: &[u8], size: (usize, usize), pos: (f64, f64), background: [u8; 4]) -> [u8; 4] {
    let (fx, fy) = (pos.0.floor(), pos.1.floor());
    if fx < -1.0 || fy < -1.0 || fx >= size.0 as f64 || fy >= size.1 as f64 {
        return background;
    }
    // Weights out of 256 for the right and lower neighbours.
    let wx = ((pos.0 - fx) * 256.0) as u32;
    let wy = ((pos.1 - fy) * 256.0) as u32;
    let (x0, y0) = (fx as i64, fy as i64);
    let (w, h) = (size.0 as i64, size.1 as i64);
    if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
        // Fast path: all four neighbours inside.
        let at = (y0 as usize * size.0 + x0 as usize) * 4;
        let below = at + size.0 * 4;
        let quad = (&pixels[at..at + 8], &pixels[below..below + 8]);
        return blend(quad.0, quad.1, wx, wy);
    }
    let fetch = |x: i64, y: i64| -> [u8; 4] {
        if x < 0 || y < 0 || x >= w || y >= h {
            return background;
        }
        let at = (y as usize * size.0 + x as usize) * 4;
        [pixels[at], pixels[at + 1], pixels[at + 2], pixels[at + 3]]
    };
    let top = [fetch(x0, y0), fetch(x0 + 1, y0)].concat();
    let bottom = [fetch(x0, y0 + 1), fetch(x0 + 1, y0 + 1)].concat();
    blend(&top, &bottom, wx, wy)
}

/// Blends two horizontal pairs of RGBA pixels (8 bytes each) with weights
/// out of 256 for the right and lower pixels.
fn blend(top: &[u8], bottom: &[u8], wx: u32, wy: u32) -> [u8; 4] {
    let (ix, iy) = (256 - wx, 256 - wy);
    let channel = |i: usize| {
        let t = u32::from(top[i]) * ix + u32::from(top[i + 4]) * wx;
        let b = u32::from(bottom[i]) * ix + u32::from(bottom[i + 4]) * wx;
        ((t * iy + b * wy + (1 << 15)) >> 16) as u8
    };
    [channel(0), channel(1), channel(2), channel(3)]
}

#[cfg(test)]
#[path = "geometry_tests.rs"]
mod tests;
