//! The Filestack emulator over HTTP on port 0 (`support::emulator::TestEmulator`),
//! its transform module, and `filegate emulator` as a process.

mod base64decode;
mod cli;
mod faults;
mod files;
mod handles;
mod locations;
mod metadata;
mod not_emulated;
mod overwrite;
mod ranges;
mod transform;
mod transform_chain;
mod upload;
mod webhooks;
