//! The Filestack HTTP protocol: policies, URLs, multipart upload, the File API
//! and webhook verification. Every base URL is configuration, so the same code
//! talks to Filestack or to the emulator.

pub mod policy;
pub mod webhook;
