//! The state carried through a chain, and the dispatch of each task.

use image::DynamicImage;
use image::metadata::Orientation;

use super::color::Rgba;
use super::spec::{Format, Op};
use super::{TransformError, enhance, filters, geometry};

/// The decoded image plus the output settings tasks have chosen so far.
pub(crate) struct Canvas {
    pub image: DynamicImage,
    /// EXIF orientation of the input, for `rotate=deg:exif`.
    pub orientation: Orientation,
    pub format: Format,
    /// Encoder quality (JPEG only), from `quality` or `output=quality`.
    pub quality: Option<u32>,
    /// Colour under transparent pixels when the output has no alpha.
    pub background: Option<Rgba>,
}

/// Applies one task to the canvas.
pub(crate) fn run(op: &Op, canvas: &mut Canvas) -> Result<(), TransformError> {
    let image = &canvas.image;
    let next = match op {
        Op::Resize(r) => geometry::resize(image, r)?,
        Op::Crop(rect) => geometry::crop(image, *rect)?,
        Op::Rotate(r) => {
            let orientation = std::mem::replace(&mut canvas.orientation, Orientation::NoTransforms);
            geometry::rotate(&canvas.image, r, orientation)?
        }
        Op::Flip => image.flipv(),
        Op::Flop => image.fliph(),
        Op::Monochrome => image.grayscale(),
        Op::Negative => {
            canvas.image.invert();
            return Ok(());
        }
        Op::Blackwhite { threshold } => filters::blackwhite(image, *threshold),
        Op::Sepia { tone } => filters::sepia(image, *tone),
        Op::Blur { amount } => filters::blur(image, *amount),
        Op::Sharpen { amount } => filters::sharpen(image, *amount),
        Op::Enhance { preset } => enhance::enhance(image, *preset),
        Op::Quality { value } => {
            canvas.quality = Some(*value);
            return Ok(());
        }
        Op::Output(output) => {
            canvas.format = output.format.unwrap_or(canvas.format);
            canvas.quality = output.quality.or(canvas.quality);
            canvas.background = output.background.or(canvas.background);
            return Ok(());
        }
    };
    canvas.image = next;
    Ok(())
}
