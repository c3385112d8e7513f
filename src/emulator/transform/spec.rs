//! Typed, validated tasks, and their canonical text form.

use std::fmt::Write as _;

use super::color::Rgba;

/// One validated operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Resize(Resize),
    Crop(Rect),
    Rotate(Rotate),
    Flip,
    Flop,
    Monochrome,
    Negative,
    Blackwhite { threshold: u32 },
    Sepia { tone: u32 },
    Blur { amount: u32 },
    Sharpen { amount: u32 },
    Enhance { preset: Option<&'static str> },
    Quality { value: u32 },
    Output(Output),
}

/// `resize` parameters; at least one of `width` and `height` is set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resize {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub align: Align,
}

/// How `resize` fits the image into the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// Fit inside the box, keeping the aspect ratio (may upscale).
    Clip,
    /// Fill the box, keeping the aspect ratio, then cut what overflows.
    Crop,
    /// Exactly the box, distorting if needed.
    Scale,
    /// Like `Clip`, but never upscale.
    Max,
}

/// Vertical part of an alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VAlign {
    Top,
    Middle,
    Bottom,
}

/// Horizontal part of an alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HAlign {
    Left,
    Center,
    Right,
}

/// Which part of the image `resize=fit:crop` keeps. `faces` is accepted but
/// the emulator detects no faces: it keeps the centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Align {
    pub vertical: VAlign,
    pub horizontal: HAlign,
    pub faces: bool,
}

impl Default for Align {
    fn default() -> Self {
        Align {
            vertical: VAlign::Middle,
            horizontal: HAlign::Center,
            faces: false,
        }
    }
}

/// A rectangle in pixels (`crop=dim:[x,y,w,h]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// `rotate` parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rotate {
    /// `None` for `deg:exif` (follow the EXIF orientation).
    pub degrees: Option<u32>,
    /// `exif:false|true`: output never carries EXIF here, so this is a no-op.
    pub exif: Option<bool>,
    pub background: Rgba,
}

/// Output file formats the emulator can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Jpeg,
    Png,
    Webp,
    Gif,
}

impl Format {
    /// The name used in canonical task strings.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Gif => "gif",
        }
    }
}

/// `output` parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Output {
    pub format: Option<Format>,
    pub quality: Option<u32>,
    pub background: Option<Rgba>,
}

impl Op {
    /// The Filestack task name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Resize(_) => "resize",
            Op::Crop(_) => "crop",
            Op::Rotate(_) => "rotate",
            Op::Flip => "flip",
            Op::Flop => "flop",
            Op::Monochrome => "monochrome",
            Op::Negative => "negative",
            Op::Blackwhite { .. } => "blackwhite",
            Op::Sepia { .. } => "sepia",
            Op::Blur { .. } => "blur",
            Op::Sharpen { .. } => "sharpen",
            Op::Enhance { .. } => "enhance",
            Op::Quality { .. } => "quality",
            Op::Output(_) => "output",
        }
    }

    /// `name=k:v,...` with full parameter names in alphabetical order and
    /// defaults written out, so equivalent tasks give equal strings.
    pub(crate) fn canonical(&self) -> String {
        let mut s = self.name().to_owned();
        let params = match self {
            Op::Resize(r) => resize_params(r),
            Op::Crop(r) => format!("dim:[{},{},{},{}]", r.x, r.y, r.width, r.height),
            Op::Rotate(r) => rotate_params(r),
            Op::Flip | Op::Flop | Op::Monochrome | Op::Negative => String::new(),
            Op::Blackwhite { threshold } => format!("threshold:{threshold}"),
            Op::Sepia { tone } => format!("tone:{tone}"),
            Op::Blur { amount } | Op::Sharpen { amount } => format!("amount:{amount}"),
            Op::Enhance { preset } => preset.map(|p| format!("preset:{p}")).unwrap_or_default(),
            Op::Quality { value } => format!("value:{value}"),
            Op::Output(o) => output_params(o),
        };
        if !params.is_empty() {
            s.push('=');
            s.push_str(&params);
        }
        s
    }
}

fn resize_params(r: &Resize) -> String {
    let vertical = match r.align.vertical {
        VAlign::Top => "top",
        VAlign::Middle => "middle",
        VAlign::Bottom => "bottom",
    };
    let horizontal = match r.align.horizontal {
        HAlign::Left => "left",
        HAlign::Center => "center",
        HAlign::Right => "right",
    };
    let fit = match r.fit {
        Fit::Clip => "clip",
        Fit::Crop => "crop",
        Fit::Scale => "scale",
        Fit::Max => "max",
    };
    let faces = if r.align.faces { "faces," } else { "" };
    let mut s = format!("align:[{faces}{vertical},{horizontal}]");
    let _ = write!(s, ",fit:{fit}");
    if let Some(h) = r.height {
        let _ = write!(s, ",height:{h}");
    }
    if let Some(w) = r.width {
        let _ = write!(s, ",width:{w}");
    }
    s
}

fn rotate_params(r: &Rotate) -> String {
    let [red, green, blue, alpha] = r.background;
    let mut s = format!("background:{red:02X}{green:02X}{blue:02X}{alpha:02X}");
    match r.degrees {
        Some(d) => {
            let _ = write!(s, ",deg:{d}");
        }
        None => s.push_str(",deg:exif"),
    }
    if let Some(exif) = r.exif {
        let _ = write!(s, ",exif:{exif}");
    }
    s
}

fn output_params(o: &Output) -> String {
    let mut parts = Vec::new();
    if let Some([r, g, b, a]) = o.background {
        parts.push(format!("background:{r:02X}{g:02X}{b:02X}{a:02X}"));
    }
    if let Some(f) = o.format {
        parts.push(format!("format:{}", f.name()));
    }
    if let Some(q) = o.quality {
        parts.push(format!("quality:{q}"));
    }
    parts.join(",")
}
