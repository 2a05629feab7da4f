//! The `consentd` command: parses flags and hands over to the library.
//! `client` holds the commands that are gRPC clients of a running consentd
//! (`export`, `export-preferences`, `proof`), and `verify`, which checks
//! what they return offline.

use std::{process::ExitCode, time::Duration};

mod client;

use clap::{CommandFactory, Parser, Subcommand};
use consentd::{
    cli::{
        category, declaration_change, env_hints, key_id, key_uuid, site_id, site_or_defaults,
        tenant,
    },
    config::{DatabaseConfig, DefaultsConfig, ServeConfig, format_duration, within},
    domain::{
        auth::{Origin, Scope},
        declared::Declaration,
        ids::SiteId,
        keyring::generate_entry,
        site::{MAX_SETTING_DURATION, MIN_LIFETIME, SiteSettingsUpdate},
    },
    server::{self, ServerSettings},
    store,
    telemetry::{self, error_chain},
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
    // Boxed: the settings dwarf every other command's arguments.
    Serve(Box<ServeConfig>),
    /// Applies the embedded migrations and exits.
    Migrate(DatabaseConfig),
    /// Checks offline, with the keys ListSigningKeys serves, a receipt, an
    /// inclusion proof against a signed checkpoint, or the consistency of
    /// two checkpoints: exits 0 when it holds, 1 (saying which check
    /// failed) when not.
    Verify(client::verify::Verify),
    /// Exports a site's consent records from a running consentd to a CSV
    /// or NDJSON file (resumable with --resume).
    Export(client::export::ConsentExport),
    /// Exports a widget's preference history, as `export` does.
    ExportPreferences(client::export::PreferenceExport),
    /// Writes the PDF proof of one record, from a running consentd.
    Proof(client::proof::Proof),
    /// Keeps a tenant's latest signed checkpoint for an outside witness:
    /// checks its signature and, with --since, that the log extends the
    /// checkpoint kept before (exit 1 when not), then writes its note.
    Checkpoint(client::checkpoint::Witness),
    /// Prints a new random key entry `ID=BASE64` for CONSENTD_SIGNING_KEYS,
    /// CONSENTD_IP_KEYS or CONSENTD_AUDIT_KEY.
    GenerateKey {
        /// The id the entry gets: 1-64 of [A-Za-z0-9_-].
        #[arg(long, default_value = "k1", value_parser = key_id)]
        id: String,
    },
    /// Manages site settings (the tenant's defaults with `--site ''`).
    Sites {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        defaults: DefaultsConfig,
        #[command(subcommand)]
        command: SitesCommand,
    },
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
        /// The tenant, created when new: 1-128 printable ASCII characters,
        /// no spaces.
        #[arg(long, value_parser = tenant)]
        tenant: String,
        /// Comma-separated, e.g. consent:write,consent:read, of:
        /// consent:write, consent:read, consent:read_raw (with consent:read
        /// or consent:export: the raw user agent and full page URL),
        /// consent:export, consent:erase, preference:write,
        /// preference:read, preference:export, preference:erase, admin,
        /// audit:read.
        #[arg(long, value_delimiter = ',', value_parser = Scope::parse,
              required_unless_present = "publishable",
              conflicts_with_all = ["publishable", "site", "origins"])]
        scopes: Vec<Scope>,
        /// A publishable site key, safe to embed in pages: it records consent
        /// for `--site` from `--origins` on the public listener, nothing else.
        #[arg(long, requires_all = ["site", "origins"])]
        publishable: bool,
        /// The one site a publishable key records for: 1-128 printable
        /// ASCII characters, no spaces.
        #[arg(long, value_parser = site_id, requires = "publishable")]
        site: Option<SiteId>,
        /// Comma-separated origins pages may send from, each http(s)://HOST
        /// with a port only when not the default, no path, e.g.
        /// https://shop.example,https://www.shop.example.
        #[arg(long, value_delimiter = ',', value_parser = Origin::parse, requires = "publishable")]
        origins: Vec<Origin>,
    },
    /// Revokes a key by its id; calls with it fail from then on.
    Revoke {
        /// The key's id as `keys create` and `keys list` print it: a UUID.
        #[arg(value_parser = key_uuid)]
        key_id: Uuid,
    },
    /// Lists keys (never their secrets).
    List,
}

#[derive(Subcommand)]
enum SitesCommand {
    /// Changes some settings of a site; unset flags keep their value.
    Set {
        /// The tenant, created when new: 1-128 printable ASCII characters,
        /// no spaces.
        #[arg(long, value_parser = tenant)]
        tenant: String,
        /// The site: 1-128 printable ASCII characters, no spaces; '' for
        /// the tenant's defaults.
        #[arg(long, value_parser = site_or_defaults)]
        site: String,
        /// Off keeps no user agent, page URL or IP of any form.
        #[arg(long)]
        detailed_logging: Option<bool>,
        /// How long a consent holds, e.g. 180d or 12h; 1s to 36500d, as
        /// UpdateSiteSettings takes it.
        #[arg(long, value_parser = within(MIN_LIFETIME, MAX_SETTING_DURATION))]
        consent_lifetime: Option<Duration>,
        /// How long a record is kept after it expires, e.g. 730d; 0s to
        /// 36500d.
        #[arg(long, value_parser = within(Duration::ZERO, MAX_SETTING_DURATION))]
        retention: Option<Duration>,
        /// On: page URLs are stored without their query string (which
        /// often holds e-mail addresses and tokens); off keeps it as sent.
        #[arg(long)]
        drop_query_strings: Option<bool>,
        /// Declares a category of the site's banner, with its services:
        /// `analytics` or `analytics=ga,hotjar`, each name 1-64 of
        /// [A-Za-z0-9_.-]; repeat for each. Replaces the declared
        /// categories; decisions are then checked against them.
        #[arg(long = "category", value_name = "NAME[=SERVICES]", value_parser = category)]
        categories: Vec<String>,
        /// A declared category that is necessary (always granted); repeat.
        #[arg(long = "necessary", value_name = "NAME", requires = "categories")]
        necessary: Vec<String>,
        /// Declares no categories: the site's decisions are not checked,
        /// even where its tenant's defaults (--site '') declare some.
        #[arg(long, conflicts_with = "categories")]
        no_categories: bool,
        /// Drops the site's own declaration: its tenant's applies.
        #[arg(long, conflicts_with_all = ["categories", "no_categories"])]
        inherit_categories: bool,
    },
    /// Prints the settings in force for a site.
    Get {
        /// The tenant: 1-128 printable ASCII characters, no spaces.
        #[arg(long, value_parser = tenant)]
        tenant: String,
        /// The site: 1-128 printable ASCII characters, no spaces; '' for
        /// the tenant's defaults.
        #[arg(long, value_parser = site_or_defaults)]
        site: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = parse_cli();
    let otlp = match &cli.command {
        Command::Serve(config) => config.telemetry.otlp_endpoint.as_deref(),
        _ => None,
    };
    let outcome = match telemetry::get_subscriber("info", std::io::stderr, otlp) {
        Ok(subscriber) => {
            telemetry::init_subscriber(subscriber);
            run(cli).await
        }
        Err(message) => Err(message),
    };
    telemetry::shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("consentd: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let open = |database: &DatabaseConfig| {
        store::Store::new(&database.database_url, database.pool_size).map_err(|e| error_chain(&e))
    };
    match cli.command {
        Command::Serve(config) => {
            let settings = ServerSettings::from_config(&config)?;
            let store = open(&config.database)?;
            store
                .migrate()
                .await
                .map_err(|e| format!("cannot migrate the database: {}", error_chain(&e)))?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
            if let Some(addr) = config.telemetry.metrics_listen {
                tokio::spawn(consentd::metrics::serve(
                    consentd::metrics::bind(addr).await?,
                ));
            }
            let listen = listener.local_addr().unwrap_or(config.listen);
            tracing::info!(%listen, "serving consent.v1");
            server::run(listener, store, settings, server::shutdown::signal())
                .await
                .map_err(|e| error_chain(&*e))
        }
        Command::Verify(verify) => client::verify::run(verify),
        Command::Export(export) => client::export::consents(export).await,
        Command::ExportPreferences(export) => client::export::preferences(export).await,
        Command::Proof(proof) => client::proof::run(proof).await,
        Command::Checkpoint(witness) => client::checkpoint::run(witness).await,
        Command::GenerateKey { id } => {
            println!("{}", generate_entry(&id));
            Ok(())
        }
        Command::Sites {
            database,
            defaults,
            command,
        } => {
            let store = open(&database)?;
            let (tenant, site) = match &command {
                SitesCommand::Set { tenant, site, .. } | SitesCommand::Get { tenant, site } => {
                    (tenant, site)
                }
            };
            // Every flag is checked before the tenant is looked up, which
            // creates it.
            let change = match &command {
                SitesCommand::Set {
                    detailed_logging,
                    consent_lifetime,
                    retention,
                    drop_query_strings,
                    categories,
                    necessary,
                    no_categories,
                    inherit_categories,
                    ..
                } => {
                    let update = SiteSettingsUpdate {
                        detailed_logging: *detailed_logging,
                        consent_lifetime: *consent_lifetime,
                        retention: *retention,
                        drop_query_strings: *drop_query_strings,
                    };
                    update
                        .check()
                        .map_err(|(field, problem)| format!("{field} {problem}"))?;
                    let declared = declaration_change(
                        categories,
                        necessary,
                        *no_categories,
                        *inherit_categories,
                    )?;
                    Some((update, declared))
                }
                SitesCommand::Get { .. } => None,
            };
            let tenant_id = store.tenant_id(tenant).await.map_err(|e| error_chain(&e))?;
            let settings = match change {
                Some((update, declared)) => {
                    let changer = store::Changer::CommandLine { tenant_id };
                    store
                        .update_site_settings(
                            changer,
                            site,
                            update,
                            declared.as_ref(),
                            server::site_defaults(&defaults),
                        )
                        .await
                }
                None => {
                    let defaults = server::site_defaults(&defaults);
                    let settings = store.site_settings(tenant_id, site, defaults).await;
                    let declaration = store.site_declaration(tenant_id, site).await;
                    settings.and_then(|settings| Ok((settings, declaration?)))
                }
            }
            .map_err(|e| error_chain(&e))?;
            let (settings, declaration) = settings;
            println!("detailed_logging: {}", settings.detailed_logging);
            println!(
                "consent_lifetime: {}",
                format_duration(settings.consent_lifetime)
            );
            println!("retention: {}", format_duration(settings.retention));
            println!("drop_query_strings: {}", settings.drop_query_strings);
            for category in declaration.iter().flat_map(Declaration::categories) {
                println!("category: {category}");
            }
            Ok(())
        }
        Command::Migrate(database) => open(&database)?
            .migrate()
            .await
            .map_err(|e| error_chain(&e)),
        Command::Keys { database, command } => {
            let store = open(&database)?;
            match command {
                KeysCommand::Create {
                    tenant,
                    scopes,
                    site,
                    origins,
                    ..
                } => {
                    let created = match site {
                        Some(site) => store.create_site_key(&tenant, &site, &origins).await,
                        None => store.create_key(&tenant, &scopes).await,
                    }
                    .map_err(|e| error_chain(&e))?;
                    println!("tenant_id: {}", created.tenant_id);
                    println!("key_id: {}", created.key_id);
                    println!("{}", created.secret.expose());
                }
                KeysCommand::Revoke { key_id } => match store.revoke_key(key_id).await {
                    Ok(()) => println!("revoked {key_id}"),
                    Err(store::Error::NotFound) => return Err(format!("no key with id {key_id}")),
                    Err(e) => return Err(error_chain(&e)),
                },
                KeysCommand::List => {
                    for key in store.list_keys().await.map_err(|e| error_chain(&e))? {
                        let state = if key.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        let kind = match &key.site {
                            Some((site, origins)) => {
                                format!("publishable site={site} origins={}", origins.join(","))
                            }
                            None => "secret".into(),
                        };
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            key.key_id,
                            key.tenant,
                            key.scopes.join(","),
                            state,
                            kind
                        );
                    }
                }
            }
            Ok(())
        }
    }
}

/// The command line, or the exit clap chooses. A bad or missing setting
/// is reported with the environment variable that sets it too, since in a
/// pod that is where it came from.
fn parse_cli() -> Cli {
    Cli::try_parse().unwrap_or_else(|error| {
        let _ = error.print();
        for hint in env_hints(&Cli::command(), &error) {
            eprintln!("{hint}");
        }
        std::process::exit(error.exit_code())
    })
}
