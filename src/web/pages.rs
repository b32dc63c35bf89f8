//! The HTML pages (maud templates, escaped by default; no JavaScript): the
//! status page, the events page and the review queue, whose buttons file a
//! frame into the data set with one click (a POST carrying the CSRF
//! token). Images are served by id from memory or from the review queue.

use axum::extract::{Form, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::review::store::{self, Choice, Counters, StoreError};
use crate::review::Sidecar;

/// Frames shown on one review page.
const REVIEW_PAGE: usize = 24;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f0;color:#222}
nav{background:#2d4a2b;padding:.5em 1em;display:flex;gap:1em;flex-wrap:wrap}
nav a{color:#fff;text-decoration:none;font-weight:600}nav a.on{text-decoration:underline}
main{padding:1em;max-width:1200px;margin:auto}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .6em;text-align:left;border-bottom:1px solid #ddd}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:1em}
.card{background:#fff;border-radius:6px;padding:.6em;box-shadow:0 1px 3px #0002}
.card img,.latest{width:100%;height:auto;border-radius:4px;background:#ccc}
.latest{max-width:640px}
.on-line{color:#1a7f37;font-weight:700}.off-line{color:#b42318;font-weight:700}
.small{font-size:.85em;color:#555}
button{margin:.15em .1em;padding:.45em .6em;border:1px solid #888;border-radius:4px;background:#eee;font-size:.95em}
button.label{background:#dcefd9}button.skip{background:#fff}
pre{background:#fff;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}";

fn page(title: &str, active: &str, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(s) = refresh {
                    meta http-equiv="refresh" content=(s);
                }
                title { "camtrapd · " (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav {
                    @for (href, name) in [("/", "Status"), ("/events", "Events"), ("/review", "Review")] {
                        a href=(href) class=[(name == active).then_some("on")] { (name) }
                    }
                    a href="/metrics" { "Metrics" }
                }
                main { (body) }
            }
        }
    }
}

fn ms(v: Option<f32>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} ms"))
}

/// `GET /`: camera, counters, latest frame, model and thresholds.
pub async fn status(State(st): State<AppState>) -> Markup {
    let s = st.live.status();
    let m = &s.model;
    let body = html! {
        h1 {
            "Camera " (s.camera) " · "
            @if s.online { span.on-line { "online" } } @else { span.off-line { "offline" } }
        }
        @if !s.source_detail.is_empty() { p.small { (s.source_detail) } }
        @if let Some(at) = &s.latest_frame_at {
            img.latest src={ "/img/latest.jpg?t=" (at) } alt="latest frame";
            p.small { "latest frame, captured " (at) }
        } @else {
            p.small { "no frame yet" }
        }
        h2 { "Counters" }
        @if let Some(c) = &s.stats {
            table {
                tr { td { "frames/s" } td.n { (format!("{:.2}", s.fps)) } }
                tr { td { "frames in" } td.n { (c.frames_in) } }
                tr { td { "classified" } td.n { (c.classified) } }
                tr { td { "detections" } td.n { (c.detections) } }
                tr { td { "events" } td.n { (c.events) } }
                @for (r, n) in &c.rejected { tr { td { "rejected: " (r) } td.n { (n) } } }
                @for (r, n) in &c.unreadable { tr { td { "unreadable: " (r) } td.n { (n) } } }
                tr { td { "gated (no motion)" } td.n { (c.frames_gated) } }
                tr { td { "sink errors" } td.n { (c.sink_errors) } }
                tr { td { "inference p50 / p95" } td.n { (ms(c.inference_ms_p50)) " / " (ms(c.inference_ms_p95)) } }
                @if let Some(cam) = &c.camera {
                    tr { td { "camera captured / dropped / corrupt" } td.n { (cam.captured) " / " (cam.dropped) " / " (cam.corrupt) } }
                    tr { td { "camera reconnects" } td.n { (cam.reconnects) } }
                }
                tr { td { "uptime" } td.n { (format!("{:.0} s", c.uptime_s)) } }
            }
        } @else {
            p { "no counters yet" }
        }
        @if let Some(store) = &st.store {
            h2 { "Review capture" }
            (review_counters(store))
        }
        h2 { "Model" }
        table {
            tr { td { "name" } td { (m.name) } }
            tr { td { "sha256" } td.small { (m.sha256) } }
            tr { td { "score function" } td { (m.score_fn.map_or("-".to_string(), |f| f.as_str().to_string())) } }
            tr { td { "thresholds file" } td { (m.thresholds_file.as_deref().unwrap_or("none")) } }
            tr { td { "loaded" } td { (m.loaded_at) @if s.reloads > 0 { " (reload " (s.reloads) ": a new bundle is in use)" } } }
        }
        @if m.labels.len() <= 100 {
            table {
                tr { th { "label" } th { "threshold" } th { "published" } }
                @for l in &m.labels {
                    tr { td { (l.label) } td.n { (format!("{:.3}", l.threshold)) } td { @if l.published { "yes" } @else { "no" } } }
                }
            }
        } @else {
            p.small { (m.labels.len()) " labels (see /api/status for their thresholds)" }
        }
    };
    page("status", "Status", Some(5), body)
}

fn review_counters(store: &store::Store) -> Markup {
    let (n, bytes) = store.usage();
    let c = &store.counters;
    html! {
        table {
            tr { td { "in the queue" } td.n { (n) " frames, " (format!("{:.1}", bytes as f64 / 1e6)) " of " (format!("{:.0}", store.quota_bytes() as f64 / 1e6)) " MB" } }
            tr { td { "kept" } td.n { (Counters::get(&c.saved)) } }
            tr { td { "sorted / skipped" } td.n { (Counters::get(&c.sorted)) " / " (Counters::get(&c.skipped)) } }
            tr { td { "dropped (writer busy)" } td.n { (Counters::get(&c.dropped)) } }
            tr { td { "not written (disk full?)" } td.n { (Counters::get(&c.write_errors)) } }
            tr { td { "deleted by the quota" } td.n { (Counters::get(&c.deleted_quota)) } }
        }
    }
}

/// `GET /events`: the recent events with thumbnails.
pub async fn events(State(st): State<AppState>) -> Markup {
    let events = st.live.events();
    let body = html! {
        h1 { "Events" }
        @if events.is_empty() { p { "no event yet" } }
        div.grid {
            @for e in &events {
                div.card {
                    img src={ "/img/event/" (e.id) } alt={ "best frame of " (e.label) } loading="lazy";
                    div { b { (e.label) } " · best score " (format!("{:.3}", e.score)) }
                    div.small { "start " (e.start_time) }
                    div.small { @if let Some(end) = &e.end_time { "end " (end) } @else { "open, last seen " (e.last_seen) } }
                    div.small { (e.frames) " frame(s)" }
                }
            }
        }
    };
    page("events", "Events", Some(10), body)
}

/// The `camtrapd train` command for the sorted folder.
fn train_command(st: &AppState, dataset: &std::path::Path) -> String {
    let mine = st
        .train_data
        .as_ref()
        .map_or("YOUR_PHOTOS".to_string(), |p| p.display().to_string());
    format!(
        "camtrapd train --data {mine} --data {} --out {}",
        dataset.display(),
        dataset.with_file_name("model-retrained").display()
    )
}

fn frame_card(c: &Sidecar, labels: &[String], csrf: &str) -> Markup {
    let action = format!("/review/{}", c.id);
    html! {
        div.card id={ "frame-" (c.id) } {
            img src={ "/img/review/" (c.id) } alt="frame" loading="lazy";
            div.small { (c.kind.as_str()) " · " (c.captured_at) }
            div.small {
                (c.verdict) @if let Some(r) = &c.reason { " (" (r) ")" }
                " · score " (format!("{:.3}", c.score)) " / threshold " (format!("{:.3}", c.threshold))
            }
            ol.small {
                @for t in c.top_k.iter().take(3) { li { (t.label) " " (format!("{:.3}", t.score)) } }
            }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                @for t in c.top_k.iter().take(3) {
                    button.label type="submit" name="choice" value={ "label:" (t.label) } { "this is " (t.label) }
                }
                button type="submit" name="choice" value="unlisted" { "none of my labels" }
                button type="submit" name="choice" value="empty" { "empty" }
                button.skip type="submit" name="choice" value="skip" { "skip" }
            }
            @if labels.len() > 3 {
                form method="post" action=(action) {
                    input type="hidden" name="csrf" value=(csrf);
                    select name="choice" aria-label="another label" {
                        @for l in labels { option value={ "label:" (l) } { (l) } }
                    }
                    button type="submit" { "this is it" }
                }
            }
        }
    }
}

/// `GET /review`: the review queue, newest first, with the sorted counts
/// and the train command.
pub async fn review(State(st): State<AppState>) -> Markup {
    let Some(store) = &st.store else {
        return page(
            "review",
            "Review",
            None,
            html! { h1 { "Review" } p { "Review capture is off: set [review] enabled = true in the config and restart." } },
        );
    };
    let status = st.live.status();
    let labels: Vec<String> = status
        .model
        .labels
        .iter()
        .map(|l| l.label.clone())
        .collect();
    let frames = store.list(REVIEW_PAGE);
    let (queued, _) = store.usage();
    let counts = store.sorted_counts();
    let body = html! {
        h1 { "Review queue · " (queued) " frame(s)" }
        p.small { "One click files a frame into " code { (store.dataset_dir().display()) } " (one folder per label, "
            code { (store::UNLISTED) } " for animals that are none of your labels, " code { (store::EMPTY) } " for empty frames); skip removes it." }
        @if !counts.is_empty() {
            table {
                tr { th { "sorted into" } th { "frames" } }
                @for (f, n) in &counts { tr { td { (f) "/" } td.n { (n) } } }
            }
        }
        h2 { "Retrain" }
        p { "Train a new bundle on your photos and the sorted frames, then point " code { "[model] path" } " at it and reload (" code { "systemctl reload camtrapd" } ", SIGHUP):" }
        pre { (train_command(&st, store.dataset_dir())) }
        p.small { "Model in use: " (status.model.name) ", loaded " (status.model.loaded_at)
            @if status.reloads > 0 { " · a new bundle was loaded (" (status.reloads) " reload(s) since start)" } }
        h2 { "Frames" }
        @if frames.is_empty() { p { "nothing to review" } }
        div.grid {
            @for c in &frames { (frame_card(c, &labels, &st.csrf)) }
        }
    };
    page("review", "Review", None, body)
}

/// The sorting form.
#[derive(Debug, Deserialize)]
pub struct SortForm {
    /// The CSRF token.
    #[serde(default)]
    csrf: String,
    /// `label:NAME`, `unlisted`, `empty` or `skip`.
    #[serde(default)]
    choice: String,
}

fn error(code: StatusCode, msg: &str) -> Response {
    (code, format!("{msg}\n")).into_response()
}

/// `POST /review/{id}`: files a frame (CSRF token checked first).
pub async fn sort(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<SortForm>,
) -> Response {
    let csrf_ok: bool = form.csrf.as_bytes().ct_eq(st.csrf.as_bytes()).into();
    if !csrf_ok {
        return error(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the review page and click again",
        );
    }
    let Some(store) = st.store.clone() else {
        return error(StatusCode::NOT_FOUND, "review capture is off");
    };
    let Some(choice) = Choice::parse(&form.choice) else {
        return error(
            StatusCode::BAD_REQUEST,
            "choice must be label:NAME, unlisted, empty or skip",
        );
    };
    let labels: Vec<String> = st
        .live
        .status()
        .model
        .labels
        .into_iter()
        .map(|l| l.label)
        .collect();
    let id2 = id.clone();
    let r = tokio::task::spawn_blocking(move || store.sort(&id2, &choice, &labels)).await;
    match r {
        Ok(Ok(dir)) => {
            log::info!(
                "review: frame {id} {}",
                dir.map_or("skipped".to_string(), |d| format!(
                    "filed into {}",
                    d.display()
                ))
            );
            Redirect::to("/review").into_response()
        }
        Ok(Err(e @ (StoreError::BadId | StoreError::UnknownLabel(_)))) => {
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Ok(Err(e @ StoreError::UnknownId)) => error(StatusCode::NOT_FOUND, &e.to_string()),
        Ok(Err(e)) => {
            log::error!("review: frame {id}: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "sorting failed"),
    }
}

fn jpeg_response(bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=60"),
        ],
        bytes,
    )
        .into_response()
}

/// `GET /img/latest.jpg`: the latest frame.
pub async fn latest_jpeg(State(st): State<AppState>) -> Response {
    match st.live.latest_jpeg() {
        Some(j) => jpeg_response(j.as_ref().clone()),
        None => error(StatusCode::NOT_FOUND, "no frame yet"),
    }
}

/// `GET /img/event/{id}`: an event's thumbnail.
pub async fn event_jpeg(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    if !store::valid_id(&id) {
        return error(StatusCode::BAD_REQUEST, &StoreError::BadId.to_string());
    }
    match st.live.thumb(&id) {
        Some(j) => jpeg_response(j.as_ref().clone()),
        None => error(StatusCode::NOT_FOUND, "no thumbnail for this event"),
    }
}

/// `GET /img/review/{id}`: a queued frame's JPEG.
pub async fn review_jpeg(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(store) = st.store.clone() else {
        return error(StatusCode::NOT_FOUND, "review capture is off");
    };
    match tokio::task::spawn_blocking(move || store.jpeg(&id)).await {
        Ok(Ok(j)) => jpeg_response(j),
        Ok(Err(e @ StoreError::BadId)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        Ok(Err(e)) => error(StatusCode::NOT_FOUND, &e.to_string()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "reading failed"),
    }
}
