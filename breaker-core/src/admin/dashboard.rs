//! `GET /`: the dashboard, one self-contained page (HTML, CSS and script
//! in `dashboard.html`, no external assets). It reads `breakers` and
//! `history`, follows `events`, and shows the buttons for manual
//! transitions only when the router has a token.

use axum::extract::State as Shared;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::State;

const PAGE: &str = include_str!("dashboard.html");

/// Where the page learns whether changes are allowed.
const MUTATIONS: &str = "data-mutations=\"no\"";

pub(super) async fn page(Shared(admin): Shared<State>) -> Response {
    let page = if admin.token.is_some() {
        PAGE.replacen(MUTATIONS, "data-mutations=\"yes\"", 1)
    } else {
        PAGE.to_owned()
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // The page runs its own inline script and talks to this origin
            // only; nothing else may load or run.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
            ),
        ],
        page,
    )
        .into_response()
}
