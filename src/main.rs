//! Command line: `serve` (default), `migrate`, `openapi`.

use anyhow::Context;
use chatrooms::{api, telemetry, Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".to_owned());
    match command.as_str() {
        "openapi" => {
            println!("{}", api::openapi_json());
            Ok(())
        }
        "migrate" => {
            let config = Config::from_env()?;
            telemetry::init(config.log_format);
            let store = chatrooms::store::Store::connect(&config.database_url, 1).await?;
            store.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        "serve" => {
            let config = Config::from_env().context("reading configuration")?;
            telemetry::init(config.log_format);
            let app = Application::build(config).await?;
            app.run_until(shutdown_signal()).await
        }
        other => {
            eprintln!("unknown command {other:?}; use serve, migrate or openapi");
            std::process::exit(2);
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
