//! Decoding with a pixel cap, and encoding to the chosen output format.

use std::io::Cursor;

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::metadata::Orientation;
use image::{ColorType, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use super::color::Rgba;
use super::render::Canvas;
use super::spec::Format;
use super::{Rendered, TransformError};

/// Largest image, in pixels, that is decoded or produced.
pub(crate) const MAX_PIXELS: u64 = 50_000_000;
/// JPEG quality when no `quality` or `output=quality` task says otherwise.
const DEFAULT_JPEG_QUALITY: u8 = 80;
/// GIF quantizer speed (1 = best and slowest, 30 = fastest).
const GIF_SPEED: i32 = 10;

/// Decodes `input`, refusing non-images and anything over [`MAX_PIXELS`].
pub(crate) fn decode(input: &[u8]) -> Result<Canvas, TransformError> {
    let format = image::guess_format(input).map_err(|_| TransformError::NotAnImage)?;
    let mut reader = ImageReader::with_format(Cursor::new(input), format);
    reader.limits(Limits::default());
    let mut decoder = reader
        .into_decoder()
        .map_err(|_| TransformError::NotAnImage)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        ImageError::Limits(_) => TransformError::TooLarge {
            width: u64::from(width),
            height: u64::from(height),
            max: MAX_PIXELS,
        },
        _ => TransformError::NotAnImage,
    })?;
    let format = match format {
        ImageFormat::Jpeg => Format::Jpeg,
        _ => Format::Png,
    };
    Ok(Canvas {
        image,
        orientation,
        format,
        quality: None,
        background: None,
    })
}

/// Fails with [`TransformError::TooLarge`] past [`MAX_PIXELS`].
pub(crate) fn check_size(width: u32, height: u32) -> Result<(), TransformError> {
    check_pixels(u64::from(width), u64::from(height))
}

/// Like [`check_size`], for sizes computed before any buffer exists.
pub(crate) fn check_pixels(width: u64, height: u64) -> Result<(), TransformError> {
    if width.saturating_mul(height) > MAX_PIXELS {
        return Err(TransformError::TooLarge {
            width,
            height,
            max: MAX_PIXELS,
        });
    }
    Ok(())
}

/// Encodes the canvas in its output format.
pub(crate) fn encode(canvas: Canvas) -> Result<Rendered, TransformError> {
    let mut bytes = Vec::new();
    let image = canvas.image;
    let result = match canvas.format {
        Format::Jpeg => {
            let quality = canvas
                .quality
                .and_then(|q| u8::try_from(q).ok())
                .unwrap_or(DEFAULT_JPEG_QUALITY);
            let flat = flatten(image, canvas.background.unwrap_or([255, 255, 255, 255]));
            flat.write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, quality))
        }
        Format::Png => png_ready(image).write_with_encoder(PngEncoder::new(&mut bytes)),
        Format::Webp => eight_bit(image).write_with_encoder(WebPEncoder::new_lossless(&mut bytes)),
        Format::Gif => DynamicImage::ImageRgba8(image.into_rgba8())
            .write_with_encoder(GifEncoder::new_with_speed(&mut bytes, GIF_SPEED)),
    };
    result.map_err(|e| TransformError::Encode(e.to_string()))?;
    Ok(Rendered {
        bytes,
        mimetype: mimetype(canvas.format),
    })
}

fn mimetype(format: Format) -> &'static str {
    match format {
        Format::Jpeg => "image/jpeg",
        Format::Png => "image/png",
        Format::Webp => "image/webp",
        Format::Gif => "image/gif",
    }
}

/// Gray stays gray; anything else becomes 8-bit RGB, composited over
/// `background` where it was transparent (JPEG has no alpha).
fn flatten(image: DynamicImage, background: Rgba) -> DynamicImage {
    match image.color() {
        ColorType::L8 => image,
        ColorType::L16 => DynamicImage::ImageLuma8(image.into_luma8()),
        color if !color.has_alpha() => DynamicImage::ImageRgb8(image.into_rgb8()),
        _ => {
            let mut rgba = image.into_rgba8();
            let [br, bg, bb, _] = background.map(u32::from);
            let raw: &mut [u8] = &mut rgba;
            let mut at = 0;
            while at + 4 <= raw.len() {
                let a = u32::from(raw[at + 3]);
                let mix =
                    |c: u8, under: u32| ((u32::from(c) * a + under * (255 - a) + 127) / 255) as u8;
                raw[at] = mix(raw[at], br);
                raw[at + 1] = mix(raw[at + 1], bg);
                raw[at + 2] = mix(raw[at + 2], bb);
                at += 4;
            }
            DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).into_rgb8())
        }
    }
}

/// PNG takes 8- and 16-bit gray/RGB with or without alpha; floats become RGBA8.
fn png_ready(image: DynamicImage) -> DynamicImage {
    match image.color() {
        ColorType::Rgb32F | ColorType::Rgba32F => DynamicImage::ImageRgba8(image.into_rgba8()),
        _ => image,
    }
}

/// The lossless WebP encoder takes RGB8 or RGBA8 only.
fn eight_bit(image: DynamicImage) -> DynamicImage {
    match image.color().has_alpha() {
        true => DynamicImage::ImageRgba8(image.into_rgba8()),
        false => DynamicImage::ImageRgb8(image.into_rgb8()),
    }
}
