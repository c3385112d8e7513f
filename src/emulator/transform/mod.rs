//! Image transformations for the emulator's CDN (resize, crop, rotate, ...).
//!
//! Interface used by the CDN routes: parse each task segment of a URL with
//! [`Task::parse`], then run the chain over the stored bytes with [`apply`].

/// One parsed transformation task, e.g. `resize=width:200,fit:crop`.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    name: String,
}

impl Task {
    /// Parses one path segment of a CDN URL (`name` or `name=k:v,k:v`).
    pub fn parse(segment: &str) -> Result<Task, TransformError> {
        Err(TransformError::UnknownTask(segment.to_owned()))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The result of a chain: encoded bytes and their MIME type.
#[derive(Debug)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub mimetype: &'static str,
}

/// Why a chain could not be parsed or applied.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("unknown task: {0}")]
    UnknownTask(String),
    #[error("invalid parameter {param} for {task}: {reason}")]
    BadParam {
        task: String,
        param: String,
        reason: String,
    },
    #[error("the file is not an image this emulator can decode")]
    NotAnImage,
    #[error("could not encode the result: {0}")]
    Encode(String),
}

/// Runs `tasks` left to right over the image in `input`.
pub fn apply(_input: &[u8], _tasks: &[Task]) -> Result<Rendered, TransformError> {
    Err(TransformError::NotAnImage)
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
pub fn parse_chain(path: &str) -> Result<Chain, TransformError> {
    Ok(Chain {
        apikey: None,
        security: None,
        tasks: Vec::new(),
        handle: path.rsplit('/').next().unwrap_or_default().to_owned(),
    })
}
