//! The MQTT sink against a real mosquitto broker that each test starts on a
//! free loopback port (and stops and restarts where the test needs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::{Broker, Msg, Subscriber};
use common::{bin, default_model, sample_photos};

const DET: &str = "camtrapd/pen-7/detection";
const AVAIL: &str = "camtrapd/pen-7/availability";
const SNAP: &str = "camtrapd/pen-7/snapshot";
const STATS: &str = "camtrapd/pen-7/stats";
const EVENTS: &str = "camtrapd/pen-7/events";

/// Sample photos (examples/photos) of elephants that the bundled model
/// publishes at 0.5 (0.68–0.74 on the ImageNet elephant labels; the other
/// sample elephants score under 0.5, as in fp32), and of hedgehogs, which
/// it takes for porcupines (never published here).
const ELEPHANTS: [&str; 3] = [
    "elephant/c101_image_0004.jpg",
    "elephant/c101_image_0060.jpg",
    "elephant/c101_image_0064.jpg",
];
/// Six different sample elephants, each published through the `elephant`
/// label group (summed probability 0.83–0.94): distinct scores, so that the
/// event's best frame is one frame.
const VISIT_ELEPHANTS: [&str; 6] = [
    "elephant/c101_image_0001.jpg",
    "elephant/c101_image_0002.jpg",
    "elephant/c101_image_0003.jpg",
    "elephant/c101_image_0004.jpg",
    "elephant/c101_image_0060.jpg",
    "elephant/c101_image_0064.jpg",
];
const HEDGEHOGS: [&str; 2] = [
    "hedgehog/c101_image_0001.jpg",
    "hedgehog/c101_image_0008.jpg",
];

/// The sample photos of `names`.
fn sample(names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| sample_photos().join(n)).collect()
}

/// A folder with `n` elephant photos ([`ELEPHANTS`] in turn, all
/// detections) and every fourth one followed by a hedgehog (never published).
fn frames(dir: &Path, n: usize) -> PathBuf {
    let f = dir.join("frames");
    std::fs::create_dir_all(&f).unwrap();
    let (elephants, hedgehogs) = (sample(&ELEPHANTS), sample(&HEDGEHOGS));
    for i in 0..n {
        std::fs::copy(
            &elephants[i % elephants.len()],
            f.join(format!("{i:03}_a.jpg")),
        )
        .unwrap();
        if i % 4 == 0 {
            std::fs::copy(
                &hedgehogs[(i / 4) % hedgehogs.len()],
                f.join(format!("{i:03}_b.jpg")),
            )
            .unwrap();
        }
    }
    f
}

/// Writes a config with an MQTT sink (listed first, so a detection is in the
/// spool before it is printed) and a stdout sink (the ground truth). The
/// MQTT sink publishes per-frame detections unless `mqtt_extra` sets `messages`.
fn config(dir: &Path, port: u16, source_extra: &str, mqtt_extra: &str) -> PathBuf {
    let cfg = dir.join("camtrapd.toml");
    let mqtt_extra = if mqtt_extra.contains("messages") {
        mqtt_extra.to_string()
    } else {
        format!("messages = \"detections\"\n{mqtt_extra}")
    };
    std::fs::write(
        &cfg,
        format!(
            r#"camera_id = "pen-7"
[source]
kind = "files"
path = "frames"
{source_extra}
[model]
path = "{}"
[decision]
default_threshold = 0.5
publish_labels = ["African elephant", "tusker", "Indian elephant"]
[[sinks]]
kind = "mqtt"
host = "127.0.0.1"
port = {port}
state_dir = "state"
keep_alive_secs = 2
reconnect_max_secs = 2
{mqtt_extra}
[[sinks]]
kind = "stdout"
[stats]
interval_secs = 1
"#,
            default_model().display()
        ),
    )
    .unwrap();
    cfg
}

struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    fn start(cfg: &Path, tag: &str) -> Daemon {
        Daemon::start_logging(cfg, tag, "info")
    }

    /// [`Daemon::start`] with `RUST_LOG=log`.
    fn start_logging(cfg: &Path, tag: &str, log: &str) -> Daemon {
        let mut cmd = common::camtrapd_cmd();
        cmd.args(["run", "--config"]).arg(cfg);
        Daemon::spawn(cmd, cfg, tag, log)
    }

    fn spawn(mut cmd: Command, cfg: &Path, tag: &str, log: &str) -> Daemon {
        let dir = cfg.parent().unwrap().to_path_buf();
        let child = cmd
            .env("RUST_LOG", log)
            .stdout(std::fs::File::create(dir.join(format!("{tag}.out"))).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("{tag}.err"))).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Daemon {
            child,
            dir: dir.join(tag),
        }
    }
    fn out(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("out")).unwrap_or_default()
    }
    fn err(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("err")).unwrap_or_default()
    }
    /// Detection ids printed on stdout so far.
    fn ids(&self) -> Vec<String> {
        self.out()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    }
    fn signal(&self, sig: &str) {
        Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
    }
    fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let timeout = timeout * common::slowdown();
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "daemon did not exit within {timeout:?}; stderr:\n{}",
                    self.err()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    fn wait_log(&self, needle: &str, timeout: Duration) {
        let timeout = timeout * common::slowdown();
        let end = Instant::now() + timeout;
        while !self.err().contains(needle) {
            assert!(
                Instant::now() < end,
                "no {needle:?} in the log:\n{}",
                self.err()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ids(msgs: &[Msg]) -> Vec<String> {
    msgs.iter()
        .map(|m| m.json()["id"].as_str().unwrap().to_string())
        .collect()
}

/// First occurrences in order, and the number of repeats.
fn dedup(v: &[String]) -> (Vec<String>, usize) {
    let mut seen = std::collections::HashSet::new();
    let first: Vec<String> = v
        .iter()
        .filter(|i| seen.insert(i.to_string()))
        .cloned()
        .collect();
    let repeats = v.len() - first.len();
    (first, repeats)
}

#[test]
fn detections_snapshots_availability_discovery_and_stats_arrive() {
    let broker = Broker::start("");
    let tmp = tempfile::tempdir().unwrap();
    frames(tmp.path(), 8);
    let cfg = config(
        tmp.path(),
        broker.port,
        "",
        "snapshots = true\nsnapshot_max_size = 320",
    );
    let sub = Subscriber::connect(broker.port, "t-all", &["camtrapd/#", "homeassistant/#"]);
    let mut d = Daemon::start(&cfg, "run");
    let st = d.wait(Duration::from_secs(60));
    assert!(st.success(), "{}", d.err());
    let truth: Vec<serde_json::Value> = d
        .out()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        truth.len() >= 5,
        "expected at least 5 elephant detections, got {}",
        truth.len()
    );
    let avail = sub.wait_for(AVAIL, Duration::from_secs(5), "offline", |m| {
        m.last().map(|m| m.text()) == Some("offline".into())
    });
    assert_eq!(
        avail.iter().map(|m| m.text()).collect::<Vec<_>>(),
        ["online", "offline"]
    );
    let dets = sub.wait_for(DET, Duration::from_secs(5), "all detections", |m| {
        m.len() >= truth.len()
    });
    // The same objects as on stdout, in the same order, each once.
    let got: Vec<serde_json::Value> = dets.iter().map(|m| m.json()).collect();
    assert_eq!(got, truth);
    assert!(dets.iter().all(|m| !m.retain));
    // The documented schema, field by field.
    let first = got[0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(|k| k.as_str()).collect();
    // serde_json's map is sorted by key.
    assert_eq!(
        keys,
        [
            "camera",
            "captured_at",
            "frame_seq",
            "id",
            "label",
            "latency_ms",
            "model",
            "score",
            "score_fn",
            "source",
            "threshold",
            "top_k"
        ]
    );
    assert_eq!(first["score_fn"], "msp");
    let id = first["id"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(id).unwrap();
    assert_eq!(uuid.get_version_num(), 7, "{id}");
    assert_eq!(first["camera"], "pen-7");
    assert!(["African elephant", "tusker", "Indian elephant"]
        .contains(&first["label"].as_str().unwrap()));
    assert!(first["score"].as_f64().unwrap() >= 0.5);
    assert_eq!(first["threshold"], 0.5);
    assert_eq!(first["top_k"][0]["label"], first["label"]);
    assert!(first["source"].as_str().unwrap().ends_with("_a.jpg"));
    assert!(first["frame_seq"].is_u64());
    let t = first["captured_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z') && t.len() == 24,
        "{t}"
    );
    assert_eq!(first["model"]["name"], "efficientnet-lite0-imagenet");
    assert!(first["latency_ms"]["inference"].as_f64().unwrap() > 0.0);
    // Capture order, unique ids.
    let (uniq, repeats) = dedup(&ids(&dets));
    assert_eq!((uniq.len(), repeats), (truth.len(), 0));
    // One JPEG per detection, at most 320 px on the long side.
    let snaps = sub.wait_for(SNAP, Duration::from_secs(5), "snapshots", |m| {
        m.len() >= truth.len()
    });
    assert_eq!(snaps.len(), truth.len());
    for s in &snaps {
        let img =
            image::load_from_memory_with_format(&s.payload, image::ImageFormat::Jpeg).unwrap();
        assert!(img.width().max(img.height()) <= 320 && img.width().max(img.height()) >= 300);
    }
    // Home Assistant discovery: one device, event types = publishable labels.
    let ev = sub.on("homeassistant/event/camtrapd_pen_7/detection/config");
    assert_eq!(ev.len(), 1);
    let ev = ev[0].json();
    assert_eq!(
        ev["event_types"],
        serde_json::json!(["tusker", "Indian elephant", "African elephant"]),
        "model order"
    );
    assert_eq!(ev["availability_topic"], AVAIL);
    for t in [
        "sensor/camtrapd_pen_7/last_label",
        "sensor/camtrapd_pen_7/last_score",
        "image/camtrapd_pen_7/snapshot",
    ] {
        assert_eq!(sub.on(&format!("homeassistant/{t}/config")).len(), 1, "{t}");
    }
    // The final stats message counts what happened.
    let stats = sub.wait_for(STATS, Duration::from_secs(5), "stats", |m| !m.is_empty());
    let last = stats.last().unwrap().json();
    assert_eq!(last["detections"], truth.len());
    assert_eq!(last["frames_in"], 10);
    assert_eq!(last["camera"], "pen-7");
    assert!(last["mqtt"]["spool_depth"].is_u64());
    // A late subscriber sees the retained offline (and retained discovery).
    let late = Subscriber::connect(broker.port, "t-late", &[AVAIL]);
    let a = late.wait_for(AVAIL, Duration::from_secs(5), "retained offline", |m| {
        !m.is_empty()
    });
    assert!(a[0].retain && a[0].text() == "offline");
    assert!(
        d.err().contains("published offline and disconnected"),
        "{}",
        d.err()
    );
}

/// Events are the MQTT default: six elephant photos then six hedgehogs
/// (not published), paced at 5 frames/s, with events ending after 0.5 s
/// unseen, make one event: `new`, `update`s while the best score rises,
/// `end`, all with one id, through the spool, with a snapshot of each new
/// best frame. The stdout sink prints detections and events: the truth.
#[test]
fn an_animal_visit_is_one_event_new_update_end() {
    let broker = Broker::start("");
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("frames");
    std::fs::create_dir_all(&f).unwrap();
    let (elephants, hedgehogs) = (sample(&VISIT_ELEPHANTS), sample(&HEDGEHOGS));
    for i in 0..6 {
        std::fs::copy(
            &elephants[i % elephants.len()],
            f.join(format!("{i:02}_e.jpg")),
        )
        .unwrap();
        std::fs::copy(
            &hedgehogs[i % hedgehogs.len()],
            f.join(format!("{:02}_h.jpg", i + 6)),
        )
        .unwrap();
    }
    let cfg = tmp.path().join("camtrapd.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"camera_id = "pen-7"
[source]
kind = "files"
path = "frames"
fps = 5.0
[model]
path = "{}"
[decision]
default_threshold = 0.5
publish_labels = ["elephant"]
[decision.label_groups]
elephant = ["African elephant", "tusker", "Indian elephant"]
[events]
confirm_frames = 2
window_frames = 3
end_after_secs = {}
[[sinks]]
kind = "mqtt"
host = "127.0.0.1"
port = {}
state_dir = "state"
snapshots = true
snapshot_max_size = 320
[[sinks]]
kind = "stdout"
messages = "both"
"#,
            default_model().display(),
            // Frames come 0.2 s apart natively; under an emulator as far
            // apart as a classification takes (≈ 7 s).
            if common::slowdown() > 1 {
                1.5 * f64::from(common::slowdown())
            } else {
                0.5
            },
            broker.port
        ),
    )
    .unwrap();
    let sub = Subscriber::connect(broker.port, "t-events", &["camtrapd/#"]);
    let mut d = Daemon::start(&cfg, "run");
    let st = d.wait(Duration::from_secs(60));
    assert!(st.success(), "{}", d.err());
    let lines: Vec<serde_json::Value> = d
        .out()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (events, dets): (Vec<_>, Vec<_>) = lines.into_iter().partition(|v| v.get("type").is_some());
    assert!(
        dets.len() >= 4,
        "expected at least 4 elephant detections, got {dets:?}"
    );
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"new"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"end"), "{kinds:?}");
    assert!(
        kinds[1..kinds.len() - 1].iter().all(|k| *k == "update"),
        "{kinds:?}"
    );
    let id = events[0]["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    assert!(events.iter().all(|e| e["id"] == id), "one event id");
    // The end message sums up the visit: every detection frame, the best one.
    let end = events.last().unwrap();
    let best = dets
        .iter()
        .max_by(|a, b| {
            a["score"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["score"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(end["frames"], dets.len());
    assert_eq!(end["label"], "elephant");
    assert_eq!(end["score"], best["score"]);
    assert_eq!(end["best"]["source"], best["source"]);
    assert_eq!(end["best"]["frame_seq"], best["frame_seq"]);
    assert_eq!(end["start_time"], dets[0]["captured_at"]);
    assert_eq!(end["last_seen"], dets.last().unwrap()["captured_at"]);
    assert_eq!(end["end_time"], end["last_seen"]);
    assert!(events[0]["end_time"].is_null());
    assert!(
        events[0]["frames"].as_u64().unwrap() >= 2,
        "confirmed by 2 of 3 frames"
    );
    // The event ended by time, while the hedgehog frames were still coming
    // (before the final stats line; events still open at shutdown end after it).
    let log = d.err();
    let end_at = log.find(&format!("event end {id}")).expect("end logged");
    assert!(end_at < log.find("final stats").unwrap(), "{log}");
    // MQTT carries exactly the events stdout printed, in order, and no per-frame detections.
    let got = sub.wait_for(EVENTS, Duration::from_secs(5), "all events", |m| {
        m.len() >= events.len()
    });
    let got: Vec<serde_json::Value> = got.iter().map(|m| m.json()).collect();
    assert_eq!(got, events);
    assert!(
        sub.on(DET).is_empty(),
        "messages = \"events\" is the default"
    );
    // One snapshot per new or update (the new best frame).
    let snaps = sub.wait_for(SNAP, Duration::from_secs(5), "snapshots", |m| {
        m.len() >= events.len() - 1
    });
    assert_eq!(snaps.len(), events.len() - 1);
    let stats = sub.wait_for(STATS, Duration::from_secs(5), "stats", |m| !m.is_empty());
    assert_eq!(stats.last().unwrap().json()["events"], 1);
}

/// With `messages = "both"` each detected frame's snapshot is sent once:
/// the events' best frames are among the detected frames, so `new` and
/// `update` send no second copy (issue 21: two or three identical JPEGs per
/// detection, with nothing to tell them apart).
#[test]
fn with_both_message_kinds_each_snapshot_is_sent_once() {
    let broker = Broker::start("");
    let tmp = tempfile::tempdir().unwrap();
    frames(tmp.path(), 4);
    let cfg = config(
        tmp.path(),
        broker.port,
        "fps = 5.0",
        "messages = \"both\"\nsnapshots = true\nsnapshot_max_size = 64",
    );
    let sub = Subscriber::connect(broker.port, "t-both", &["camtrapd/#"]);
    let mut d = Daemon::start(&cfg, "run");
    let st = d.wait(Duration::from_secs(60));
    assert!(st.success(), "{}", d.err());
    let truth = d.ids();
    assert_eq!(truth.len(), 4, "{}", d.err());
    sub.wait_for(DET, Duration::from_secs(10), "every detection", |m| {
        dedup(&ids(m)).0.len() >= truth.len()
    });
    let events = sub.wait_for(EVENTS, Duration::from_secs(10), "the event's end", |m| {
        m.iter().any(|e| e.json()["type"] == "end")
    });
    let kinds: Vec<String> = events
        .iter()
        .map(|e| e.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.iter().any(|k| k == "new"), "{kinds:?}");
    // Anything still on its way arrives within this.
    std::thread::sleep(Duration::from_millis(500) * common::slowdown());
    let snaps = sub.on(SNAP);
    assert_eq!(
        snaps.len(),
        truth.len(),
        "one snapshot per detection; events: {kinds:?}"
    );
    let mut bodies: Vec<&[u8]> = snaps.iter().map(|m| m.payload.as_slice()).collect();
    assert!(bodies.iter().all(|b| b.starts_with(&[0xFF, 0xD8])));
    bodies.dedup();
    assert_eq!(bodies.len(), truth.len(), "no JPEG sent twice in a row");
}

#[test]
fn late_subscriber_sees_online_kill_9_gives_offline_sigterm_gives_retained_offline() {
    let broker = Broker::start("");
    let tmp = tempfile::tempdir().unwrap();
    frames(tmp.path(), 2);
    let cfg = config(tmp.path(), broker.port, "fps = 5.0\nloop = true", "");
    let d = Daemon::start(&cfg, "a");
    d.wait_log("mqtt: connected to", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let sub = Subscriber::connect(broker.port, "t-late", &[AVAIL]);
    let a = sub.wait_for(AVAIL, Duration::from_secs(5), "retained online", |m| {
        !m.is_empty()
    });
    assert!(a[0].retain, "a late subscriber gets the retained message");
    assert_eq!(a[0].text(), "online");
    // Home Assistant restarts: discovery is published again.
    let ha = Subscriber::connect(broker.port, "t-ha", &["homeassistant/event/#"]);
    let ev = "homeassistant/event/camtrapd_pen_7/detection/config";
    ha.wait_for(ev, Duration::from_secs(5), "retained discovery", |m| {
        m.len() == 1
    });
    common::broker::publish(broker.port, "homeassistant/status", b"online", false);
    ha.wait_for(ev, Duration::from_secs(5), "discovery again", |m| {
        m.len() == 2
    });
    // ... with availability: online, online.
    sub.wait_for(AVAIL, Duration::from_secs(5), "online again", |m| {
        m.len() == 2
    });
    // A frozen daemon (like a Pi that lost power or network: no FIN reaches
    // the broker) falls silent; the broker publishes the last will after
    // 1.5 × keep-alive = 3 s, checked by mosquitto 2.0 on whole-second
    // timestamps in its main loop (seen here: 4.2 to 4.6 s).
    d.signal("-STOP");
    let stopped = Instant::now();
    let a = sub.wait_for(AVAIL, Duration::from_secs(12), "the last will", |m| {
        m.len() >= 3
    });
    let after = a[2].at.duration_since(stopped);
    assert_eq!(a[2].text(), "offline");
    // Upper bound with slack for a loaded machine (mosquitto's loop and
    // the subscriber thread are scheduled late under load, as they are
    // beside the emulated daemons of the other tests under qemu: 8.6 s
    // seen with armv7).
    assert!(
        after >= Duration::from_millis(1900)
            && after <= Duration::from_millis(8000) * common::slowdown(),
        "offline after {after:?}, keep-alive 2 s"
    );
    eprintln!("last will published {after:?} after SIGSTOP (keep-alive 2 s)");
    // Thawed, it notices the dead connection and reconnects: online again.
    d.signal("-CONT");
    sub.wait_for(
        AVAIL,
        Duration::from_secs(15),
        "online after reconnect",
        |m| m.len() >= 4 && m[3].text() == "online",
    );
    // kill -9: the socket closes, the broker publishes the will at once.
    d.signal("-KILL");
    let killed = Instant::now();
    let a = sub.wait_for(AVAIL, Duration::from_secs(6), "the last will", |m| {
        m.len() >= 5
    });
    assert_eq!(a[4].text(), "offline");
    assert!(a[4].at.duration_since(killed) <= Duration::from_millis(3000));
    drop(d);
    // Restarted, then SIGTERM: retained offline, exit 0.
    let mut d = Daemon::start(&cfg, "b");
    sub.wait_for(AVAIL, Duration::from_secs(30), "online again", |m| {
        m.len() >= 6 && m[5].text() == "online"
    });
    d.signal("-TERM");
    let st = d.wait(Duration::from_secs(10));
    assert!(st.success(), "{}", d.err());
    let a = sub.wait_for(AVAIL, Duration::from_secs(5), "offline on SIGTERM", |m| {
        m.len() >= 7
    });
    assert_eq!(a[6].text(), "offline");
    let late = Subscriber::connect(broker.port, "t-later", &[AVAIL]);
    let a = late.wait_for(AVAIL, Duration::from_secs(5), "retained offline", |m| {
        !m.is_empty()
    });
    assert!(a[0].retain && a[0].text() == "offline");
}

#[test]
fn broker_outage_loses_no_detection_and_keeps_order() {
    let mut broker = Broker::start("");
    let tmp = tempfile::tempdir().unwrap();
    frames(tmp.path(), 24);
    let cfg = config(
        tmp.path(),
        broker.port,
        "fps = 5.0",
        "shutdown_timeout_secs = 20",
    );
    let sub = Subscriber::connect(broker.port, "t-outage", &[DET]);
    let mut d = Daemon::start(&cfg, "run");
    sub.wait_for(DET, Duration::from_secs(30), "3 detections", |m| {
        m.len() >= 3
    });
    broker.stop();
    let during_start = d.ids().len();
    std::thread::sleep(Duration::from_secs(3) * common::slowdown());
    let during_end = d.ids().len();
    broker.restart();
    let st = d.wait(Duration::from_secs(60));
    assert!(st.success(), "{}", d.err());
    let truth = d.ids();
    assert!(
        during_end > during_start,
        "detections must keep coming while the broker is down ({during_start} → {during_end})"
    );
    let dets = sub.wait_for(DET, Duration::from_secs(15), "every detection", |m| {
        dedup(&ids(m)).0.len() >= truth.len()
    });
    let (uniq, repeats) = dedup(&ids(&dets));
    assert_eq!(uniq, truth, "every detection, in capture order");
    // QoS 1 may repeat only what was in flight when the connection broke.
    assert!(repeats <= 32, "{repeats} repeats");
    let err = d.err();
    assert_eq!(
        err.matches("cannot reach broker").count(),
        1,
        "state changes are logged once:\n{err}"
    );
    assert!(err.contains("mqtt: reconnected to"), "{err}");
    eprintln!(
        "outage: {} detections, {} during the outage, {repeats} repeated",
        truth.len(),
        during_end - during_start
    );
}

/// Runs the daemon over 12 elephant frames (2 fps) while a retained message
/// of `size` bytes waits on `homeassistant/status` (discovery is on by
/// default, so camtrapd subscribes to it). Returns the daemon's stderr, the
/// number of connections the broker logged for camtrapd's client id, and
/// the last stats message.
fn run_with_retained_status(size: usize) -> (String, usize, serde_json::Value) {
    let broker = Broker::start("");
    let tmp = tempfile::tempdir().unwrap();
    frames(tmp.path(), 12);
    let cfg = config(tmp.path(), broker.port, "fps = 2.0", "");
    common::broker::publish(broker.port, "homeassistant/status", &vec![b'y'; size], true);
    let sub = Subscriber::connect(broker.port, "t-big-retained", &[DET, STATS]);
    let mut d = Daemon::start(&cfg, "run");
    let st = d.wait(Duration::from_secs(90));
    assert!(st.success(), "{}", d.err());
    let truth = d.ids();
    assert_eq!(truth.len(), 12, "{}", d.err());
    let dets = sub.wait_for(DET, Duration::from_secs(15), "every detection", |m| {
        dedup(&ids(m)).0.len() >= truth.len()
    });
    assert_eq!(
        dedup(&ids(&dets)).0,
        truth,
        "every detection, in capture order"
    );
    let connections = broker
        .log()
        .lines()
        .filter(|l| l.contains("New client connected") && l.contains(" as camtrapd-pen-7 "))
        .count();
    let stats = sub.on(STATS).last().expect("a stats message").json();
    (d.err(), connections, stats)
}

/// The issue-21 case: a 2.5 MB retained message on `homeassistant/status`
/// (over rumqttc's old limit of `max_packet_size`, 2 MiB, it made camtrapd
/// reconnect forever and deliver nothing). Now it is dropped on a
/// connection that stays up: every detection is delivered, there is one
/// warning naming the topic, the size and the setting, one connection in
/// the broker's log, and `inbound_dropped` is 1.
#[test]
fn an_oversized_retained_status_message_is_dropped_once_and_delivery_goes_on() {
    let (err, connections, stats) = run_with_retained_status(2_500_000);
    let warning = "mqtt: dropped a 2500000 byte message on homeassistant/status: larger than max_incoming_size (65536 bytes); detections are not affected";
    assert_eq!(err.matches(warning).count(), 1, "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains(" WARN ")).count(),
        1,
        "one warning in all:\n{err}"
    );
    assert_eq!(connections, 1, "one connection in the broker log");
    assert_eq!(stats["mqtt"]["inbound_dropped"], 1, "{stats}");
    assert_eq!(stats["mqtt"]["reconnects"], 0, "{stats}");
}

/// A retained message over the 16 MiB camtrapd reads at all: the MQTT
/// client closes the connection instead of reading it; camtrapd reconnects
/// once without the `homeassistant/status` subscription (two connections,
/// not a loop), warns once, and delivers every detection.
#[test]
fn a_status_message_too_large_to_read_costs_one_reconnect_and_the_subscription() {
    let (err, connections, stats) = run_with_retained_status(17 << 20);
    let warning = format!(
        "mqtt: dropped a {} byte message on homeassistant/status: larger than the 16 MiB camtrapd reads at all, so the connection was closed to skip it; camtrapd no longer subscribes to homeassistant/status until it restarts",
        // The packet: topic length (2), topic, packet id (QoS 1: 2), payload.
        2 + "homeassistant/status".len() + 2 + (17 << 20)
    );
    assert_eq!(err.matches(&warning).count(), 1, "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains(" WARN ")).count(),
        1,
        "one warning in all:\n{err}"
    );
    assert_eq!(connections, 2, "one reconnect, no loop");
    assert_eq!(stats["mqtt"]["inbound_dropped"], 1, "{stats}");
}

/// A full disk under the spool: detections are held in memory (reported
/// once, loudly), nothing crashes, and all reach the broker once it is up.
/// The state folder is a 64 KiB tmpfs in a private mount namespace
/// (`unshare -rm`, util-linux), so the test needs no root on the host.
#[test]
fn full_disk_under_the_spool_keeps_detections_in_memory_and_delivers_them() {
    let mut broker = Broker::start("");
    // A persistent session: the broker keeps what arrives while it is away.
    let sub = Subscriber::connect(broker.port, "t-full", &[DET]);
    broker.stop();
    let tmp = tempfile::tempdir().unwrap();
    frames(tmp.path(), 24);
    std::fs::create_dir(tmp.path().join("state")).unwrap();
    let cfg = config(
        tmp.path(),
        broker.port,
        "fps = 10.0\nloop = true",
        "shutdown_timeout_secs = 30",
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c"])
        .arg("mount -t tmpfs -o size=64k tmpfs \"$0\" && exec \"$@\"")
        .arg(tmp.path().join("state"))
        .args(common::runner())
        .arg(bin())
        .args(["run", "--config"])
        .arg(&cfg);
    let mut d = Daemon::spawn(cmd, &cfg, "run", "info");
    d.wait_log("No space left on device", Duration::from_secs(60));
    // A few more detections go to memory, then the broker comes back.
    std::thread::sleep(Duration::from_secs(2) * common::slowdown());
    broker.restart();
    d.wait_log("reconnected to", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2) * common::slowdown());
    d.signal("-TERM");
    let st = d.wait(Duration::from_secs(60));
    let err = d.err();
    assert!(st.success(), "{err}");
    let mut truth = d.ids();
    let dets = sub.wait_for(DET, Duration::from_secs(15), "every detection", |m| {
        dedup(&ids(m)).0.len() >= truth.len()
    });
    // Every detection, once each. While the spool cannot be read, those held
    // in memory go out first, so order is not kept here (ids are UUID v7:
    // they sort by capture time).
    let mut got = dedup(&ids(&dets)).0;
    got.sort();
    truth.sort();
    assert_eq!(got, truth, "every detection");
    assert!(
        err.contains("works again; detections held in memory are back on disk"),
        "{err}"
    );
    // Reported once per episode of a full disk, not per detection: natively
    // one episode; a slower run (an emulator) can fill the disk again after
    // it worked again.
    let reports = err.matches("keeping new detections in memory").count();
    let recoveries = err
        .matches("works again; detections held in memory")
        .count();
    assert!(
        reports >= 1 && reports <= recoveries + 1,
        "reported once per episode ({reports} reports, {recoveries} recoveries):\n{err}"
    );
    assert!(!err.contains("could not be written are lost"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn spooled_detections_survive_sigkill_and_are_delivered_after_restart() {
    let mut broker = Broker::start("");
    broker.stop();
    let tmp = tempfile::tempdir().unwrap();
    frames(tmp.path(), 12);
    let cfg = config(tmp.path(), broker.port, "fps = 8.0\nloop = true", "");
    let d = Daemon::start(&cfg, "first");
    let end = Instant::now() + Duration::from_secs(60);
    while d.ids().len() < 4 {
        assert!(Instant::now() < end, "no detections: {}", d.err());
        std::thread::sleep(Duration::from_millis(20));
    }
    d.signal("-KILL");
    std::thread::sleep(Duration::from_millis(200));
    let spooled = d.ids();
    drop(d);
    broker.restart();
    let sub = Subscriber::connect(broker.port, "t-spool", &[DET]);
    // Second run: only hedgehogs, so every detection that arrives is from the first run.
    let f = tmp.path().join("frames");
    for e in std::fs::read_dir(&f).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with("_a.jpg") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let cfg = config(tmp.path(), broker.port, "", "shutdown_timeout_secs = 10");
    let mut d = Daemon::start(&cfg, "second");
    let st = d.wait(Duration::from_secs(60));
    assert!(st.success(), "{}", d.err());
    assert!(d.ids().is_empty());
    assert!(
        d.err().contains("from an earlier run wait in"),
        "{}",
        d.err()
    );
    let dets = sub.wait_for(
        DET,
        Duration::from_secs(10),
        "the spooled detections",
        |m| m.len() >= spooled.len(),
    );
    let (uniq, _) = dedup(&ids(&dets));
    assert_eq!(
        &uniq[..spooled.len()],
        &spooled[..],
        "spooled detections arrive, in order"
    );
}

fn tls_files(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let srv =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = srv.signed_by(&key, &issuer).unwrap();
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    std::fs::write(p("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(p("cert.pem"), cert.pem()).unwrap();
    std::fs::write(p("key.pem"), key.serialize_pem()).unwrap();
    // A client certificate from the same CA, for brokers that require one.
    let ckey = KeyPair::generate().unwrap();
    let mut cparams = CertificateParams::new(Vec::<String>::new()).unwrap();
    cparams
        .distinguished_name
        .push(rcgen::DnType::CommonName, "camtrapd-pen-7");
    let ccert = cparams.signed_by(&ckey, &issuer).unwrap();
    std::fs::write(p("client-cert.pem"), ccert.pem()).unwrap();
    std::fs::write(p("client-key.pem"), ckey.serialize_pem()).unwrap();
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

#[test]
fn tls_connects_with_the_right_ca_and_refuses_a_wrong_one() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(certs.path(), "good");
    let (other_ca, _, _) = tls_files(certs.path(), "other");
    let tls_port = common::broker::free_port();
    let mtls_port = common::broker::free_port();
    let broker = Broker::start(&format!(
        "listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\nlistener {mtls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate true\n",
        ca = ca.display(),
        cert = cert.display(),
        key = key.display()
    ));
    let sub = Subscriber::connect(broker.port, "t-tls", &[AVAIL]);
    let tmp = tempfile::tempdir().unwrap();
    frames(tmp.path(), 1);
    let cfg = config(
        tmp.path(),
        tls_port,
        "fps = 2.0\nloop = true",
        &format!(
            "host = \"localhost\"\n[sinks.tls]\nca_file = \"{}\"",
            other_ca.display()
        ),
    );
    // config() already sets host: the TOML must not have it twice.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replacen("host = \"127.0.0.1\"\n", "", 1);
    std::fs::write(&cfg, &text).unwrap();
    let d = Daemon::start(&cfg, "wrong");
    d.wait_log(
        "TLS handshake with mqtts://localhost:",
        Duration::from_secs(30),
    );
    let err = d.err();
    assert!(
        err.contains("check that tls.ca_file holds the CA that signed the broker's certificate"),
        "{err}"
    );
    assert!(sub.on(AVAIL).is_empty(), "no connection with the wrong CA");
    assert!(err.contains("UnknownIssuer"), "{err}");
    eprintln!(
        "{}",
        err.lines()
            .find(|l| l.contains("TLS handshake"))
            .unwrap_or_default()
    );
    drop(d);
    std::fs::write(
        &cfg,
        text.replace(&other_ca.display().to_string(), &ca.display().to_string()),
    )
    .unwrap();
    let d = Daemon::start(&cfg, "right");
    let a = sub.wait_for(AVAIL, Duration::from_secs(30), "online over TLS", |m| {
        !m.is_empty()
    });
    assert_eq!(a[0].text(), "online");
    assert!(
        d.err()
            .contains(&format!("mqtt: connected to mqtts://localhost:{tls_port}")),
        "{}",
        d.err()
    );
    drop(d);
    // A listener that requires a client certificate: refused without one,
    // connects with the one the CA signed.
    let right = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        right.replace(
            &format!("port = {tls_port}"),
            &format!("port = {mtls_port}"),
        ),
    )
    .unwrap();
    let d = Daemon::start(&cfg, "no-client-cert");
    d.wait_log("requires a client certificate (", Duration::from_secs(30));
    assert!(d.err().contains("set tls.cert_file and tls.key_file"));
    let n = sub.on(AVAIL).len();
    drop(d);
    let client = |f: &str| certs.path().join(format!("good-client-{f}.pem"));
    let ca_line = format!("ca_file = \"{}\"\n", ca.display());
    let mtls = right
        .replace(
            &format!("port = {tls_port}"),
            &format!("port = {mtls_port}"),
        )
        .replace(
            &ca_line,
            &format!(
                "{ca_line}cert_file = \"{}\"\nkey_file = \"{}\"\n",
                client("cert").display(),
                client("key").display()
            ),
        );
    assert!(mtls.contains("key_file"));
    std::fs::write(&cfg, mtls).unwrap();
    let d = Daemon::start(&cfg, "client-cert");
    let a = sub.wait_for(
        AVAIL,
        Duration::from_secs(30),
        "online with a client certificate",
        |m| m.len() > n,
    );
    assert_eq!(a.last().unwrap().text(), "online", "{}", d.err());
    assert!(d
        .err()
        .contains(&format!("mqtt: connected to mqtts://localhost:{mtls_port}")));
}

#[test]
fn a_bad_password_is_reported_once_and_retried_with_back_off() {
    let pre = tempfile::tempdir().unwrap();
    let pw = pre.path().join("passwd");
    let st = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&pw)
        .args(["cam", "s3cret"])
        .status()
        .unwrap();
    assert!(st.success());
    let broker = Broker::start(&format!(
        "allow_anonymous false\npassword_file {}\n",
        pw.display()
    ));
    let tmp = tempfile::tempdir().unwrap();
    frames(tmp.path(), 1);
    std::fs::write(tmp.path().join("mqtt-password"), "Xq9-not-it\n").unwrap();
    let cfg = config(
        tmp.path(),
        broker.port,
        "fps = 2.0\nloop = true",
        "username = \"cam\"\npassword_file = \"mqtt-password\"",
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("reconnect_max_secs = 2", "reconnect_max_secs = 60");
    std::fs::write(&cfg, text).unwrap();
    let d = Daemon::start(&cfg, "bad");
    d.wait_log(
        "refused the connection as not authorised",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_secs(6));
    let err = d.err();
    drop(d);
    assert_eq!(err.matches("refused the connection as not authorised (a wrong user name or password, or no access for this client): check username and password_file").count(), 1, "{err}");
    assert!(
        !err.contains("Xq9-not-it"),
        "the password must never be logged"
    );
    // The test wrote the password file with the default umask (0644).
    assert!(
        err.contains(&format!(
            "MQTT password_file {} can be read by every user on this machine (mode 644): chmod 600",
            tmp.path().join("mqtt-password").display()
        )),
        "{err}"
    );
    let attempts = broker.log().matches("not authorised").count();
    // Back-off 1, 2, 4 s with jitter: 3 to 5 attempts in 6 s, not a tight loop.
    assert!(
        (2..=5).contains(&attempts),
        "{attempts} attempts:\n{}",
        broker.log()
    );
    std::fs::write(tmp.path().join("mqtt-password"), "s3cret\n").unwrap();
    let sub = Subscriber::connect_auth(broker.port, "t-pw", &[AVAIL], "cam", "s3cret");
    // Everything rumqttc and camtrapd log at trace level, and no password.
    let d = Daemon::start_logging(&cfg, "good", "trace");
    let a = sub.wait_for(AVAIL, Duration::from_secs(30), "online", |m| {
        m.iter().any(|m| m.text() == "online")
    });
    assert!(!a.is_empty());
    let err = d.err();
    assert!(
        err.contains("TRACE") && !err.contains("s3cret"),
        "the password was logged"
    );
}

#[test]
fn check_config_checks_mqtt_files_without_connecting_or_locking_the_spool() {
    let tmp = tempfile::tempdir().unwrap();
    frames(tmp.path(), 1);
    let cfg = config(
        tmp.path(),
        1,
        "",
        "username = \"cam\"\npassword_file = \"missing-password\"",
    );
    let (code, err) = common::check_config(&cfg);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("[[sinks]]: kind = \"mqtt\": password_file ")
            && err.contains("missing-password: No such file or directory")
            && err.contains("create it (one line, mode 0600) or use password_env"),
        "{err}"
    );
    std::fs::write(tmp.path().join("missing-password"), "pw\n").unwrap();
    let out = common::camtrapd_cmd()
        .args(["check-config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("  sink:       mqtt mqtt://127.0.0.1:1 as \"camtrapd-pen-7\": camtrapd/pen-7/detection (spool ")
            && text.contains("  sink:       stdout (JSON Lines)"),
        "{text}"
    );
    assert!(
        !tmp.path().join("state/mqtt-pen-7.redb").exists(),
        "check-config must not create or lock the spool"
    );
    // Values are checked with their position in the file.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("keep_alive_secs = 2", "keep_alive_secs = 0");
    std::fs::write(&cfg, text).unwrap();
    let (code, err) = common::check_config(&cfg);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("line 16, column 19: `sinks[0].keep_alive_secs`: 0 is out of range; allowed 1..=3600 seconds"),
        "{err}"
    );
}

#[test]
fn two_daemons_with_one_client_id_are_told_apart_not_left_flapping() {
    let broker = Broker::start("");
    let tmp = tempfile::tempdir().unwrap();
    frames(tmp.path(), 1);
    let a = config(tmp.path(), broker.port, "fps = 2.0\nloop = true", "");
    let b_dir = tmp.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    std::fs::rename(tmp.path().join("frames"), b_dir.join("frames")).unwrap();
    let b = config(&b_dir, broker.port, "fps = 2.0\nloop = true", "");
    // The same folder layout for a, with its own state dir.
    std::os::unix::fs::symlink(b_dir.join("frames"), tmp.path().join("frames")).unwrap();
    let da = Daemon::start(&a, "a");
    let db = Daemon::start(&b, "b");
    let hint = "keeps closing the connection within seconds of accepting it";
    let end = Instant::now() + Duration::from_secs(40);
    while !(da.err().contains(hint) || db.err().contains(hint)) {
        assert!(
            Instant::now() < end,
            "no hint about the duplicate client id:\n{}\n{}",
            da.err(),
            db.err()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = if da.err().contains(hint) {
        da.err()
    } else {
        db.err()
    };
    assert!(
        err.contains("same client id \"camtrapd-pen-7\" (two camtrapd with the same camera_id?"),
        "{err}"
    );
    assert_eq!(err.matches(hint).count(), 1, "{err}");
}

/// Datagrams sent to a fake systemd notify socket.
fn notify_socket(dir: &Path) -> (PathBuf, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            g.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    });
    (path, got)
}

#[test]
fn systemd_notify_and_sighup_reload_keep_the_mqtt_session() {
    let broker = Broker::start("");
    let tmp = tempfile::tempdir().unwrap();
    frames(tmp.path(), 4);
    let cfg = config(tmp.path(), broker.port, "fps = 10.0\nloop = true", "");
    let (sock, notes) = notify_socket(tmp.path());
    let sub = Subscriber::connect(broker.port, "t-hup", &[AVAIL, DET]);
    let dir = tmp.path();
    let child = common::camtrapd_cmd()
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", &sock)
        .env("WATCHDOG_USEC", "400000")
        .stdout(std::fs::File::create(dir.join("hup.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("hup.err")).unwrap())
        .spawn()
        .unwrap();
    let mut d = Daemon {
        child,
        dir: dir.join("hup"),
    };
    let joined = || notes.lock().unwrap().join("|");
    let end = Instant::now() + Duration::from_secs(30);
    while !joined().contains("READY=1") {
        assert!(
            Instant::now() < end,
            "no READY=1: {}\n{}",
            joined(),
            d.err()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(joined().contains("STATUS=running: camera pen-7, model efficientnet-lite0-imagenet"));
    sub.wait_for(DET, Duration::from_secs(20), "detections", |m| {
        !m.is_empty()
    });
    // WATCHDOG=1 from progress, at most every 0.1 s (a quarter of 0.4 s).
    let p0 = joined().matches("WATCHDOG=1").count();
    let slow = common::slowdown() as usize;
    std::thread::sleep(Duration::from_secs(2) * common::slowdown());
    let pings = joined().matches("WATCHDOG=1").count() - p0;
    assert!(
        (2..=22 * slow).contains(&pings),
        "{pings} pings in {} s",
        2 * slow
    );
    // SIGHUP with a threshold nothing reaches: no more detections, same session.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("default_threshold = 0.5", "default_threshold = 0.999"),
    )
    .unwrap();
    d.signal("-HUP");
    d.wait_log("reloaded ", Duration::from_secs(20));
    assert!(joined().contains("RELOADING=1"), "{}", joined());
    let before = d.ids().len();
    std::thread::sleep(Duration::from_millis(1500) * common::slowdown());
    assert_eq!(d.ids().len(), before, "the new threshold is in effect");
    // An invalid config keeps the running one.
    std::fs::write(
        &cfg,
        text.replace("default_threshold = 0.5", "default_threshold = 7"),
    )
    .unwrap();
    d.signal("-HUP");
    d.wait_log(
        "the running configuration stays in effect",
        Duration::from_secs(20),
    );
    assert!(
        d.err().contains("`decision.default_threshold`"),
        "{}",
        d.err()
    );
    // Back to 0.5: detections again.
    std::fs::write(&cfg, &text).unwrap();
    d.signal("-HUP");
    let end = Instant::now() + Duration::from_secs(20) * common::slowdown();
    while d.ids().len() == before {
        assert!(
            Instant::now() < end,
            "no detections after the reload back: {}",
            d.err()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.signal("-TERM");
    let st = d.wait(Duration::from_secs(15));
    assert!(st.success(), "{}", d.err());
    assert!(joined().contains("STOPPING=1"));
    // One session throughout: online once, then offline at the end.
    let a = sub.wait_for(AVAIL, Duration::from_secs(5), "offline", |m| {
        m.last().map(|m| m.text()) == Some("offline".into())
    });
    assert_eq!(
        a.iter().map(|m| m.text()).collect::<Vec<_>>(),
        ["online", "offline"],
        "reloads must not reconnect"
    );
}

#[test]
fn camera_status_is_retained_on_its_own_topic_and_reaches_late_subscribers() {
    use camtrapd::sink::mqtt::{MqttConfig, MqttSink};
    use camtrapd::sink::{Sink, SinkContext};
    const CAM: &str = "camtrapd/pen-7/camera_status";
    let broker = Broker::start("");
    let tmp = tempfile::tempdir().unwrap();
    let cfg: MqttConfig = toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {}\nstate_dir = \"state\"",
        broker.port
    ))
    .unwrap();
    let ctx = SinkContext {
        camera: "pen-7".into(),
        publishable_labels: vec!["tusker".into()],
        model_name: "efficientnet-lite0-imagenet".into(),
        base_dir: tmp.path().to_path_buf(),
    };
    let sub = Subscriber::connect(broker.port, "t-cam-early", &[CAM]);
    let mut sink = MqttSink::open(&cfg, &ctx, 1).unwrap();
    // What the pipeline calls when the V4L2 source reports a change.
    sink.source_status(false, "no frame within 5.0 s");
    let m = sub.wait_for(CAM, Duration::from_secs(10), "offline", |m| !m.is_empty());
    let j = m[0].json();
    assert_eq!(j["state"], "offline");
    assert_eq!(j["detail"], "no frame within 5.0 s");
    assert!(j["at"].as_str().unwrap().ends_with('Z'), "{j}");
    sink.source_status(true, "YUYV 640x480 at 30.000 fps");
    let m = sub.wait_for(CAM, Duration::from_secs(10), "online", |m| m.len() >= 2);
    assert_eq!(
        m.iter()
            .map(|m| m.json()["state"].as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        ["offline", "online"]
    );
    // Retained: a subscriber that comes later gets the current state only.
    let late = Subscriber::connect(broker.port, "t-cam-late", &[CAM]);
    let m = late.wait_for(CAM, Duration::from_secs(10), "retained online", |m| {
        !m.is_empty()
    });
    assert_eq!(m.len(), 1);
    assert!(m[0].retain);
    assert_eq!(m[0].json()["state"], "online");
    assert_eq!(m[0].json()["detail"], "YUYV 640x480 at 30.000 fps");
    sink.flush().unwrap();
}
