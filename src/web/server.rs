//! The HTTP server: a thread of its own with a single-threaded tokio
//! runtime, hyper's HTTP/1 connections with capped headers (16 KiB, 64
//! headers, 10 s to send them), at most 32 connections, bodies capped at
//! 8 KiB, basic auth checked in constant time on every request when a
//! password file is set, and security headers on every response.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{api, metrics, pages, AppState, HttpConfig};
use crate::exit::{self, CodedError};
use crate::live::Live;
use crate::review::store::Store;

/// Largest request body (a sorting form is well under 1 KiB).
pub const MAX_BODY: usize = 8 * 1024;
/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 64;
/// Most connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 32;

/// The peer's address, as a request extension (for the log).
#[derive(Debug, Clone, Copy)]
pub struct Peer(
    /// The address.
    pub SocketAddr,
);

/// Basic auth: the user name and password, kept as SHA-256 digests and
/// compared in constant time. Never logged.
pub struct Auth {
    user: [u8; 32],
    password: [u8; 32],
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(..)")
    }
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

impl Auth {
    /// The user `user` with the password on the first line of `path`.
    ///
    /// # Errors
    /// A message naming the file and the fix.
    pub fn from_file(user: &str, path: &Path) -> Result<Auth, String> {
        let text = crate::read::read_text(path).map_err(|e| {
            format!(
                "[http] password_file {}: {e}; write the dashboard's password into it (readable by camtrapd only)",
                path.display()
            )
        })?;
        let password = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if password.len() < 8 {
            return Err(format!(
                "[http] password_file {}: the password on its first line has {} characters; use at least 8",
                path.display(),
                password.len()
            ));
        }
        Ok(Auth {
            user: digest(user.as_bytes()),
            password: digest(password.as_bytes()),
        })
    }

    /// Whether an `Authorization` header carries the right user and
    /// password (both compared in constant time).
    pub fn check(&self, header: Option<&HeaderValue>) -> bool {
        let Some(creds) = header
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
        else {
            return false;
        };
        let (user, password) = match creds.iter().position(|&b| b == b':') {
            Some(i) => (&creds[..i], &creds[i + 1..]),
            None => (&creds[..], &[][..]),
        };
        let ok = digest(user).ct_eq(&self.user) & digest(password).ct_eq(&self.password);
        ok.into()
    }
}

/// Auth (when configured) and the security headers.
async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(auth) = &st.auth {
        if !auth.check(req.headers().get(header::AUTHORIZATION)) {
            let peer = req
                .extensions()
                .get::<Peer>()
                .map_or("?".to_string(), |p| p.0.to_string());
            if req.headers().contains_key(header::AUTHORIZATION) {
                log::warn!("dashboard: wrong user or password from {peer}");
            }
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"camtrapd\", charset=\"UTF-8\"",
                )],
                "user name and password needed\n",
            )
                .into_response();
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (k, v) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::status))
        .route("/events", get(pages::events))
        .route("/review", get(pages::review))
        .route("/review/{id}", post(pages::sort))
        .route("/img/latest.jpg", get(pages::latest_jpeg))
        .route("/img/review/{id}", get(pages::review_jpeg))
        .route("/img/event/{id}", get(pages::event_jpeg))
        .route("/metrics", get(metrics::metrics))
        .route("/api/status", get(api::status))
        .route("/api/events", get(api::events))
        .route("/api/review", get(api::review))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page\n") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// 32 random bytes as hex, from the kernel.
fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Starts the dashboard: reads the password file, binds the address (so
/// that errors come before the first frame) and serves on a thread of its
/// own. Returns the bound address.
///
/// # Errors
/// [`CodedError`] with exit 78 for an unusable setting (no password for a
/// non-loopback address, an unreadable password file) or an address that
/// cannot be bound.
pub fn start(
    cfg: &HttpConfig,
    base_dir: &Path,
    live: Arc<Live>,
    store: Option<Arc<Store>>,
) -> anyhow::Result<SocketAddr> {
    let config_err = |m: String| CodedError(exit::CONFIG, m);
    cfg.check()
        .map_err(|(field, m)| config_err(format!("`{field}`: {m}")))?;
    let addr = cfg.addr().map_err(config_err)?;
    let auth = match &cfg.password_file {
        Some(p) => {
            let p = base_dir.join(p);
            if let Some(w) = crate::read::secret_exposure(&p, "dashboard password file") {
                log::warn!("{w}");
            }
            Some(Arc::new(
                Auth::from_file(&cfg.user, &p).map_err(config_err)?,
            ))
        }
        None => None,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        config_err(format!(
            "[http] listen = {:?}: cannot listen there: {e}; choose another port or address",
            cfg.listen
        ))
    })?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let state = AppState {
        live,
        store,
        auth,
        csrf: Arc::new(random_token()?),
        train_data: cfg.train_data.as_ref().map(|p| base_dir.join(p)),
    };
    let app = router(state);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => serve(l, app).await,
                    Err(e) => log::error!("dashboard: {e}; the dashboard is off"),
                }
            })
        })?;
    log::info!(
        "dashboard on http://{bound}/{}",
        if cfg.password_file.is_some() {
            " (basic auth)"
        } else {
            ""
        }
    );
    Ok(bound)
}

async fn serve(listener: tokio::net::TcpListener, app: Router) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("dashboard: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(Peer(peer));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let mut b = hyper::server::conn::http1::Builder::new();
            b.max_buf_size(MAX_HEAD)
                .max_headers(MAX_HEADERS)
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            let conn = b.serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(Duration::from_secs(300), conn).await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_needs_both_user_and_password() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("pw");
        std::fs::write(&p, "correct horse\n").unwrap();
        let a = Auth::from_file("ranger", &p).unwrap();
        let h = |s: &str| {
            HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            ))
            .unwrap()
        };
        assert!(a.check(Some(&h("ranger:correct horse"))));
        assert!(!a.check(Some(&h("ranger:correct hors"))));
        assert!(!a.check(Some(&h("ranger:correct horse "))));
        assert!(!a.check(Some(&h("admin:correct horse"))));
        assert!(!a.check(Some(&h("ranger"))));
        assert!(!a.check(None));
        assert!(!a.check(Some(&HeaderValue::from_static("Bearer x"))));
        std::fs::write(&p, "short\n").unwrap();
        assert!(Auth::from_file("ranger", &p)
            .unwrap_err()
            .contains("at least 8"));
        // Debug never shows the digests.
        assert_eq!(format!("{a:?}"), "Auth(..)");
    }
}
