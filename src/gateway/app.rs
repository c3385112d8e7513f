//! The running gateway: listeners bound first (port 0 works, the ports are
//! reported), then gRPC (service, health, reflection), the HTTP listener and,
//! in local mode, the embedded emulator, all stopped by one shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::db::{CacheOptions, Database};
use crate::emulator::{Emulator, EmulatorConfig, WebhookTarget};
use crate::filestack::{FilestackClient, FilestackConfig};
use crate::gateway::Gateway;
use crate::gateway::admission::UploadAdmission;
use crate::gateway::auth::Authenticator;
use crate::gateway::events;
use crate::gateway::service::GatewayService;
use crate::gateway::settings::{LOCAL_API_KEY, Settings};
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
/// more waits for one to finish.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 16;

/// HTTP/2 window of one connection, shared by its streams. It holds every
/// stream's full window, so uploads waiting for admission (whose unread
/// bytes sit in their windows) can never starve an admitted upload on the
/// same connection. It bounds the unread bytes per connection.
pub const CONNECTION_WINDOW_BYTES: u32 = MAX_STREAMS_PER_CONNECTION * STREAM_WINDOW_BYTES;

/// A bound, not yet serving, gateway.
pub struct Application {
    grpc: TcpListener,
    http: TcpListener,
    gateway: Arc<Gateway>,
    webhooks: WebhookReceiver,
    emulator: Option<Emulator>,
    emulator_url: Option<String>,
    db: Database,
    shutdown_grace: Duration,
}

impl Application {
    /// Connects to the database, binds every listener and, in local mode,
    /// the emulator.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let args = &settings.args;
        let grpc = TcpListener::bind(args.grpc_listen).await?;
        let http = TcpListener::bind(args.http_listen).await?;
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
        let per_upload =
            (args.part_size as u64) * (args.parts_in_flight as u64 + 1) + UPLOAD_OVERHEAD_BYTES;
        let admission = UploadAdmission::new(
            args.max_concurrent_uploads,
            args.upload_memory_budget_bytes,
            per_upload,
            Duration::from_secs(args.upload_admission_timeout_secs),
        )?;
        let filestack = FilestackClient::new(filestack_config)?;
        let auth = Authenticator::new(
            &settings.jwt_key,
            args.jwt_issuer.as_deref(),
            args.jwt_audience.as_deref(),
        )?;
        let cache = CacheOptions {
            entries: settings.args.document_cache_entries,
            ttl: Duration::from_secs(settings.args.document_cache_ttl_secs),
        };
        let db = Database::connect_with(&settings.database_url, cache).await?;
        let emulator_url = emulator.as_ref().map(Emulator::base_url);
        let gateway = Arc::new(Gateway::new(
            db.clone(),
            filestack,
            auth,
            settings.limits.clone(),
            admission,
        ));
        let webhooks = WebhookReceiver::new(
            settings.webhook_secret.clone(),
            Duration::from_secs(args.webhook_max_age_secs),
            args.webhook_max_body_bytes,
            db.clone(),
            gateway.events.clone(),
        )
        .waking(gateway.reaper.clone());
        Ok(Application {
            grpc,
            http,
            gateway,
            webhooks,
            emulator,
            emulator_url,
            db,
            shutdown_grace: Duration::from_secs(settings.args.shutdown_grace_secs),
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

    /// The embedded emulator's base URL, in local mode.
    pub fn emulator_url(&self) -> Option<&str> {
        self.emulator_url.as_deref()
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Serves until `shutdown` completes: health turns NOT_SERVING at once
    /// and new connections are refused; in-flight calls get the grace period
    /// to finish, then the remaining connections are closed. The HTTP
    /// listener and the embedded emulator stop last, so in-flight uploads can
    /// still reach the emulator while draining.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_serving::<FileGatewayServiceServer<GatewayService>>()
            .await;
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        let draining = {
            let stop = stop.clone();
            let gateway = self.gateway.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down: draining");
                gateway.start_draining();
                reporter
                    .set_not_serving::<FileGatewayServiceServer<GatewayService>>()
                    .await;
                reporter
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
                stop.cancel();
            }
        };
        tokio::spawn(draining);
        let stopped = CancellationToken::new();
        let emulator = self.emulator.map(|emulator| {
            let stopped = stopped.clone();
            tokio::spawn(async move {
                emulator
                    .serve(async move { stopped.cancelled().await })
                    .await
            })
        });
        // Settle what a dead process left in the journal before serving
        // (the emulator, in local mode, is already up).
        reap_once(&self.gateway).await;
        let reaper = tokio::spawn(reap_every_minute(self.gateway.clone(), stop.clone()));
        let relay = tokio::spawn(events::relay(
            self.db.clone(),
            self.gateway.events.clone(),
            stop.clone(),
        ));
        let http = tokio::spawn(serve_http(
            self.http,
            self.db.clone(),
            self.webhooks,
            self.gateway.admission.clone(),
            stopped.clone(),
        ));
        let service = FileGatewayServiceServer::new(GatewayService::new(self.gateway))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let grpc_stop = stop.clone();
        let server = Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .initial_stream_window_size(Some(STREAM_WINDOW_BYTES))
            .initial_connection_window_size(Some(CONNECTION_WINDOW_BYTES))
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
            .max_frame_size(Some(MAX_FRAME_BYTES))
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service)
            // Small responses go out at once: with Nagle's algorithm, a
            // response written while an earlier one is unacknowledged waits
            // for the peer's delayed ACK (40 ms).
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.grpc).with_nodelay(Some(true)),
                async move { grpc_stop.cancelled().await },
            );
        let grace = self.shutdown_grace;
        let grace_over = async {
            stop.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = server => result?,
            () = grace_over => {
                tracing::warn!(grace_secs = grace.as_secs(), "grace period over: closing the remaining connections");
            }
        }
        stop.cancel();
        stopped.cancel();
        reaper.await?;
        relay.await?;
        http.await??;
        if let Some(emulator) = emulator {
            emulator.await??;
        }
        self.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
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

async fn serve_http(
    listener: TcpListener,
    db: Database,
    webhooks: WebhookReceiver,
    admission: UploadAdmission,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let ready_db = db.clone();
    let metrics_db = db.clone();
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || async move { metrics(&admission, &metrics_db) }),
        )
        .route(
            "/readyz",
            get(move || {
                let db = ready_db.clone();
                async move {
                    if db.ping().await {
                        (axum::http::StatusCode::OK, "ready")
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "database unavailable",
                        )
                    }
                }
            }),
        )
        .merge(webhooks.router());
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    Ok(())
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

/// Prometheus text exposition of the upload gauges.
fn metrics(admission: &UploadAdmission, db: &Database) -> String {
    let gauge = admission.gauge();
    let cache = db.cache_stats();
    format!(
        "# HELP filegate_uploads_active Uploads in progress.\n\
         # TYPE filegate_uploads_active gauge\n\
         filegate_uploads_active {}\n\
         # HELP filegate_upload_buffer_reserved_bytes Upload buffer budget reserved by uploads in progress.\n\
         # TYPE filegate_upload_buffer_reserved_bytes gauge\n\
         filegate_upload_buffer_reserved_bytes {}\n\
         # HELP filegate_upload_buffer_budget_bytes The configured upload buffer budget.\n\
         # TYPE filegate_upload_buffer_budget_bytes gauge\n\
         filegate_upload_buffer_budget_bytes {}\n\
         # HELP filegate_document_cache_hits_total Document reads served from the cache.\n\
         # TYPE filegate_document_cache_hits_total counter\n\
         filegate_document_cache_hits_total {}\n\
         # HELP filegate_document_cache_misses_total Document reads that went to the database.\n\
         # TYPE filegate_document_cache_misses_total counter\n\
         filegate_document_cache_misses_total {}\n\
         # HELP filegate_document_cache_entries Document rows in the cache.\n\
         # TYPE filegate_document_cache_entries gauge\n\
         filegate_document_cache_entries {}\n\
         # HELP filegate_document_cache_live Whether the document cache serves rows (PostgreSQL: while listening for other replicas' changes).\n\
         # TYPE filegate_document_cache_live gauge\n\
         filegate_document_cache_live {}\n",
        gauge.active_uploads,
        gauge.reserved_bytes,
        gauge.budget_bytes,
        cache.hits,
        cache.misses,
        cache.entries,
        u8::from(cache.live)
    )
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
