//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`),
//! JSON lines when `FILEGATE_LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let json = std::env::var("FILEGATE_LOG_FORMAT").is_ok_and(|f| f == "json");
    // A second init (tests starting several servers) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
