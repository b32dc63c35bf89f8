//! The web dashboard (`[http]` in the config): a status page, an events
//! page and the review queue (server-rendered HTML, no JavaScript), the
//! Prometheus `/metrics` and JSON under `/api/`.
//!
//! | module | role |
//! | --- | --- |
//! | [`server`] | the HTTP server: its thread, size caps, basic auth, security headers |
//! | [`pages`] | the HTML pages and the review queue's sorting (CSRF-checked POST) |
//! | [`api`] | `/api/status`, `/api/events`, `/api/review` (JSON) |
//! | [`metrics`] | `/metrics` in the Prometheus text format |
//!
//! It is axum on a single-threaded tokio runtime of its own thread (tokio
//! is already in the build through rumqttc): requests never run on the
//! frame path, and the pipeline only hands it copies of its state
//! ([`crate::live`]). Frames are addressed by id only ([`crate::review::store`]).

pub mod api;
pub mod metrics;
pub mod pages;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::live::Live;
use crate::review::store::Store;

/// `[http]` in the config: the dashboard (off without this table).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on. Default `127.0.0.1:8080` (this
    /// machine only). Any other address needs `password_file`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A file holding the dashboard's password (its first line): turns on
    /// HTTP basic auth for every page. Relative to the config file's folder.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The user name of basic auth. Default `camtrapd`.
    #[serde(default = "default_user")]
    pub user: String,
    /// Your own training photos, shown in the review page's `camtrapd
    /// train` command beside the sorted folder.
    #[serde(default)]
    pub train_data: Option<PathBuf>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_user() -> String {
    "camtrapd".into()
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            password_file: None,
            user: default_user(),
            train_data: None,
        }
    }
}

impl HttpConfig {
    /// The listen address.
    ///
    /// # Errors
    /// A message saying what is allowed.
    pub fn addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "{:?} is not an address and port such as \"127.0.0.1:8080\" (host names are not looked up)",
                self.listen
            )
        })
    }

    /// Checks the address, and that a non-loopback address has a password.
    ///
    /// # Errors
    /// `(field, message)` naming the fix.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let addr = self.addr().map_err(|m| ("http.listen", m))?;
        if !addr.ip().is_loopback() && self.password_file.is_none() {
            return Err((
                "http.listen",
                format!(
                    "{addr} is reachable from other machines but no password is set, so anyone on the network could see the camera and sort its frames; set [http] password_file = \"/etc/camtrapd/dashboard.password\" (basic auth), or listen on 127.0.0.1:{}",
                    addr.port()
                ),
            ));
        }
        if self.user.is_empty() || self.user.contains(':') || self.user.len() > 64 {
            return Err((
                "http.user",
                format!("{:?}: use 1 to 64 characters without ':'", self.user),
            ));
        }
        Ok(())
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The pipeline's state.
    pub live: Arc<Live>,
    /// The review queue (review capture on).
    pub store: Option<Arc<Store>>,
    /// Basic auth (a password file is set).
    pub auth: Option<Arc<server::Auth>>,
    /// The CSRF token every form carries (random per start).
    pub csrf: Arc<String>,
    /// Your own photos, for the train command on the review page.
    pub train_data: Option<PathBuf>,
}
