//! The Filestack client against the real emulator, over HTTP on port 0
//! (`support::emulator::TestEmulator`).

mod faults;
mod files;
mod upload;
