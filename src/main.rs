//! The `consentd` command: parses flags and hands over to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use consentd::{
    config::{DatabaseConfig, ServeConfig},
    domain::auth::Scope,
    server, store, telemetry,
};
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "consentd",
    version,
    about = "Keeps the proof of what people agreed to"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Applies migrations, then serves gRPC until SIGTERM or Ctrl-C.
    Serve(ServeConfig),
    /// Applies the embedded migrations and exits.
    Migrate(DatabaseConfig),
    /// Manages API keys.
    Keys {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Creates a key (and its tenant if new); the key is printed once, alone
    /// on the last line.
    Create {
        #[arg(long)]
        tenant: String,
        /// Comma-separated, e.g. consent:write,consent:read.
        #[arg(long, value_delimiter = ',', value_parser = Scope::parse, required = true)]
        scopes: Vec<Scope>,
    },
    /// Revokes a key by its id; calls with it fail from then on.
    Revoke { key_id: Uuid },
    /// Lists keys (never their secrets).
    List,
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_subscriber(telemetry::get_subscriber("info", std::io::stderr));
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("consentd: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let open = |database: &DatabaseConfig| {
        store::Store::new(&database.database_url, database.pool_size).map_err(|e| chain(&e))
    };
    match cli.command {
        Command::Serve(config) => {
            let settings = config.server_settings()?;
            let store = open(&config.database)?;
            store
                .migrate()
                .await
                .map_err(|e| format!("cannot migrate the database: {}", chain(&e)))?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
            tracing::info!(listen = %config.listen, "serving consent.v1");
            server::run(listener, store, settings, shutdown_signal())
                .await
                .map_err(|e| chain(&e))
        }
        Command::Migrate(database) => open(&database)?.migrate().await.map_err(|e| chain(&e)),
        Command::Keys { database, command } => {
            let store = open(&database)?;
            match command {
                KeysCommand::Create { tenant, scopes } => {
                    let created = store
                        .create_key(&tenant, &scopes)
                        .await
                        .map_err(|e| chain(&e))?;
                    println!("tenant_id: {}", created.tenant_id);
                    println!("key_id: {}", created.key_id);
                    println!("{}", created.secret.expose());
                }
                KeysCommand::Revoke { key_id } => match store.revoke_key(key_id).await {
                    Ok(()) => println!("revoked {key_id}"),
                    Err(store::Error::NotFound) => return Err(format!("no key with id {key_id}")),
                    Err(e) => return Err(chain(&e)),
                },
                KeysCommand::List => {
                    for key in store.list_keys().await.map_err(|e| chain(&e))? {
                        let state = if key.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        println!(
                            "{}\t{}\t{}\t{}",
                            key.key_id,
                            key.tenant,
                            key.scopes.join(","),
                            state
                        );
                    }
                }
            }
            Ok(())
        }
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    consentd::api::error_chain(error)
}

/// Completes on SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
