//! The web dashboard and review capture against the real daemon, the real
//! zoo12 model and the sample photos: pages, `/metrics` read back with a
//! Prometheus text-format parser, bad requests (each a 4xx that moves no
//! file), basic auth, the non-loopback refusal, the quota and a full
//! review disk. The real-browser test is tests/dashboard_browser.rs.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::dashboard::{self, csrf, files, Site};

fn photos() -> std::path::PathBuf {
    common::repo().join("examples/photos")
}

#[test]
fn non_loopback_listen_without_a_password_refuses_to_start_with_exit_78() {
    let t = tempfile::tempdir().unwrap();
    let cfg = dashboard::config(t.path(), &photos(), 5.0, "", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("127.0.0.1:0", "0.0.0.0:8080");
    std::fs::write(&cfg, text).unwrap();
    for cmd in [&["run", "--config"][..], &["check-config"][..]] {
        let out = common::camtrapd_cmd().args(cmd).arg(&cfg).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{cmd:?}: {err}");
        assert!(err.contains("`http.listen`"), "{err}");
        assert!(err.contains("password_file"), "{err}");
        assert!(err.contains("listen on 127.0.0.1:8080"), "{err}");
    }
    // Nothing was written: the daemon never started.
    assert!(!t.path().join("review").exists());
}

/// The counter values of a parsed /metrics scrape, by name and label.
fn metric(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    label: Option<(&str, &str)>,
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn pages_metrics_auth_and_bad_requests() {
    let t = tempfile::tempdir().unwrap();
    let pw = t.path().join("dashboard.password");
    std::fs::write(&pw, "ranger-secret-7\n").unwrap();
    let cfg = dashboard::config(
        t.path(),
        &photos(),
        8.0,
        "sample_every = 1",
        "password_file = \"dashboard.password\"\nuser = \"ranger\"",
    );
    let mut site = Site::start(&cfg);
    let basic = |creds: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds)
        )
    };

    // Basic auth on every page: none or a wrong password is 401.
    for h in [
        None,
        Some(basic("ranger:wrong-password")),
        Some(basic("admin:ranger-secret-7")),
    ] {
        let headers: Vec<(&str, &str)> = h.iter().map(|v| ("Authorization", v.as_str())).collect();
        for path in ["/", "/review", "/metrics", "/api/status"] {
            let r = dashboard::request(&site.addr, "GET", path, &headers, b"");
            assert_eq!(r.status, 401, "{path} with {h:?}");
            assert!(
                r.head
                    .contains("www-authenticate: Basic realm=\"camtrapd\""),
                "{}",
                r.head
            );
        }
    }
    site.auth = vec![("Authorization".into(), basic("ranger:ranger-secret-7"))];

    // The queue fills (every rejected frame is sampled).
    let review = site.wait_json("/api/review", "6 queued frames", |j| {
        j["frames"].as_array().is_some_and(|f| f.len() >= 6)
    });
    let frame = &review["frames"][0];
    let id = frame["id"].as_str().unwrap().to_string();
    assert_eq!(frame["camera"], "dash-test");
    assert_eq!(frame["model"]["name"], "zoo12");
    assert_eq!(frame["model"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(frame["score_fn"], "sigmoid");
    assert_eq!(frame["top_k"].as_array().unwrap().len(), 3);
    let queue = t.path().join("review/queue");
    assert!(queue.join(format!("{id}.jpg")).is_file());
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(queue.join(format!("{id}.json"))).unwrap()).unwrap();
    assert_eq!(&sidecar, frame);
    let jpeg = site.get(&format!("/img/review/{id}"));
    assert!(
        jpeg.head.contains("content-type: image/jpeg"),
        "{}",
        jpeg.head
    );
    assert_eq!(
        jpeg.body,
        std::fs::read(queue.join(format!("{id}.jpg"))).unwrap()
    );

    // The pages.
    let status = site.get("/").text();
    assert!(status.contains("Camera dash-test"), "{status}");
    assert!(status.contains("online"), "{status}");
    assert!(status.contains("sigmoid"), "{status}");
    assert!(status.contains("<td>elephant</td>"), "{status}");
    let r = site.get("/");
    assert!(
        r.head
            .contains("content-security-policy: default-src 'none'"),
        "{}",
        r.head
    );
    assert!(r.head.contains("x-frame-options: DENY"), "{}", r.head);
    site.get("/events");
    let page = site.get("/review").text();
    assert!(page.contains(&format!("action=\"/review/{id}\"")), "{page}");
    assert!(page.contains("camtrapd train --data"), "{page}");
    let token = csrf(&page);
    assert_eq!(token.len(), 64);

    // /metrics, parsed as the Prometheus text format, equals the counters of
    // /api/status taken from the same snapshot (the same uptime).
    let mut compared = false;
    let end = Instant::now() + Duration::from_secs(60) * common::slowdown();
    while Instant::now() < end {
        let api = site.get("/api/status").json();
        let text = site.get("/metrics").text();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        let stats = &api["stats"];
        // The same snapshot, once some frames have been rejected.
        if stats["rejected"]["below_threshold"].is_null()
            || metric(&scrape, "camtrapd_snapshot_uptime_seconds", None)
                != stats["uptime_s"].as_f64()
        {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        assert!(stats["frames_in"].as_u64().unwrap() >= 6, "{api}");
        for (m, k) in [
            ("camtrapd_frames_in_total", "frames_in"),
            ("camtrapd_classified_total", "classified"),
            ("camtrapd_detections_total", "detections"),
            ("camtrapd_events_total", "events"),
            ("camtrapd_frames_gated_total", "frames_gated"),
            ("camtrapd_sink_errors_total", "sink_errors"),
        ] {
            assert_eq!(metric(&scrape, m, None), stats[k].as_f64(), "{m}\n{text}");
        }
        let rejected = stats["rejected"].as_object().unwrap();
        assert!(rejected["below_threshold"].as_u64().unwrap() > 0, "{api}");
        for (reason, n) in rejected {
            assert_eq!(
                metric(&scrape, "camtrapd_rejected_total", Some(("reason", reason))),
                n.as_f64(),
                "{reason}\n{text}"
            );
        }
        assert_eq!(
            stats["classified"].as_u64(),
            Some(
                stats["detections"].as_u64().unwrap()
                    + rejected.values().map(|v| v.as_u64().unwrap()).sum::<u64>()
            ),
            "{api}"
        );
        assert_eq!(metric(&scrape, "camtrapd_camera_online", None), Some(1.0));
        assert!(metric(&scrape, "camtrapd_review_saved_total", None).unwrap() >= 6.0);
        compared = true;
        break;
    }
    assert!(
        compared,
        "no scrape of /metrics matched the snapshot of /api/status"
    );

    // Bad requests: each a 4xx, and no file moves.
    let sorted = t.path().join("review/sorted");
    let target = [
        queue.join(format!("{id}.jpg")),
        queue.join(format!("{id}.json")),
    ];
    let form = |choice: &str, token: &str| format!("csrf={token}&choice={choice}");
    let unknown = "0190f3c4-0000-7000-8000-000000000000";
    let big = format!("{}&pad={}", form("empty", &token), "x".repeat(100_000));
    let huge_header = "y".repeat(20_000);
    let cases: Vec<(&str, dashboard::Resp)> = vec![
        (
            "../ in the id",
            site.post_form("/review/..%2F..%2Fetc%2Fpasswd", &form("empty", &token)),
        ),
        (
            "../ and the id",
            site.post_form(
                &format!("/review/..%2Fqueue%2F{id}"),
                &form("empty", &token),
            ),
        ),
        (
            "literal ../",
            site.post_form(&format!("/review/../review/{id}"), &form("empty", &token)),
        ),
        (
            "unknown id",
            site.post_form(&format!("/review/{unknown}"), &form("empty", &token)),
        ),
        (
            "no CSRF token",
            site.post_form(&format!("/review/{id}"), "choice=empty"),
        ),
        (
            "wrong CSRF token",
            site.post_form(&format!("/review/{id}"), &form("empty", &"0".repeat(64))),
        ),
        (
            "oversized body",
            site.post_form(&format!("/review/{id}"), &big),
        ),
        (
            "label not of the model",
            site.post_form(&format!("/review/{id}"), &form("label:..%2F..%2Fx", &token)),
        ),
        (
            "unknown choice",
            site.post_form(&format!("/review/{id}"), &form("delete", &token)),
        ),
        (
            "oversized header",
            site.request(
                "POST",
                &format!("/review/{id}"),
                &[("X-Pad", &huge_header)],
                form("empty", &token).as_bytes(),
            ),
        ),
        (
            "image by path",
            site.request(
                "GET",
                &format!("/img/review/..%2Fqueue%2F{id}.jpg"),
                &[],
                b"",
            ),
        ),
        (
            "unknown image",
            site.request("GET", &format!("/img/review/{unknown}"), &[], b""),
        ),
        (
            "a file of the folder",
            site.request("GET", &format!("/review/queue/{id}.jpg"), &[], b""),
        ),
    ];
    let wrong_pw = dashboard::request(
        &site.addr,
        "POST",
        &format!("/review/{id}"),
        &[
            ("Authorization", &basic("ranger:wrong-password")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form("empty", &token).as_bytes(),
    );
    let mut codes = Vec::new();
    for (what, r) in cases.iter().chain([("wrong password", wrong_pw)].iter()) {
        assert!(
            (400..500).contains(&r.status),
            "{what}: {}\n{}",
            r.head,
            r.text()
        );
        codes.push((*what, r.status));
    }
    assert_eq!(
        codes,
        [
            ("../ in the id", 400),
            ("../ and the id", 400),
            ("literal ../", 404),
            ("unknown id", 404),
            ("no CSRF token", 403),
            ("wrong CSRF token", 403),
            ("oversized body", 413),
            ("label not of the model", 400),
            ("unknown choice", 400),
            ("oversized header", 431),
            ("image by path", 400),
            ("unknown image", 404),
            ("a file of the folder", 404),
            ("wrong password", 401),
        ]
    );
    assert!(target.iter().all(|p| p.is_file()), "the frame stays queued");
    assert_eq!(files(&sorted), Vec::<String>::new(), "nothing was filed");

    // The same frame with a good request is filed (so the refusals above
    // were not for want of a sortable frame).
    let r = site.post_form(&format!("/review/{id}"), &form("label:llama", &token));
    assert_eq!(r.status, 303, "{}\n{}", r.head, r.text());
    assert!(r.head.contains("location: /review"), "{}", r.head);
    assert!(target.iter().all(|p| !p.exists()));
    assert_eq!(
        files(&sorted.join("llama")),
        [format!("{id}.jpg"), format!("{id}.json")]
    );
    // Twice: it is no longer in the queue.
    assert_eq!(
        site.post_form(&format!("/review/{id}"), &form("empty", &token))
            .status,
        404
    );
    let api = site.get("/api/status").json();
    assert_eq!(api["review"]["sorted"], 1);
    assert!(site.stop().success(), "{}", site.err());
    let err = site.err();
    assert!(
        err.contains("dashboard: wrong user or password from 127.0.0.1:"),
        "{err}"
    );
    assert!(
        !err.contains("ranger-secret-7") && !err.contains("wrong-password"),
        "no password in the log"
    );
}

/// Runs the daemon in a private mount namespace with `folder` on a tmpfs
/// of `size` (`unshare -rm`, as the MQTT spool's full-disk test does).
fn start_on_tmpfs(cfg: &Path, folder: &Path, size: &str) -> Site {
    std::fs::create_dir_all(folder).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size={size} tmpfs \"$0\" && exec \"$@\""
        ))
        .arg(folder)
        .args(common::runner())
        .arg(common::bin())
        .args(["run", "--config"])
        .arg(cfg);
    Site::spawn(cmd, cfg)
}

/// A daemon config at 10 frames/s keeping every rejected frame, with a
/// quota of 1 MB.
fn sampled_1mb(dir: &Path) -> std::path::PathBuf {
    dashboard::config(dir, &photos(), 10.0, "sample_every = 1\nquota_mb = 1", "")
}

#[test]
fn quota_deletes_oldest_frames_first() {
    let t = tempfile::tempdir().unwrap();
    let cfg = sampled_1mb(t.path());
    let mut site = Site::start(&cfg);
    let j = site.wait_json("/api/status", "frames deleted by the quota", |j| {
        j["review"]["deleted_quota"].as_u64().unwrap_or(0) >= 5
    });
    let r = &j["review"];
    assert!(r["queue_bytes"].as_u64().unwrap() <= 1_000_000, "{j}");
    // The queue on disk stays within the quota (plus the frame being
    // written); which frames go first (the oldest) is pinned by the unit
    // test in src/review/store.rs.
    let queue = t.path().join("review/queue");
    let on_disk: u64 = files(&queue)
        .iter()
        .map(|f| {
            std::fs::metadata(queue.join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    assert!(on_disk <= 1_000_000 + 200_000, "{on_disk} bytes on disk");
    let api = site.get("/api/review").json();
    let ids: Vec<&str> = api["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(site.stop().success(), "{}", site.err());
    let log = site.err();
    assert!(!log.contains("review: cannot write"), "{log}");
}

#[test]
fn a_full_review_disk_is_logged_once_and_never_stalls_detections() {
    let t = tempfile::tempdir().unwrap();
    // The tmpfs (200 KiB) fills long before the quota (1 MB) would act.
    let cfg = sampled_1mb(t.path());
    let mut site = start_on_tmpfs(&cfg, &t.path().join("review"), "200k");
    let end = Instant::now() + Duration::from_secs(120) * common::slowdown();
    while !site.err().contains("review: cannot write frames") {
        assert!(
            Instant::now() < end,
            "the disk never filled:\n{}",
            site.err()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (det0, frames0) = (
        site.detections(),
        site.get("/api/status").json()["stats"]["frames_in"]
            .as_u64()
            .unwrap_or(0),
    );
    std::thread::sleep(Duration::from_secs(4));
    let j = site.get("/api/status").json();
    let (det1, frames1) = (site.detections(), j["stats"]["frames_in"].as_u64().unwrap());
    // 10 frames/s for 4 s: the pipeline keeps its pace (at least half of it
    // on a loaded machine), and keeps publishing detections.
    assert!(frames1 >= frames0 + 20, "{frames0} -> {frames1}");
    assert!(det1 > det0, "detections stalled: {det0} -> {det1}");
    assert!(j["review"]["write_errors"].as_u64().unwrap() >= 2, "{j}");
    assert!(site.stop().success(), "{}", site.err());
    let log = site.err();
    assert_eq!(
        log.matches("review: cannot write frames").count(),
        1,
        "{log}"
    );
    assert!(log.contains("No space left on device"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}
