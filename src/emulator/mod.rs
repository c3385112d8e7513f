//! A Filestack-compatible HTTP server backed by a local folder.

pub mod transform;

/// Command-line and environment settings of `filegate emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {}

pub async fn run(_args: EmulatorArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
