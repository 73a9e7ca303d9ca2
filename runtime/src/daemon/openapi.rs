//! The OpenAPI description of the API, generated from the handlers'
//! annotations and served at `/v1/openapi.json`.
//!
//! The committed copy, `runtime/openapi.json`, is checked against the
//! served one by a test; after changing the API, regenerate it with
//! `warden openapi > runtime/openapi.json`.

use axum::Json;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::api;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "warden",
        description = "The warden daemon: tenants, agents, their config and secrets, runs, \
                       approvals, audit logs and tokens. Every \
                       /v1 request needs a bearer token; a tenant role asking for another \
                       tenant's resource gets 404.",
    ),
    paths(
        api::healthz,
        api::readyz,
        api::metrics,
        api::tenants::list,
        api::tenants::create,
        api::agents::deploy,
        api::agents::list,
        api::agents::show,
        api::agents::remove,
        api::agent_config::list,
        api::agent_config::set,
        api::agent_config::unset,
        api::secrets::list,
        api::secrets::set,
        api::secrets::remove,
        api::runs::invoke,
        api::runs::show,
        api::approvals::list,
        api::approvals::decide,
        api::audit::events,
        api::audit::verify,
        api::audit::checkpoint,
        api::audit::proof,
        api::audit::export,
        api::tokens::create,
        api::tokens::list,
        api::tokens::revoke,
    ),
    modifiers(&BearerAuth),
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The description as pretty JSON, ending with a newline.
pub(crate) fn json() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode the API description: {e}\"}}"));
    text.push('\n');
    text
}

/// Serves the description.
pub(crate) async fn serve() -> Json<serde_json::Value> {
    Json(serde_json::to_value(ApiDoc::openapi()).unwrap_or(serde_json::Value::Null))
}
