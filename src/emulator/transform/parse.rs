//! One task segment (`name` or `name=k:v,...`) to a validated [`Op`].

use super::TransformError;
use super::color;
use super::names::is_filestack_task;
use super::params::Params;
use super::spec::{Align, Fit, Format, HAlign, Op, Output, Rect, Resize, Rotate, VAlign};
use super::syntax::Value;

/// Largest `resize` width or height.
const MAX_SIDE: u32 = 10_000;
/// Largest `crop` coordinate or side.
const MAX_CROP: u32 = 100_000;
/// `enhance` presets Filestack defines.
const PRESETS: [&str; 9] = [
    "auto",
    "vivid",
    "beautify",
    "beautify_plus",
    "fix_dark",
    "fix_noise",
    "fix_tint",
    "outdoor",
    "fireworks",
];

/// Splits `segment` into its task name and raw parameters.
pub(crate) fn split_segment(segment: &str) -> (&str, Option<&str>) {
    match segment.split_once('=') {
        Some((name, params)) => (name.trim(), Some(params)),
        None => (segment.trim(), None),
    }
}

/// Parses a processing task segment.
pub(crate) fn parse_op(segment: &str) -> Result<Op, TransformError> {
    let (name, raw) = split_segment(segment);
    let op = match name {
        "resize" => resize(Params::parse("resize", raw)?)?,
        "crop" => crop(Params::parse("crop", raw)?)?,
        "rotate" => rotate(Params::parse("rotate", raw)?)?,
        "flip" => bare(Params::parse("flip", raw)?, Op::Flip)?,
        "flop" => bare(Params::parse("flop", raw)?, Op::Flop)?,
        "monochrome" => bare(Params::parse("monochrome", raw)?, Op::Monochrome)?,
        "negative" => bare(Params::parse("negative", raw)?, Op::Negative)?,
        "blackwhite" => {
            let mut p = Params::parse("blackwhite", raw)?;
            let threshold = p.int(&["threshold", "t"], 1..=100)?.unwrap_or(50);
            p.finish("threshold")?;
            Op::Blackwhite { threshold }
        }
        "sepia" => {
            let mut p = Params::parse("sepia", raw)?;
            let tone = p.int(&["tone", "t"], 0..=100)?.unwrap_or(80);
            p.finish("tone")?;
            Op::Sepia { tone }
        }
        "blur" => amount(Params::parse("blur", raw)?, 1, |amount| Op::Blur { amount })?,
        "sharpen" => amount(Params::parse("sharpen", raw)?, 0, |amount| Op::Sharpen {
            amount,
        })?,
        "enhance" => enhance(Params::parse("enhance", raw)?)?,
        "quality" => {
            let mut p = Params::parse("quality", raw)?;
            let value = p
                .int(&["value", "v"], 1..=100)?
                .ok_or_else(|| p.bad("value", "required, from 1 to 100"))?;
            p.finish("value")?;
            Op::Quality { value }
        }
        "output" => output(Params::parse("output", raw)?)?,
        other if is_filestack_task(other) => {
            return Err(TransformError::Unsupported(other.to_owned()));
        }
        other => return Err(TransformError::UnknownTask(other.to_owned())),
    };
    Ok(op)
}

fn bare(p: Params, op: Op) -> Result<Op, TransformError> {
    p.finish("no parameters")?;
    Ok(op)
}

fn amount(mut p: Params, min: u32, make: fn(u32) -> Op) -> Result<Op, TransformError> {
    let amount = p.int(&["amount", "a"], min..=20)?.unwrap_or(2);
    p.finish("amount")?;
    Ok(make(amount))
}

fn resize(mut p: Params) -> Result<Op, TransformError> {
    let width = p.int(&["width", "w"], 1..=MAX_SIDE)?;
    let height = p.int(&["height", "h"], 1..=MAX_SIDE)?;
    let fit = match p.text(&["fit", "f"])?.as_deref() {
        None | Some("clip") => Fit::Clip,
        Some("crop") => Fit::Crop,
        Some("scale") => Fit::Scale,
        Some("max") => Fit::Max,
        Some(_) => return Err(p.bad("fit", "expected clip, crop, scale or max")),
    };
    let align = match p.take(&["align", "a"])? {
        None => Align::default(),
        Some(value) => align(&p, value)?,
    };
    p.ignore(&["filter"]);
    if width.is_none() && height.is_none() {
        return Err(p.bad("width", "give width, height or both"));
    }
    p.finish("width, height, fit and align")?;
    Ok(Op::Resize(Resize {
        width,
        height,
        fit,
        align,
    }))
}

/// `top`, `left`, ..., `faces`, or a pair such as `[top,left]` (either order).
fn align(p: &Params, value: Value) -> Result<Align, TransformError> {
    let words = match value {
        Value::Scalar(word) => vec![word],
        Value::List(words) if (1..=2).contains(&words.len()) => words,
        Value::List(_) => return Err(p.bad("align", "expected one position or a pair")),
    };
    let mut align = Align::default();
    let (mut vertical_set, mut horizontal_set) = (false, false);
    for word in &words {
        let (vertical, horizontal) = match word.as_str() {
            "top" => (Some(VAlign::Top), None),
            "bottom" => (Some(VAlign::Bottom), None),
            "left" => (None, Some(HAlign::Left)),
            "right" => (None, Some(HAlign::Right)),
            "middle" | "center" => (None, None),
            "faces" => {
                align.faces = true;
                (None, None)
            }
            _ => {
                return Err(p.bad(
                    "align",
                    "expected top, middle, bottom, left, center, right, faces or a pair like [top,left]",
                ));
            }
        };
        if let Some(v) = vertical {
            if std::mem::replace(&mut vertical_set, true) {
                return Err(p.bad("align", "two vertical positions"));
            }
            align.vertical = v;
        }
        if let Some(h) = horizontal {
            if std::mem::replace(&mut horizontal_set, true) {
                return Err(p.bad("align", "two horizontal positions"));
            }
            align.horizontal = h;
        }
    }
    Ok(align)
}

fn crop(mut p: Params) -> Result<Op, TransformError> {
    let dim = p.take(&["dim", "d"])?;
    let reason = "expected [x,y,width,height] with x,y >= 0 and width,height >= 1";
    let Some(Value::List(items)) = dim else {
        return Err(p.bad("dim", reason));
    };
    if items.len() != 4 {
        return Err(p.bad("dim", reason));
    }
    let n = |i: usize, min: u32| p.int_value("dim", &items[i], min..=MAX_CROP);
    let rect = Rect {
        x: n(0, 0)?,
        y: n(1, 0)?,
        width: n(2, 1)?,
        height: n(3, 1)?,
    };
    p.finish("dim")?;
    Ok(Op::Crop(rect))
}

fn rotate(mut p: Params) -> Result<Op, TransformError> {
    let degrees = match p.text(&["deg", "d"])? {
        None => Some(0),
        Some(s) if s == "exif" => None,
        Some(s) => Some(p.int_value("deg", &s, 0..=359)?),
    };
    let exif = p.boolean(&["exif", "e"])?;
    let background = match p.text(&["background", "b"])? {
        None => [255, 255, 255, 255],
        Some(s) => color::parse(&s).ok_or_else(|| p.bad("background", color::HINT))?,
    };
    p.finish("deg, exif and background")?;
    Ok(Op::Rotate(Rotate {
        degrees,
        exif,
        background,
    }))
}

fn enhance(mut p: Params) -> Result<Op, TransformError> {
    let preset = match p.text(&["preset", "p"])? {
        None => None,
        Some(s) => Some(
            PRESETS
                .into_iter()
                .find(|known| *known == s)
                .ok_or_else(|| {
                    p.bad("preset", &format!("expected one of {}", PRESETS.join(", ")))
                })?,
        ),
    };
    p.finish("preset")?;
    Ok(Op::Enhance { preset })
}

fn output(mut p: Params) -> Result<Op, TransformError> {
    let format = match p.text(&["format", "f"])? {
        None => None,
        Some(s) => Some(output_format(&p, &s)?),
    };
    let quality = match p.text(&["quality", "q"])?.as_deref() {
        None | Some("input") => None,
        Some(s) => Some(p.int_value("quality", s, 1..=100)?),
    };
    let background = match p.text(&["background", "b"])? {
        None => None,
        Some(s) => Some(color::parse(&s).ok_or_else(|| p.bad("background", color::HINT))?),
    };
    p.ignore(&[
        "page",
        "density",
        "compress",
        "secure",
        "docinfo",
        "strip",
        "colorspace",
        "pageformat",
        "pageorientation",
    ]);
    p.finish("format, quality and background")?;
    Ok(Op::Output(Output {
        format,
        quality,
        background,
    }))
}

fn output_format(p: &Params, s: &str) -> Result<Format, TransformError> {
    match s.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" | "pjpg" => Ok(Format::Jpeg),
        "png" => Ok(Format::Png),
        "webp" => Ok(Format::Webp),
        "gif" => Ok(Format::Gif),
        _ => Err(p.bad(
            "format",
            &format!("the emulator converts images to jpg, pjpg, png, webp or gif only, not {s:?}"),
        )),
    }
}
