//! The Filestack emulator over HTTP on port 0 (`support::emulator::TestEmulator`),
//! its transform module, and `filegate emulator` as a process.

mod cli;
mod faults;
mod files;
mod metadata;
mod ranges;
mod transform;
mod transform_chain;
mod upload;
mod webhooks;
