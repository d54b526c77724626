//! Quiver's HTTP server: Qdrant's REST API (the subset in `docs/api.md`) over the library, so
//! that Qdrant's official clients and the frameworks built on them work with Quiver.
//!
//! This is the only crate that knows HTTP and the JSON wire format. Handlers parse the request
//! into library types, run the library call on the blocking pool (writes fsync; scans are CPU
//! work), and wrap the answer in Qdrant's envelope `{"result": .., "status": "ok", "time": ..}`.
//! Errors use Qdrant's shape `{"status": {"error": ".."}, "time": ..}` with a status code chosen
//! in one place ([`api::ApiError::from`]).

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod batcher;
pub mod dashboard;
pub mod documents;
pub mod embed_queue;
pub mod guard;
pub mod listen;
pub mod metrics;
pub mod steps;
mod strict;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use quiver::Database;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// Full access when set; every request but the health checks must carry a key.
    pub api_key: Option<String>,
    /// Search-only access.
    pub read_only_api_key: Option<String>,
    /// The largest request body accepted (413 above it).
    pub body_bytes_max: usize,
    /// Serve HTTPS with this certificate chain and private key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Origins (`https://app.example.com`) whose pages may call the API from a browser; none
    /// by default.
    pub cors_origins: Vec<String>,
    /// Open connections beyond this are closed as soon as they are accepted.
    pub connections_max: usize,
    /// A request whose headers have not all arrived after this long is cut off.
    pub header_timeout: std::time::Duration,
}

/// PEM files for HTTPS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServerConfig {
    pub fn new(addr: SocketAddr) -> ServerConfig {
        ServerConfig {
            addr,
            api_key: None,
            read_only_api_key: None,
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            tls: None,
            cors_origins: Vec::new(),
            connections_max: CONNECTIONS_MAX_DEFAULT,
            header_timeout: std::time::Duration::from_secs(10),
        }
    }

    /// Refuses settings that would silently weaken the server: an empty API key (which would
    /// turn authentication off) or a malformed CORS origin.
    pub fn validate(&self) -> Result<(), String> {
        if self.api_key.as_deref() == Some("") {
            return Err("--api-key is empty: give a key, or leave the option out to serve without authentication".into());
        }
        if self.read_only_api_key.as_deref() == Some("") {
            return Err("--read-only-api-key is empty: give a key, or leave the option out".into());
        }
        if self.connections_max == 0 {
            return Err("the connection limit must be at least 1".into());
        }
        guard::cors(&self.cors_origins).map(|_| ())
    }

    /// A warning for a server that anyone on the network can reach and change, if this is one.
    pub fn exposure_warning(&self) -> Option<String> {
        (!self.addr.ip().is_loopback() && self.api_key.is_none()).then(|| {
            format!(
                "warning: serving on {} without an API key: anyone who can reach this address can read, change and delete \
                 every collection (set --api-key, or bind to 127.0.0.1)",
                self.addr
            )
        })
    }
}

/// Open connections at once, by default.
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;

/// 64 MiB: about 40,000 points of 384 dimensions as JSON in one request.
pub const BODY_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Arc<Database>,
    pub metrics: Arc<metrics::Metrics>,
    pub auth: Arc<auth::Auth>,
    /// Searches are queued and answered in batches (see [`batcher`]).
    pub searches: Arc<batcher::Batcher>,
    /// The text embedder at each precision, loaded on the first document that needs it (see
    /// [`documents`]).
    pub embedder: Arc<std::sync::Mutex<std::collections::HashMap<quiver::EmbedPrecision, Arc<quiver_embed::MiniLm>>>>,
    /// Documents are queued and embedded in batches (see [`embed_queue`]).
    pub embeds: Arc<embed_queue::EmbedQueue>,
    /// The largest request body (also what strict mode's check may read).
    pub body_bytes_max: usize,
}

/// The application: routes, auth, metrics and limits; the error of
/// [`ServerConfig::validate`] for a configuration it refuses.
pub fn router(db: Arc<Database>, config: &ServerConfig) -> Result<Router, String> {
    config.validate()?;
    let cors = guard::cors(&config.cors_origins)?;
    let state = AppState {
        db: db.clone(),
        metrics: Arc::new({
            let m = metrics::Metrics::default();
            m.start();
            m
        }),
        auth: Arc::new(auth::Auth::new(config.api_key.clone(), config.read_only_api_key.clone())),
        searches: Arc::new(batcher::Batcher::start(db.clone())),
        embedder: Arc::new(std::sync::Mutex::new(std::collections::HashMap::new())),
        embeds: Arc::new(embed_queue::EmbedQueue::start()),
        body_bytes_max: config.body_bytes_max,
    };
    Ok(api::routes()
        .merge(dashboard::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), strict::gate))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::check))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::record))
        .layer(axum::middleware::from_fn(guard::json_bodies))
        .layer(DefaultBodyLimit::max(config.body_bytes_max))
        .layer(cors)
        .with_state(state))
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish
/// (every write they acknowledge is already durable: the library fsyncs before returning).
/// Prints `quiver serving on URL` on stdout once listening (scripts and tests wait for it),
/// then the dashboard's address.
pub async fn serve(db: Arc<Database>, config: ServerConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let app = router(db, &config).map_err(std::io::Error::other)?;
    if let Some(w) = config.exposure_warning() {
        // On stderr whether or not the embedding program set up logging.
        eprintln!("{w}");
    }
    let handle = axum_server::Handle::new();
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let announcer = handle.clone();
    tokio::spawn(async move {
        if let Some(addr) = announcer.listening().await {
            announce(scheme, addr);
        }
    });
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(None);
    });
    let service = app.into_make_service();
    let plain = listen::Limited::new(config.connections_max, axum_server::accept::DefaultAcceptor);
    match &config.tls {
        None => {
            let mut server = axum_server::bind(config.addr).acceptor(plain).handle(handle);
            server.http_builder().http1().header_read_timeout(config.header_timeout);
            server.serve(service).await
        }
        Some(tls) => {
            // rustls with the ring provider: no C toolchain beyond what `ring` builds itself.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let rustls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("TLS certificate {} / key {}: {e}", tls.cert.display(), tls.key.display()),
                    )
                })?;
            let acceptor = listen::Limited::new(config.connections_max, axum_server::tls_rustls::RustlsAcceptor::new(rustls));
            let mut server = axum_server::bind(config.addr).acceptor(acceptor).handle(handle);
            server.http_builder().http1().header_read_timeout(config.header_timeout);
            server.serve(service).await
        }
    }
}

fn announce(scheme: &str, addr: SocketAddr) {
    use std::io::Write;
    tracing::info!(%addr, scheme, "quiver listening");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "quiver serving on {scheme}://{addr}");
    let _ = writeln!(out, "dashboard: {scheme}://{addr}/dashboard/");
    let _ = out.flush();
}
