use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use filegate::gateway::{Application, ServeArgs, Settings};
use filegate::secret::Secret;

/// filegate: a gRPC file gateway for Filestack.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (local mode with the embedded emulator when no
    /// FILESTACK_API_KEY is set).
    Serve(Box<ServeArgs>),
    /// Print a caller token (HS256) for the configured or local secret.
    Token(TokenArgs),
    /// Run the database migrations and exit.
    Migrate(MigrateArgs),
    /// Serve a Filestack-compatible HTTP API from a local folder.
    Emulator(filegate::emulator::EmulatorArgs),
}

#[derive(clap::Args)]
struct TokenArgs {
    /// The owner id the token names.
    #[arg(long)]
    sub: String,
    /// Lifetime, e.g. 3600, 90s, 30m, 1h or 7d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
    /// HS256 secret; default: the local-mode secret of the data dir.
    #[arg(
        long,
        env = "FILEGATE_JWT_SECRET",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    jwt_secret: Option<Secret>,
    /// Data dir of a local-mode gateway.
    #[arg(long, env = "FILEGATE_DATA_DIR", default_value = "./filegate-data")]
    data_dir: PathBuf,
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// `postgres://...` or `sqlite://...`.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
}

fn parse_ttl(raw: &str) -> Result<Duration, String> {
    let (number, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("not a duration: {raw}"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("unknown unit in {raw}: use s, m, h or d")),
    };
    Ok(Duration::from_secs(seconds))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    let traces = matches!(command, Command::Serve(_));
    let telemetry = filegate::telemetry::init(traces)?;
    match command {
        Command::Serve(args) => {
            let served = serve(*args, telemetry.traces_destination()).await;
            // Sends the spans still queued, off the async workers.
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            served
        }
        Command::Token(args) => token(args),
        Command::Migrate(args) => {
            filegate::db::Database::connect(&args.database_url).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Emulator(args) => filegate::emulator::run(args).await,
    }
}

async fn serve(args: ServeArgs, traces: Option<String>) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    let local = settings.is_local();
    let own_jwt_secret =
        settings.args.jwt_secret.is_some() || settings.args.jwt_public_key.is_some();
    let data_dir = settings.args.data_dir.clone();
    let app = Application::build(settings).await?;
    let grpc = app.grpc_addr();
    say(&format!(
        "filegate listening: grpc={grpc} http={}",
        app.http_addr()
    ));
    if let Some(destination) = traces {
        say(&format!("traces: {destination}"));
    }
    if local {
        print_local_help(&app, &data_dir, own_jwt_secret);
    }
    app.run_until(filegate::gateway::app::shutdown_signal())
        .await
}

/// Prints commands that work as printed: the running binary by its own
/// path (a `cargo run` user has no `filegate` on the PATH), paths quoted for
/// the shell.
fn print_local_help(app: &Application, data_dir: &std::path::Path, own_jwt_secret: bool) {
    let grpc = app.grpc_addr();
    say(&format!(
        "local mode: Filestack emulator at {}, SQLite in {}",
        app.emulator_url().unwrap_or_default(),
        data_dir.display()
    ));
    let binary = std::env::current_exe()
        .map(|path| shell_quote(&path.to_string_lossy()))
        .unwrap_or_else(|_| "filegate".to_owned());
    if own_jwt_secret {
        say(&format!(
            "get a token:   export TOKEN=$({binary} token --jwt-secret \"$FILEGATE_JWT_SECRET\" --sub alice)"
        ));
    } else {
        let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        let dir = shell_quote(&dir.to_string_lossy());
        say(&format!(
            "get a token:   export TOKEN=$({binary} token --data-dir {dir} --sub alice)"
        ));
    }
    if let Some(page) = app.page_url() {
        say(&format!("page:          {page}"));
    }
    // With TLS the CA and any client certificate are the caller's own files.
    let transport = if app.grpc_uses_tls() {
        "-cacert CA.pem -cert CLIENT.pem -key CLIENT.key"
    } else {
        "-plaintext"
    };
    say(&format!(
        "try it:        grpcurl {transport} -H \"authorization: Bearer $TOKEN\" -d '{{}}' {grpc} filegate.v1.FileGatewayService/ListDocuments"
    ));
    if app.grpc_uses_tls() {
        say(
            "               (TLS: CA.pem signed --tls-cert; CLIENT.pem/.key only with --tls-client-ca)",
        );
    }
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let secret = match args.jwt_secret.filter(|s| !s.expose().trim().is_empty()) {
        Some(secret) => secret,
        None => filegate::gateway::settings::existing_local_jwt_secret(&args.data_dir)?,
    };
    let token = filegate::gateway::auth::mint_hs256(&secret, &args.sub, args.ttl)?;
    println!("{token}");
    Ok(())
}

/// Prints a line on stdout for people and scripts. A closed stdout (the
/// reader went away) must not stop a running server, so errors are ignored.
/// `text` as one POSIX shell word: as is when it needs no quoting, else
/// single-quoted.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,=@%".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn say(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, shell_quote};

    #[test]
    fn shell_words_are_quoted_only_when_they_need_it() {
        assert_eq!(
            shell_quote("/work/target/debug/filegate"),
            "/work/target/debug/filegate"
        );
        assert_eq!(shell_quote("/tmp/my data"), "'/tmp/my data'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(rm)"), "'$(rm)'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn empty_optional_values_count_as_not_given() {
        let dir = tempfile::tempdir().unwrap();
        let serve = Cli::try_parse_from([
            "filegate",
            "serve",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--filestack-api-key",
            "",
            "--filestack-app-secret",
            " ",
            "--jwt-secret",
            "",
            "--database-url",
            "",
            "--jwt-jwks-url",
            "",
            "--grpc-web-origins",
            "",
            "--jwt-public-key",
            "",
            "--tls-cert",
            "",
            "--tls-key",
            "",
            "--tls-client-ca",
            "",
            "--tls-client-names",
            "",
        ]);
        let Command::Serve(args) = serve.expect("serve parses").command else {
            panic!("not serve");
        };
        let args = args.without_empty_values();
        assert!(args.filestack_api_key.is_none(), "local mode");
        assert!(args.filestack_app_secret.is_none());
        assert!(args.jwt_secret.is_none());
        assert!(args.database_url.is_none());
        assert!(args.jwt_jwks_url.is_none());
        assert!(args.jwt_public_key.is_none());
        assert!(args.grpc_web_origins.is_empty());
        assert!(args.tls_cert.is_none() && args.tls_key.is_none());
        assert!(args.tls_client_ca.is_none() && args.tls_client_names.is_empty());
        let settings = filegate::gateway::settings::Settings::resolve(args)
            .expect("an empty API key is local mode, not a key");
        assert!(settings.database_url.starts_with("sqlite://"));
    }

    /// Generated secrets (base64url, say) may begin with a hyphen.
    const SECRET: &str = "-Yx3_secret-from-token_urlsafe";

    #[test]
    fn secrets_that_begin_with_a_hyphen_are_values_not_flags() {
        let serve = Cli::try_parse_from([
            "filegate",
            "serve",
            "--jwt-secret",
            SECRET,
            "--filestack-app-secret",
            SECRET,
            "--filestack-webhook-secret",
            SECRET,
        ]);
        let Command::Serve(args) = serve.expect("serve parses").command else {
            panic!("not serve");
        };
        for secret in [
            args.jwt_secret,
            args.filestack_app_secret,
            args.filestack_webhook_secret,
        ] {
            assert_eq!(secret.expect("given").expose(), SECRET);
        }
        let token =
            Cli::try_parse_from(["filegate", "token", "--jwt-secret", SECRET, "--sub", "a"]);
        let Command::Token(args) = token.expect("token parses").command else {
            panic!("not token");
        };
        assert_eq!(args.jwt_secret.expect("given").expose(), SECRET);
        let emulator = Cli::try_parse_from([
            "filegate",
            "emulator",
            "--app-secret",
            SECRET,
            "--webhook-secret",
            SECRET,
        ]);
        let Command::Emulator(args) = emulator.expect("emulator parses").command else {
            panic!("not emulator");
        };
        assert_eq!(args.app_secret.expose(), SECRET);
        assert_eq!(args.webhook_secret.expect("given").expose(), SECRET);
    }
}
