//! The Filestack client against the real emulator, over HTTP on port 0
//! (`support::emulator::TestEmulator`): uploads, the File API, ranged reads and
//! transport faults.

mod faults;
mod files;
mod read;
mod upload;
