//! The Filestack HTTP protocol: policies, URLs, multipart upload, the File API,
//! ranged reads and webhook verification. Every base URL is configuration, so
//! the same code talks to Filestack or to the emulator.

mod client;
pub mod config;
pub mod error;
pub mod files;
mod http;
pub mod metrics;
pub mod policy;
pub mod read;
pub mod retry;
pub mod upload;
pub mod urls;
pub mod webhook;

pub use client::FilestackClient;
pub(crate) use client::{expiry_in, regex_escape};
pub use config::{ConfigError, FilestackConfig, RetryPolicy};
pub use error::FilestackError;
pub use files::{Metadata, MetadataField, SignedUrl};
pub use metrics::FilestackMetrics;
pub use read::{ByteRange, FileRead};
pub use upload::{
    MultipartSession, PartEtag, PartsUploaded, PendingComplete, Sha256Check, StoredFile, UploadSpec,
};
