//! Image transformations for the emulator's CDN (resize, crop, rotate, ...).
//!
//! Interface used by the CDN routes: split a URL path with [`parse_chain`]
//! (or parse single task segments with [`Task::parse`]), then run the tasks
//! over the stored bytes with [`apply`]. Everything here is pure: no I/O.
//!
//! Approximations of Filestack's behaviour, where the real service does more:
//! * `resize=align:faces` keeps the centre (no face detection);
//! * `rotate=deg:exif` follows the EXIF orientation the decoder reports, and
//!   `exif:true|false` is a no-op because the output never carries EXIF data;
//! * `enhance` (every preset) is auto-levels plus a saturation boost and an
//!   unsharp mask, see `enhance.rs`;
//! * `sepia=tone:N` blends the classic sepia matrix with the original by N%;
//! * `output=format:webp` is lossless (the `image` crate only encodes lossless
//!   WebP), `pjpg` gives a baseline JPEG, and animated inputs keep their first
//!   frame.

mod chain;
mod codec;
mod color;
mod enhance;
mod filters;
mod geometry;
mod names;
mod params;
mod parse;
mod render;
mod spec;
mod syntax;

/// One parsed transformation task, e.g. `resize=width:200,fit:crop`.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    op: spec::Op,
}

impl Task {
    /// Parses one path segment of a CDN URL (`name` or `name=k:v,k:v`).
    ///
    /// Parameters may come in any order and under their short aliases.
    /// Filestack tasks the emulator does not implement give
    /// [`TransformError::Unsupported`]; `security`, `cache` and `debug` are
    /// path-level segments that only [`parse_chain`] understands.
    pub fn parse(segment: &str) -> Result<Task, TransformError> {
        parse::parse_op(segment).map(|op| Task { op })
    }

    /// The Filestack task name, e.g. `resize`.
    pub fn name(&self) -> &str {
        self.op.name()
    }
}

/// The result of a chain: encoded bytes and their MIME type.
#[derive(Debug)]
pub struct Rendered {
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// `image/jpeg`, `image/png`, `image/webp` or `image/gif`.
    pub mimetype: &'static str,
}

/// Why a chain could not be parsed or applied.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// A task name Filestack does not have.
    #[error("unknown task: {0}")]
    UnknownTask(String),
    /// A Filestack task this emulator does not implement.
    #[error("task not supported by the emulator: {0}")]
    Unsupported(String),
    /// A parameter is missing, unknown or out of range.
    #[error("invalid parameter {param} for {task}: {reason}")]
    BadParam {
        task: String,
        param: String,
        reason: String,
    },
    /// The source part of the path is not a handle the emulator can serve.
    #[error("bad source: {0}")]
    BadSource(String),
    /// The input or the result would exceed the pixel cap.
    #[error("image of {width}x{height} pixels is too large (at most {max} pixels)")]
    TooLarge { width: u64, height: u64, max: u64 },
    /// The input is not an image in a format the emulator decodes.
    #[error("the file is not an image this emulator can decode")]
    NotAnImage,
    /// Encoding the result failed.
    #[error("could not encode the result: {0}")]
    Encode(String),
}

/// Runs `tasks` left to right over the image in `input`: decodes once (format
/// guessed from the content), applies, encodes once. Without an `output` task
/// JPEG stays JPEG and everything else becomes PNG.
pub fn apply(input: &[u8], tasks: &[Task]) -> Result<Rendered, TransformError> {
    let mut canvas = codec::decode(input)?;
    for task in tasks {
        render::run(&task.op, &mut canvas)?;
    }
    codec::encode(canvas)
}

/// A stable text key for `tasks` (for caching): the same tasks written with
/// other parameter orders, aliases or explicit defaults give the same string.
pub fn canonical(tasks: &[Task]) -> String {
    tasks
        .iter()
        .map(|t| t.op.canonical())
        .collect::<Vec<_>>()
        .join("/")
}

/// A CDN path split into its parts: `[APIKEY/]{TASK/}HANDLE`, with the
/// `security` task (any position, keys `p|policy`, `s|signature`) taken out.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    /// The API key segment, when the URL has one.
    pub apikey: Option<String>,
    /// The policy and signature of a `security` task, when there is one.
    pub security: Option<crate::filestack::policy::Security>,
    /// The processing tasks, in order (empty for a plain download).
    pub tasks: Vec<Task>,
    /// The source handle.
    pub handle: String,
}

/// Parses a CDN path (without the leading `/` and without the query string).
///
/// `%XX` escapes are decoded first. The source may be quoted (as the JS SDK
/// writes it); `cache` and `debug` segments are accepted and dropped. Sources
/// other than a single handle give [`TransformError::BadSource`].
pub fn parse_chain(path: &str) -> Result<Chain, TransformError> {
    chain::parse(path)
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
