//! The gateway end to end: in-process on port 0 with its embedded emulator
//! (`support::gateway::TestGateway`), or as the `filegate serve` binary.

mod bad_input;
mod compression;
mod concurrency;
mod connections;
mod crash;
mod documents;
mod events;
mod faults;
mod grpc_web;
mod jwks;
mod local_page;
mod lost_answers;
mod metrics;
mod read;
mod resumable;
mod secrets;
mod service;
mod tls;
mod traces;
mod upload;
mod webhooks;
