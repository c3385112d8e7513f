//! filegate: a gRPC file gateway for Filestack, and a Filestack-compatible
//! emulator that serves the same HTTP protocol from a local folder.

pub mod db;
pub mod emulator;
pub mod filestack;
pub mod gateway;
pub mod pb;
pub mod secret;
pub mod telemetry;
