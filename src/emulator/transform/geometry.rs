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
        Some(deg) => DynamicImage::ImageRgba8(rotate_any(image, deg, r.background)?),
    })
}

/// Rotation by any angle with bilinear sampling.
fn rotate_any(
    image: &DynamicImage,
    deg: u32,
    background: [u8; 4],
) -> Result<RgbaImage, TransformError> {
    let src = image.to_rgba8();
    let (sw, sh) = (f64::from(src.width()), f64::from(src.height()));
    let (sin, cos) = f64::from(deg).to_radians().sin_cos();
    // Shave float noise so that e.g. 45 degrees of a square is not one pixel wider.
    let side = |v: f64| (v - 1e-6).ceil().max(1.0);
    let (dw, dh) = (
        side(sw * cos.abs() + sh * sin.abs()),
        side(sw * sin.abs() + sh * cos.abs()),
    );
    check_pixels(dw as u64, dh as u64)?;
    let (scx, scy, dcx, dcy) = (sw / 2.0, sh / 2.0, dw / 2.0, dh / 2.0);
    Ok(RgbaImage::from_fn(dw as u32, dh as u32, |x, y| {
        let dx = f64::from(x) + 0.5 - dcx;
        let dy = f64::from(y) + 0.5 - dcy;
        let sx = scx + dx * cos + dy * sin - 0.5;
        let sy = scy - dx * sin + dy * cos - 0.5;
        image::Rgba(bilinear(&src, sx, sy, background))
    }))
}

/// Samples `src` at a fractional position; outside pixels are `background`.
fn bilinear(src: &RgbaImage, x: f64, y: f64, background: [u8; 4]) -> [u8; 4] {
    let (x0, y0) = (x.floor(), y.floor());
    let (tx, ty) = (x - x0, y - y0);
    let at = |px: f64, py: f64| -> [f64; 4] {
        let inside = px >= 0.0 && py >= 0.0;
        let pixel = inside
            .then(|| src.get_pixel_checked(px as u32, py as u32))
            .flatten()
            .map_or(background, |p| p.0);
        pixel.map(f64::from)
    };
    let (a, b) = (at(x0, y0), at(x0 + 1.0, y0));
    let (c, d) = (at(x0, y0 + 1.0), at(x0 + 1.0, y0 + 1.0));
    std::array::from_fn(|i| {
        let top = a[i] + (b[i] - a[i]) * tx;
        let bottom = c[i] + (d[i] - c[i]) * tx;
        (top + (bottom - top) * ty).round().clamp(0.0, 255.0) as u8
    })
}

#[cfg(test)]
#[path = "geometry_tests.rs"]
mod tests;
