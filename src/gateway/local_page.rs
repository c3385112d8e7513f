//! Local mode's page: a small browser client of filegate (`web/`, bundled
//! into `web/dist/` and embedded here at compile time, so building and
//! running need no Node), served on the HTTP listener with what it needs to
//! start: where to call (gRPC-Web) and upload (the emulator), and tokens.
//!
//! Only in local mode: `/local/token` mints a token for any owner with the
//! local secret, which is what a developer trying filegate on their own
//! machine wants and what no deployment may serve.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::gateway::domain::OwnerId;
use crate::secret::Secret;

const INDEX_HTML: &str = include_str!("../../web/dist/index.html");
const APP_JS: &str = include_str!("../../web/dist/app.js");

/// How long a minted token is valid.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// What the page is told and can ask for.
#[derive(Debug, Clone)]
pub struct LocalPage {
    /// `http://host:port` of the gRPC listener (gRPC-Web).
    pub grpc_web_url: String,
    /// `http://host:port` of the embedded emulator (Filestack).
    pub filestack_url: String,
    /// The HS256 secret tokens are minted with; `None` when the gateway
    /// verifies with a public key (the page then asks for a token).
    pub minting_secret: Option<Secret>,
}

/// The page's routes: `/`, `/app.js`, `/local/config`, `/local/token`.
pub fn router(page: LocalPage) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/local/config", get(config))
        .route("/local/token", post(mint))
        .with_state(Arc::new(page))
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
}

async fn app_js() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/javascript; charset=utf-8",
        )],
        APP_JS,
    )
}

async fn config(State(page): State<Arc<LocalPage>>) -> Json<Value> {
    Json(json!({
        "grpc_web_url": page.grpc_web_url,
        "filestack_url": page.filestack_url,
    }))
}

#[derive(Deserialize)]
struct MintRequest {
    sub: String,
}

/// A token for `sub`: 404 when this gateway cannot mint, 400 for a `sub`
/// the gateway would refuse.
async fn mint(
    State(page): State<Arc<LocalPage>>,
    Json(request): Json<MintRequest>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let secret = page.minting_secret.as_ref().ok_or((
        StatusCode::NOT_FOUND,
        "this gateway verifies tokens with a public key: paste a token".to_owned(),
    ))?;
    let owner = OwnerId::parse(&request.sub).ok_or((
        StatusCode::BAD_REQUEST,
        "sub must be 1..128 characters of [A-Za-z0-9._@+-]".to_owned(),
    ))?;
    let token =
        crate::gateway::auth::mint_hs256(secret, owner.as_str(), TOKEN_TTL).map_err(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "minting failed".to_owned(),
            )
        })?;
    Ok(Json(json!({ "token": token })))
}
