//! The command line: `serve` (the default), `migrate`, `openapi`.

use anyhow::Context;
use chatrooms::{api, telemetry, Application, Config};
use clap::{Parser, Subcommand};

/// Keeps chat rooms on a Matrix homeserver in step with a mobile messenger's backend.
/// Configured through environment variables (see the README).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and run the sync worker (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            println!("{}", api::openapi_json());
            Ok(())
        }
        Command::Migrate => {
            let config = Config::from_env().context("reading configuration")?;
            telemetry::init(config.log_format);
            let store = chatrooms::store::Store::connect(&config.database_url, Some(1)).await?;
            store.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            let config = Config::from_env().context("reading configuration")?;
            telemetry::init(config.log_format);
            let app = Application::build(config).await?;
            app.run_until(shutdown_signal()).await
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
