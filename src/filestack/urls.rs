//! CDN URLs of files and of transformations (protocol reference, section 6).
//!
//! Task parameters are sorted alphabetically as the Python SDK sorts them, so
//! a URL built here equals the SDK's byte for byte for the same policy.

use std::fmt::Write;

use crate::filestack::policy::Security;

/// `{cdn}/HANDLE`, unsigned.
pub fn cdn_url(cdn: &str, handle: &str) -> String {
    format!("{}/{handle}", cdn.trim_end_matches('/'))
}

/// `{cdn}/security=p:P,s:S/HANDLE`.
pub fn signed_url(cdn: &str, handle: &str, security: &Security) -> String {
    format!(
        "{}/{}/{handle}",
        cdn.trim_end_matches('/'),
        security.url_task()
    )
}

/// How `resize` fits the image into the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    Clip,
    Crop,
    Scale,
    Max,
}

impl Fit {
    fn as_str(self) -> &'static str {
        match self {
            Fit::Clip => "clip",
            Fit::Crop => "crop",
            Fit::Scale => "scale",
            Fit::Max => "max",
        }
    }
}

/// Vertical part of an alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vertical {
    Top,
    Middle,
    Bottom,
}

/// Horizontal part of an alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Horizontal {
    Left,
    Center,
    Right,
}

/// Where `resize` with `fit:crop` keeps the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Vertical(Vertical),
    Horizontal(Horizontal),
    /// A corner or edge, e.g. `[top,left]`.
    Pair(Vertical, Horizontal),
    Faces,
}

impl Vertical {
    fn as_str(self) -> &'static str {
        match self {
            Vertical::Top => "top",
            Vertical::Middle => "middle",
            Vertical::Bottom => "bottom",
        }
    }
}

impl Horizontal {
    fn as_str(self) -> &'static str {
        match self {
            Horizontal::Left => "left",
            Horizontal::Center => "center",
            Horizontal::Right => "right",
        }
    }
}

impl Align {
    fn value(self) -> String {
        match self {
            Align::Vertical(v) => v.as_str().to_owned(),
            Align::Horizontal(h) => h.as_str().to_owned(),
            Align::Pair(v, h) => format!("[{},{}]", v.as_str(), h.as_str()),
            Align::Faces => "faces".to_owned(),
        }
    }
}

/// The `resize` task. At least one of `width` and `height` should be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resize {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Option<Fit>,
    pub align: Option<Align>,
}

/// Angle of the `rotate` task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Degrees {
    /// 0 to 359 (larger values are taken modulo 360).
    Angle(u16),
    /// As the EXIF orientation says.
    Exif,
}

/// The `rotate` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotate {
    pub deg: Degrees,
    /// Whether to keep (`true`) or reset (`false`) the EXIF orientation.
    pub exif: Option<bool>,
    /// Fill colour: hex without `#` or a CSS name; other characters are dropped.
    pub background: Option<String>,
}

impl From<u16> for Rotate {
    fn from(deg: u16) -> Self {
        Rotate {
            deg: Degrees::Angle(deg),
            exif: None,
            background: None,
        }
    }
}

/// Output format of the `output` task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpg,
    Pjpg,
    Png,
    Webp,
    Gif,
    Pdf,
}

impl Format {
    /// The name Filestack uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpg => "jpg",
            Format::Pjpg => "pjpg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Gif => "gif",
            Format::Pdf => "pdf",
        }
    }
}

/// A chain of CDN tasks applied to one handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    handle: String,
    tasks: Vec<String>,
}

impl Transform {
    /// No task yet: the URL is the file's own.
    pub fn new(handle: impl Into<String>) -> Self {
        Self {
            handle: handle.into(),
            tasks: Vec::new(),
        }
    }

    /// The handle the tasks apply to.
    pub fn handle(&self) -> &str {
        &self.handle
    }

    /// `resize=fit:..,height:..,width:..`.
    pub fn resize(self, resize: Resize) -> Self {
        let mut params = Vec::new();
        if let Some(width) = resize.width {
            params.push(format!("width:{width}"));
        }
        if let Some(height) = resize.height {
            params.push(format!("height:{height}"));
        }
        if let Some(fit) = resize.fit {
            params.push(format!("fit:{}", fit.as_str()));
        }
        if let Some(align) = resize.align {
            params.push(format!("align:{}", align.value()));
        }
        self.task("resize", params)
    }

    /// `crop=dim:[x,y,width,height]`.
    pub fn crop(self, x: u32, y: u32, width: u32, height: u32) -> Self {
        let dim = format!("dim:[{x},{y},{width},{height}]");
        self.task("crop", vec![dim])
    }

    /// `rotate=deg:..` (with `exif` and `background` when given).
    pub fn rotate(self, rotate: impl Into<Rotate>) -> Self {
        let rotate = rotate.into();
        let deg = match rotate.deg {
            Degrees::Angle(angle) => (angle % 360).to_string(),
            Degrees::Exif => "exif".to_owned(),
        };
        let mut params = vec![format!("deg:{deg}")];
        if let Some(exif) = rotate.exif {
            params.push(format!("exif:{exif}"));
        }
        if let Some(background) = rotate.background {
            let color: String = background
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect();
            params.push(format!("background:{color}"));
        }
        self.task("rotate", params)
    }

    /// `enhance`.
    pub fn enhance(self) -> Self {
        self.task("enhance", Vec::new())
    }

    /// `output=format:..[,quality:..]`; quality is clamped to 1–100.
    pub fn output(self, format: Format, quality: Option<u8>) -> Self {
        let mut params = vec![format!("format:{}", format.as_str())];
        if let Some(quality) = quality {
            params.push(format!("quality:{}", quality.clamp(1, 100)));
        }
        self.task("output", params)
    }

    /// `{cdn}/<tasks>/HANDLE`, unsigned.
    pub fn url(&self, cdn: &str) -> String {
        self.build(cdn, None)
    }

    /// `{cdn}/<tasks>/security=p:P,s:S/HANDLE`.
    pub fn signed_url(&self, cdn: &str, security: &Security) -> String {
        self.build(cdn, Some(security))
    }

    fn task(mut self, name: &str, mut params: Vec<String>) -> Self {
        if params.is_empty() {
            self.tasks.push(name.to_owned());
        } else {
            params.sort();
            self.tasks.push(format!("{name}={}", params.join(",")));
        }
        self
    }

    fn build(&self, cdn: &str, security: Option<&Security>) -> String {
        let mut url = cdn.trim_end_matches('/').to_owned();
        for task in &self.tasks {
            let _ = write!(url, "/{task}");
        }
        if let Some(security) = security {
            let _ = write!(url, "/{}", security.url_task());
        }
        let _ = write!(url, "/{}", self.handle);
        url
    }
}

#[cfg(test)]
#[path = "urls_tests.rs"]
mod tests;
