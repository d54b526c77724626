//! `quiver serve`: the Qdrant-compatible REST API over the data folder.

use super::Ctx;
use crate::render::{Many, Output};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on (0.0.0.0: every interface; then set --api-key).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port (Qdrant's REST port by default).
    #[arg(long, default_value_t = 6333)]
    port: u16,
    /// Require this key (`api-key` header or `Authorization: Bearer`) for every request.
    #[arg(long, env = "QUIVER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// A second key that may only read and search.
    #[arg(long, env = "QUIVER_READ_ONLY_API_KEY", hide_env_values = true)]
    read_only_api_key: Option<String>,
    /// The largest request body, in MiB.
    #[arg(long, default_value_t = 64)]
    max_body_mb: usize,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Let pages of this origin (`https://app.example.com`) call the API from a browser;
    /// repeat for several. None by default: no web page can use the API.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Open connections at once; more are closed as soon as they arrive.
    #[arg(long, default_value_t = quiver_server::CONNECTIONS_MAX_DEFAULT)]
    max_connections: usize,
    /// Seconds a client may take to send a request's headers before it is cut off.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
}

impl ServeArgs {
    fn config(&self) -> Result<quiver_server::ServerConfig> {
        let addr: std::net::SocketAddr = format!("{}:{}", self.host, self.port)
            .parse()
            .with_context(|| format!("bad --host/--port {}:{}", self.host, self.port))?;
        let mut config = quiver_server::ServerConfig::new(addr);
        config.api_key = self.api_key.clone();
        config.read_only_api_key = self.read_only_api_key.clone();
        config.body_bytes_max = self.max_body_mb.checked_mul(1 << 20).context("--max-body-mb is too large")?;
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls = Some(quiver_server::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        config.cors_origins = self.cors_origins.clone();
        config.connections_max = self.max_connections;
        config.header_timeout = std::time::Duration::from_secs(self.header_timeout);
        config.validate().map_err(|e| anyhow::anyhow!(e))?;
        Ok(config)
    }
}

/// Serves until Ctrl-C or SIGTERM; every acknowledged write is already durable by then.
pub fn serve(ctx: &Ctx, a: &ServeArgs) -> Result<Box<dyn Output>> {
    use std::io::IsTerminal;
    let config = a.config()?;
    // Quiver's own lines at info (one per request), libraries' only when they warn (tantivy
    // logs every segment merge at info); RUST_LOG overrides. Colour only on a terminal.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,quiver=info,quiver_server=info,quiver_cli=info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let db = std::sync::Arc::new(ctx.open_db()?);
    let closing = db.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let shutdown = async {
            let ctrl_c = tokio::signal::ctrl_c();
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down: finishing in-flight requests");
        };
        quiver_server::serve(db, config, shutdown).await
    })?;
    // On object storage: the last group commit uploaded and the lease given up, even if a
    // request still holds the database.
    closing.close();
    Ok(Box::new(Many(Vec::new())))
}
