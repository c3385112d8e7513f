//! The running gateway: listeners bound first (port 0 works, the ports are
//! reported), then gRPC (service, health, reflection), the HTTP listener and,
//! in local mode, the embedded emulator, all stopped by one shutdown signal.
//!
//! Shutdown drains: at the signal new calls are refused with `DRAINING`
//! (the gRPC server still answers, so the refusal carries its details),
//! health turns NOT_SERVING and WatchEvents streams end. Once the calls in
//! flight are done, or the grace period is over, every gRPC connection gets
//! a GOAWAY and those still in their handshake are closed; at the end of the
//! grace period whatever is still open is closed.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::Router as GrpcRouter;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;
use tonic_web::GrpcWebLayer;
use tower::layer::util::{Identity, Stack};
use tower_http::cors::CorsLayer;

use crate::db::{CacheOptions, Database};
use crate::emulator::{Emulator, EmulatorConfig, WebhookTarget};
use crate::filestack::{FilestackClient, FilestackConfig};
use crate::gateway::Gateway;
use crate::gateway::admission::{UploadAdmission, UploadBuffers};
use crate::gateway::auth::{Authenticator, JwtKey};
use crate::gateway::compression;
use crate::gateway::deadline::DeadlineLayer;
use crate::gateway::events::{self, EventFeed};
use crate::gateway::grpc_web;
use crate::gateway::http::serve_http;
use crate::gateway::listener::{self, Connections, GuardedListener, Handshake, ListenerLimits};
use crate::gateway::local_page::LocalPage;
use crate::gateway::metrics::{GaugeSources, GrpcMetricsLayer, Metrics};
use crate::gateway::service::GatewayService;
use crate::gateway::settings::{LOCAL_API_KEY, Settings};
use crate::gateway::tls::{ServedListener, ServedStream, Tls};
use crate::gateway::upload::MAX_CHUNK_BYTES;
use crate::gateway::webhooks::{WEBHOOK_PATH, WebhookReceiver};
use crate::pb;
use crate::pb::v1::file_gateway_service_server::FileGatewayServiceServer;
use crate::secret::Secret;

/// Largest gRPC message the gateway accepts: one upload chunk plus room for
/// the spec and framing.
pub const MAX_MESSAGE_BYTES: usize = MAX_CHUNK_BYTES + 1024 * 1024;

/// HTTP/2 flow-control window of one stream: how much a client may send
/// ahead of what the gateway has read. Large enough that one upload stream
/// is not throttled by round trips (the default 64 KiB to 1 MiB windows
/// cap one stream far below the Filestack path), and counted in each
/// upload's memory reservation.
pub const STREAM_WINDOW_BYTES: u32 = 2 * 1024 * 1024;

/// What an upload reserves beyond its parts: one message and its window.
pub const UPLOAD_OVERHEAD_BYTES: u64 = MAX_MESSAGE_BYTES as u64 + STREAM_WINDOW_BYTES as u64;

/// Largest HTTP/2 frame a client may send. Every DATA frame costs the
/// connection task a parse and the upload task a wake-up: with HTTP/2's
/// default 16 KiB, a 256 MiB upload is 16 384 of each. 64 KiB frames cut the
/// gateway's CPU per GiB uploaded by about a tenth (`cargo bench --bench
/// filegate`). Peak memory under many concurrent uploads grows with the
/// frame size (likely because a frame queued for a stream that waits for
/// admission keeps alive the read buffer it was cut from): 256 KiB frames
/// added 36 MiB to 32 concurrent uploads; with 64 KiB frames they stayed
/// within the budget's 32 MiB margin.
pub const MAX_FRAME_BYTES: u32 = 64 * 1024;

/// Concurrent streams (calls) on one HTTP/2 connection; a client opening
/// more waits for one to finish. Far above what a client holds at once: a
/// WatchEvents stream lasts as long as its caller wants, and every stream
/// it holds is one fewer for the channel's other calls.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 1024;

/// Uploads running at once on one connection (waiting for admission or
/// admitted); the next one is refused with RESOURCE_EXHAUSTED before its
/// data is read. A client wanting more opens another channel.
pub const MAX_UPLOADS_PER_CONNECTION: usize = 16;

/// HTTP/2 window of one connection, shared by its streams. It holds the
/// full window of every upload the connection may run, so uploads waiting
/// for admission (whose unread bytes sit in their windows) can never starve
/// an admitted upload on the same connection. It bounds the unread bytes
/// per connection.
pub const CONNECTION_WINDOW_BYTES: u32 = MAX_UPLOADS_PER_CONNECTION as u32 * STREAM_WINDOW_BYTES;

/// Open files the process keeps for itself besides client connections and
/// Filestack connections: the listeners, the database pool, SQLite files,
/// the runtime.
const RESERVED_DESCRIPTORS: u64 = 256;

/// After the grace period, how long the closed connections get to wind
/// down before the gateway exits without them.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A bound, not yet serving, gateway.
pub struct Application {
    grpc: TcpListener,
    http: TcpListener,
    grpc_connections: Connections,
    http_connections: Connections,
    gateway: Arc<Gateway>,
    webhooks: WebhookReceiver,
    emulator: Option<Emulator>,
    emulator_url: Option<String>,
    db: Database,
    shutdown_grace: Duration,
    /// Who may call with gRPC-Web from a browser.
    cors: CorsLayer,
    /// Local mode's page, on the HTTP listener.
    page: Option<LocalPage>,
    metrics: Arc<Metrics>,
    /// TLS of the gRPC listener; `None`: plaintext.
    tls: Option<Tls>,
    /// TLS of the HTTP listener (`--http-tls`); `None`: plaintext.
    http_tls: Option<Tls>,
    /// `http` or `https`: the HTTP listener's scheme.
    http_scheme: &'static str,
}

impl Application {
    /// Connects to the database, binds every listener and, in local mode,
    /// the emulator.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let args = &settings.args;
        let grpc = TcpListener::bind(args.grpc_listen).await?;
        let http = TcpListener::bind(args.http_listen).await?;
        let mut origins = args.grpc_web_origins.clone();
        if settings.is_local() {
            origins.extend(own_page_origins(http.local_addr()?, http_scheme(&settings)));
        }
        let cors = grpc_web::cors(&origins)?;
        let (mut filestack_config, emulator) = match &settings.local_app_secret {
            Some(app_secret) => {
                let config = EmulatorConfig {
                    data_dir: args.data_dir.join("emulator"),
                    api_key: LOCAL_API_KEY.to_owned(),
                    app_secret: app_secret.clone(),
                    security: true,
                    webhook: if args.local_webhooks {
                        own_webhook(&http, settings.webhook_secret.as_ref())?
                    } else {
                        None
                    },
                };
                let emulator = Emulator::bind(args.emulator_listen, config).await?;
                let config = FilestackConfig::emulator(
                    &emulator.base_url(),
                    LOCAL_API_KEY,
                    app_secret.clone(),
                );
                (config, Some(emulator))
            }
            None => {
                let mut config = FilestackConfig::new(
                    args.filestack_api_key.clone().unwrap_or_default(),
                    args.filestack_app_secret
                        .clone()
                        .unwrap_or_else(|| crate::secret::Secret::new("")),
                );
                config.api_url = args.filestack_api_url.clone();
                config.upload_url = args.filestack_upload_url.clone();
                config.cdn_url = args.filestack_cdn_url.clone();
                (config, None)
            }
        };
        filestack_config.part_size = args.part_size;
        filestack_config.parts_in_flight = args.parts_in_flight;
        filestack_config.request_timeout = Duration::from_secs(args.filestack_timeout_secs);
        let buffers = UploadBuffers {
            part_size: args.part_size as u64,
            parts_in_flight: args.parts_in_flight as u64,
            overhead: UPLOAD_OVERHEAD_BYTES,
        };
        let mut metrics = Metrics::new(&[
            pb::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ]);
        let admission = UploadAdmission::new(
            args.max_concurrent_uploads,
            args.upload_memory_budget_bytes,
            buffers,
            Duration::from_secs(args.upload_admission_timeout_secs),
        )?
        .with_metrics(metrics.gateway.clone());
        let filestack =
            FilestackClient::new(filestack_config)?.with_metrics(metrics.filestack.clone());
        let auth = Authenticator::start(
            &settings.jwt_key,
            args.jwt_issuer.as_deref(),
            args.jwt_audience.as_deref(),
            metrics.gateway.clone(),
        )
        .await?;
        let cache = CacheOptions {
            entries: settings.args.document_cache_entries,
            ttl: Duration::from_secs(settings.args.document_cache_ttl_secs),
        };
        let db = Database::connect_with(&settings.database_url, cache).await?;
        let emulator_url = emulator.as_ref().map(Emulator::base_url);
        let gateway = Arc::new(
            Gateway::new(
                db.clone(),
                filestack,
                auth,
                settings.limits.clone(),
                admission,
                EventFeed::new(settings.watch),
            )
            .with_metrics(metrics.gateway.clone()),
        );
        let max_connections = listener::fit_to_descriptors(
            settings.listeners.max_connections,
            2,
            listener::raise_descriptor_limit(),
            reserved_descriptors(&settings),
        );
        let limits = ListenerLimits {
            max_connections,
            ..settings.listeners
        };
        let tls = settings
            .tls
            .as_ref()
            .map(|files| Tls::load(files, limits.handshake_timeout))
            .transpose()?;
        let http_tls = match &tls {
            Some(tls) if settings.args.http_tls => Some(tls.for_http()?),
            _ => None,
        };
        let grpc_scheme = if tls.is_some() { "https" } else { "http" };
        let webhooks = WebhookReceiver::new(
            settings.webhook_secret.clone(),
            Duration::from_secs(args.webhook_max_age_secs),
            args.webhook_max_body_bytes,
            db.clone(),
            gateway.events.clone(),
        )
        .waking(gateway.reaper.clone())
        .counting(metrics.gateway.clone());
        let page = emulator_url.clone().map(|filestack_url| LocalPage {
            grpc_web_url: format!("{grpc_scheme}://{}", grpc.local_addr().expect("bound")),
            filestack_url,
            minting_secret: match &settings.jwt_key {
                JwtKey::Hmac(secret) => Some(secret.clone()),
                JwtKey::Rsa(_) | JwtKey::Ecdsa(_) | JwtKey::Jwks(_) => None,
            },
        });
        let grpc_connections = Connections::new(limits);
        let http_connections = Connections::new(limits);
        metrics.register_gauges(GaugeSources {
            admission: gateway.admission.clone(),
            db: db.clone(),
            grpc: grpc_connections.clone(),
            http: http_connections.clone(),
        });
        Ok(Application {
            grpc,
            http,
            grpc_connections,
            http_connections,
            gateway,
            webhooks,
            emulator,
            emulator_url,
            db,
            shutdown_grace: Duration::from_secs(settings.args.shutdown_grace_secs),
            cors,
            page,
            metrics: Arc::new(metrics),
            tls,
            http_tls,
            http_scheme: http_scheme(&settings),
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Whether the gRPC listener serves TLS.
    pub fn grpc_uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address of local mode's page.
    pub fn page_url(&self) -> Option<String> {
        self.page
            .as_ref()
            .map(|_| format!("{}://{}/", self.http_scheme, self.http_addr()))
    }

    /// The embedded emulator's base URL, in local mode.
    pub fn emulator_url(&self) -> Option<&str> {
        self.emulator_url.as_deref()
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Serves until `shutdown` completes, then drains (see the module doc):
    /// calls in flight get `--shutdown-grace-secs` to finish. The HTTP
    /// listener and the embedded emulator stop last, so in-flight uploads can
    /// still reach the emulator while draining.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            grpc,
            http,
            grpc_connections,
            http_connections,
            gateway,
            webhooks,
            emulator,
            db,
            shutdown_grace,
            cors,
            page,
            metrics,
            tls,
            http_tls,
            ..
        } = self;
        let (mut reporter, health) = tonic_health::server::health_reporter();
        set_health(&reporter, ServingStatus::Serving).await;
        // The reaper stops at the signal; the relay, the HTTP listener and
        // the emulator once the gRPC server is done.
        let stop = CancellationToken::new();
        let stopped = CancellationToken::new();
        let emulator = emulator.map(|emulator| {
            let stopped = stopped.clone();
            tokio::spawn(async move {
                emulator
                    .serve(async move { stopped.cancelled().await })
                    .await
            })
        });
        // Settle what a dead process left in the journal before serving
        // (the emulator, in local mode, is already up).
        reap_once(&gateway).await;
        let reaper = tokio::spawn(reap_every_minute(gateway.clone(), stop.clone()));
        let jwks = gateway
            .auth
            .jwks()
            .map(|jwks| tokio::spawn(jwks.refresh_every(stop.clone())));
        let relay = tokio::spawn(events::relay(
            db.clone(),
            gateway.events.clone(),
            stopped.clone(),
        ));
        let handshake = if http_tls.is_some() {
            Handshake::TlsRecord
        } else {
            Handshake::RequestHead
        };
        let http_listener = ServedListener::new(
            GuardedListener::new(http, handshake, http_connections.clone()),
            http_tls,
        );
        let mut http = tokio::spawn(serve_http(
            http_listener,
            db.clone(),
            webhooks,
            metrics.clone(),
            stopped.clone(),
            page,
        ));
        // Small responses go out at once: with Nagle's algorithm, a response
        // written while an earlier one is unacknowledged waits for the peer's
        // delayed ACK (40 ms).
        let listener =
            GuardedListener::new(grpc, Handshake::Http2Preface, grpc_connections.clone())
                .with_nodelay();
        let incoming = match &tls {
            Some(tls) => tls.incoming(listener, grpc_connections.max()).boxed(),
            None => listener.into_incoming().map_ok(ServedStream::Plain).boxed(),
        };
        let tls_watch = tls.map(|tls| tokio::spawn(tls.watch(stop.clone())));
        let goaway = CancellationToken::new();
        let server = grpc_server(gateway.clone(), health, cors, metrics.grpc_layer())?
            .serve_with_incoming_shutdown(incoming, goaway.clone().cancelled_owned());
        tokio::pin!(server, shutdown);
        let served = tokio::select! {
            result = &mut server => { result?; true }
            () = &mut shutdown => false,
        };

        tracing::info!("shutting down: draining");
        let grace = tokio::time::sleep(shutdown_grace);
        tokio::pin!(grace);
        gateway.start_draining();
        set_health(&reporter, ServingStatus::NotServing).await;
        stop.cancel();
        if !served {
            let grpc = Draining {
                gateway: &gateway,
                connections: &grpc_connections,
                goaway: &goaway,
                grace: grace.as_mut(),
            };
            grpc.drain(server, &mut reporter).await?;
        }
        stopped.cancel();
        reaper.await?;
        if let Some(tls_watch) = tls_watch {
            tls_watch.await?;
        }
        if let Some(jwks) = jwks {
            jwks.await?;
        }
        relay.await?;
        tokio::select! {
            result = &mut http => result??,
            () = &mut grace => {
                http_connections.close_all();
                match tokio::time::timeout(CLOSE_WAIT, &mut http).await {
                    Ok(result) => result??,
                    Err(_) => http.abort(),
                }
            }
        }
        if let Some(emulator) = emulator {
            emulator.await??;
        }
        db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The gRPC server's part of shutdown, after draining began.
struct Draining<'a> {
    gateway: &'a Gateway,
    connections: &'a Connections,
    goaway: &'a CancellationToken,
    grace: Pin<&'a mut tokio::time::Sleep>,
}

impl Draining<'_> {
    /// Waits for the calls in flight (the server still answers, refusing
    /// new calls with `DRAINING`), then sends every connection a GOAWAY,
    /// which closes the listener and every connection still in its
    /// handshake, and ends health watches; then waits for the connections
    /// to close. At the end of the grace period, closes what is left.
    async fn drain<F>(
        mut self,
        mut server: Pin<&mut F>,
        reporter: &mut HealthReporter,
    ) -> anyhow::Result<()>
    where
        F: Future<Output = Result<(), tonic::transport::Error>>,
    {
        tokio::select! {
            result = server.as_mut() => return Ok(result?),
            () = self.gateway.calls_done() => {}
            () = self.grace.as_mut() => tracing::warn!(
                calls = self.gateway.drain.calls(),
                "grace period over with calls in flight"
            ),
        }
        self.goaway.cancel();
        reporter.clear_service_status(SERVICE_NAME).await;
        reporter.clear_service_status("").await;
        tokio::select! {
            result = server.as_mut() => Ok(result?),
            () = self.grace.as_mut() => {
                tracing::warn!(
                    open = self.connections.open(),
                    "grace period over: closing the remaining connections"
                );
                self.connections.close_all();
                match tokio::time::timeout(CLOSE_WAIT, server).await {
                    Ok(result) => Ok(result?),
                    Err(_) => Ok(()),
                }
            }
        }
    }
}

/// The name health reports `FileGatewayService` under.
const SERVICE_NAME: &str = <FileGatewayServiceServer<GatewayService> as NamedService>::NAME;

/// The status of the server (`""`) and of `FileGatewayService`.
async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status(SERVICE_NAME, status).await;
    reporter.set_service_status("", status).await;
}

/// The layers of the gRPC server, outermost first: CORS, gRPC-Web
/// translation, metrics, uncompressed streams, the caller's deadline.
type GrpcLayers = Stack<
    DeadlineLayer,
    Stack<
        compression::PlainStreamingResponses,
        Stack<GrpcMetricsLayer, Stack<GrpcWebLayer, Stack<CorsLayer, Identity>>>,
    >,
>;

/// The origins of the page local mode serves on its HTTP listener.
fn own_page_origins(http: SocketAddr, scheme: &str) -> Vec<String> {
    let mut origins = vec![format!("{scheme}://{http}")];
    if http.ip().is_loopback() {
        origins.push(format!("{scheme}://localhost:{}", http.port()));
    }
    origins
}

/// The scheme of the HTTP listener.
fn http_scheme(settings: &Settings) -> &'static str {
    if settings.args.http_tls && settings.tls.is_some() {
        "https"
    } else {
        "http"
    }
}

/// The gRPC server: the gateway's service, health and reflection, with the
/// HTTP/2 settings above, and gRPC-Web (HTTP/1.1 too) for browsers.
fn grpc_server(
    gateway: Arc<Gateway>,
    health: HealthServer<impl Health>,
    cors: CorsLayer,
    metrics: GrpcMetricsLayer,
) -> anyhow::Result<GrpcRouter<GrpcLayers>> {
    let mut service = FileGatewayServiceServer::new(GatewayService::new(gateway))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut health = health;
    let mut reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let mut reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    // Every service takes compressed requests: a channel with compression on
    // compresses its health checks and reflection calls too.
    for encoding in compression::ENCODINGS {
        service = service
            .accept_compressed(encoding)
            .send_compressed(encoding);
        health = health.accept_compressed(encoding);
        reflection_v1 = reflection_v1.accept_compressed(encoding);
        reflection_v1alpha = reflection_v1alpha.accept_compressed(encoding);
    }
    Ok(Server::builder()
        .accept_http1(true)
        .layer(cors)
        .layer(GrpcWebLayer::new())
        .layer(metrics)
        .layer(compression::plain_streaming_responses_layer())
        .layer(DeadlineLayer)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .initial_stream_window_size(Some(STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(CONNECTION_WINDOW_BYTES))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .max_frame_size(Some(MAX_FRAME_BYTES))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service))
}

/// Open files kept for everything but client connections: the process's
/// own, and one Filestack connection per part in flight of every upload,
/// plus one idle per upload (in local mode the emulator's end of each is in
/// this process too).
fn reserved_descriptors(settings: &Settings) -> u64 {
    let args = &settings.args;
    let ends = if settings.is_local() { 2 } else { 1 };
    let filestack = (args.max_concurrent_uploads as u64)
        .saturating_mul(args.parts_in_flight as u64 + 1)
        .saturating_mul(ends);
    RESERVED_DESCRIPTORS.saturating_add(filestack)
}

/// Where the embedded emulator delivers its webhooks: this gateway's own
/// endpoint, signed with the local webhook secret.
fn own_webhook(
    http: &TcpListener,
    secret: Option<&Secret>,
) -> anyhow::Result<Option<WebhookTarget>> {
    let Some(secret) = secret else {
        return Ok(None);
    };
    let mut addr = http.local_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok(Some(WebhookTarget {
        url: format!("http://{addr}{WEBHOOK_PATH}"),
        secret: secret.clone(),
    }))
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

async fn reap_once(gateway: &Gateway) {
    match gateway.reap_upload_journal().await {
        Ok(0) => {}
        Ok(settled) => tracing::info!(settled, "upload journal reaped"),
        Err(error) => tracing::warn!(%error, "could not reap the upload journal"),
    }
}

/// A reaper pass every minute, and one as soon as an upload or a webhook
/// leaves an entry that can be settled.
async fn reap_every_minute(gateway: Arc<Gateway>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(Duration::from_secs(60));
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => reap_once(&gateway).await,
            () = gateway.reaper.rung() => reap_once(&gateway).await,
            () = stop.cancelled() => return,
        }
    }
}
