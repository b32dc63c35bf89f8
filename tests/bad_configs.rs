//! Bad configs: each mistake a user can make in camtrapd.toml is refused
//! with exit code 78 and one message naming the file, line, column and field
//! and what to write instead, asserted verbatim.

mod common;

/// A valid config; each case replaces one piece of it (`MODEL` is the
/// default model's path).
const BASE: &str = r#"camera_id = "pen-7"

[source]
kind = "files"
path = "frames"
fps = 1.0

[model]
path = "MODEL"

[decision]
default_threshold = 0.5
publish_labels = ["tusker"]

[decision.thresholds]
"tusker" = 0.6

[[sinks]]
kind = "mqtt"
host = "localhost"
port = 1883

[stats]
interval_secs = 60
"#;

/// (text in BASE, replacement, first line of stderr after "error: ";
/// `{cfg}` is the config file, `{dir}` its folder).
const CASES: &[(&str, &str, &str)] = &[
    (
        "camera_id = \"pen-7\"",
        "camera_id = 5",
        "invalid config file {cfg}, line 1, column 13: `camera_id`: invalid type: integer `5`, expected a string in double quotes",
    ),
    (
        "camera_id = \"pen-7\"",
        "camera_id = \"pen 7!\"",
        "invalid config file {cfg}, line 1, column 13: `camera_id`: \"pen 7!\": use 1 to 64 ASCII letters, digits, '-' or '_' (it becomes part of MQTT topics)",
    ),
    (
        "camera_id = \"pen-7\"",
        "camera_id = \"pen-7",
        "invalid config file {cfg}, line 1, column 19: invalid basic string, expected `\"`",
    ),
    (
        "camera_id = \"pen-7\"",
        "camera_id = \"a\"\ncamera_id = \"b\"",
        "invalid config file {cfg}, line 2, column 1: duplicate key `camera_id`: a key may appear once per table; delete one of them",
    ),
    (
        "kind = \"files\"",
        "kind = \"webcam\"",
        "invalid config file {cfg}, line 4, column 8: `source.kind`: unknown variant `webcam`, expected `files` or `v4l2`",
    ),
    (
        "fps = 1.0",
        "fps = \"fast\"",
        "invalid config file {cfg}, line 6, column 7: `source.fps`: invalid type: string \"fast\", expected a number such as 1.0 (no quotes)",
    ),
    (
        "fps = 1.0",
        "fps = 0.0",
        "invalid config file {cfg}, line 6, column 7: `source.fps`: 0 is out of range; allowed 0.001 ..= 1000 frames per second, or leave fps out for as fast as possible",
    ),
    (
        "path = \"MODEL\"",
        "path = \"/nonexistent/model\"",
        "invalid config file {cfg}, line 9, column 8: `model.path` = \"/nonexistent/model\": model bundle /nonexistent/model: no such folder; a bundle is a folder with model.onnx and model.toml (see docs/models.md, 'The manifest')",
    ),
    (
        "default_threshold = 0.5",
        "default_threshold = 1.5",
        "invalid config file {cfg}, line 12, column 21: `decision.default_threshold`: 1.5 is not a score; allowed 0.0..=1.0",
    ),
    (
        "default_threshold = 0.5",
        "default_threshold = -0.1",
        "invalid config file {cfg}, line 12, column 21: `decision.default_threshold`: -0.1 is not a score; allowed 0.0..=1.0",
    ),
    (
        "publish_labels = [\"tusker\"]",
        "publish_labels = \"tusker\"",
        "invalid config file {cfg}, line 13, column 18: `decision.publish_labels`: invalid type: string \"tusker\", expected a list such as [\"a\", \"b\"]",
    ),
    (
        "publish_labels = [\"tusker\"]",
        "publish_labels = []",
        "invalid config file {cfg}, line 13, column 18: `decision.publish_labels`: the list is empty, so nothing would ever be published; list labels, or remove the line to publish all",
    ),
    (
        "publish_labels = [\"tusker\"]",
        "publish_labels = [\"elephant\"]",
        "invalid config file {cfg}, line 13, column 19: `decision.publish_labels`: label \"elephant\" is not a label of the model; did you mean \"Indian elephant\", \"African elephant\"? (model efficientnet-lite0-imagenet)",
    ),
    (
        "\"tusker\" = 0.6",
        "\"tuskre\" = 0.6",
        "invalid config file {cfg}, line 16, column 1: `decision.thresholds`: label \"tuskre\" is not a label of the model; did you mean \"tusker\"? (model efficientnet-lite0-imagenet)",
    ),
    (
        "\"tusker\" = 0.6",
        "\"tusker\" = 7",
        "invalid config file {cfg}, line 16, column 12: `decision.thresholds.\"tusker\"`: 7 is not a score; allowed 0.0..=1.0",
    ),
    (
        "[decision]",
        "[decision]\nscore = \"entropy\"",
        "invalid config file {cfg}, line 12, column 9: `decision.score`: unknown variant `entropy`, expected one of `msp`, `msp_temp`, `max_logit`, `energy`, `sigmoid`, `knn`",
    ),
    (
        "[decision]",
        "[decision]\ntop_k = 0",
        "invalid config file {cfg}, line 12, column 9: `decision.top_k`: 0 is out of range; allowed 1..=100",
    ),
    (
        "[decision]",
        "[decision]\nthresholds_file = \"nope.toml\"",
        "invalid config file {cfg}, line 12, column 19: `decision.thresholds_file`: thresholds file {dir}/nope.toml: No such file or directory (os error 2); write it with `camtrapd calibrate --out {dir}/nope.toml`",
    ),
    (
        "host = \"localhost\"",
        "hots = \"localhost\"",
        "invalid config file {cfg}, line 20, column 1: `sinks[0].hots`: unknown field `hots`, expected one of `host`, `port`, `topic_prefix`, `client_id`, `username`, `password_file`, `password_env`, `keep_alive_secs`, `reconnect_max_secs`, `max_packet_size`, `max_incoming_size`, `messages`, `snapshots`, `snapshot_max_size`, `state_dir`, `spool_max_mb`, `shutdown_timeout_secs`, `tls`, `home_assistant`; did you mean `host`?",
    ),
    (
        "port = 1883",
        "port = 70000",
        "invalid config file {cfg}, line 21, column 8: `sinks[0].port`: invalid value: integer `70000`, expected a whole number from 0 to 65535 (no quotes)",
    ),
    (
        "port = 1883",
        "port = \"1883\"",
        "invalid config file {cfg}, line 21, column 8: `sinks[0].port`: invalid type: string \"1883\", expected a whole number from 0 to 65535 (no quotes)",
    ),
    (
        "port = 1883",
        "port = 1883\npassword_file = \"/nonexistent/pw\"",
        "invalid config file {cfg}, line 22, column 17: `sinks[0].password_file`: a password is configured but no username; add username = \"...\"",
    ),
    (
        "interval_secs = 60",
        "interval_secs = -5",
        "invalid config file {cfg}, line 24, column 17: `stats.interval_secs`: invalid value: integer `-5`, expected a whole number, 0 or more (no quotes)",
    ),
    (
        "[stats]",
        "[statistics]",
        "invalid config file {cfg}, line 23, column 2: `statistics`: unknown field `statistics`, expected one of `camera_id`, `source`, `model`, `decision`, `sinks`, `limits`, `stats`, `events`, `motion`, `review`, `http`; did you mean `stats`?",
    ),
    (
        "interval_secs = 60",
        "interval_secs = 60\n\n[http]\nlisten = \"0.0.0.0:8080\"",
        "invalid config file {cfg}, line 27, column 10: `http.listen`: 0.0.0.0:8080 is reachable from other machines but no password is set, so anyone on the network could see the camera and sort its frames; set [http] password_file = \"/etc/camtrapd/dashboard.password\" (basic auth), or listen on 127.0.0.1:8080",
    ),
    (
        "interval_secs = 60",
        "interval_secs = 60\n\n[http]\nlisten = \"localhost:8080\"",
        "invalid config file {cfg}, line 27, column 10: `http.listen`: \"localhost:8080\" is not an address and port such as \"127.0.0.1:8080\" (host names are not looked up)",
    ),
    (
        "interval_secs = 60",
        "interval_secs = 60\n\n[http]\npassword_file = \"nope.txt\"",
        "[http] password_file {dir}/nope.txt: No such file or directory (os error 2); write the dashboard's password into it (readable by camtrapd only)",
    ),
    (
        "interval_secs = 60",
        "interval_secs = 60\n\n[review]\nenabled = true\nquota_mb = 0",
        "invalid config file {cfg}, line 28, column 12: `review.quota_mb`: 0 would delete every frame at once; use at least 1 (MB), or enabled = false",
    ),
    (
        "interval_secs = 60",
        "interval_secs = 60\n\n[review]\nenable = true",
        "invalid config file {cfg}, line 27, column 1: `review.enable`: unknown field `enable`, expected one of `enabled`, `folder`, `dataset`, `quota_mb`, `near_miss_margin`, `sample_every`, `sample_minutes`, `image_side`, `queue_len`; did you mean `enabled`?",
    ),
];

fn check_config(dir: &std::path::Path, text: &str) -> (Option<i32>, String) {
    let cfg = dir.join("camtrapd.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = common::camtrapd_cmd()
        .args(["check-config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_config_mistake_is_named_with_line_column_and_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("frames")).unwrap();
    std::fs::copy(common::fixture("one_pixel.png"), dir.join("frames/a.png")).unwrap();
    let base = BASE.replace("MODEL", common::default_model().to_str().unwrap());
    let (code, err) = check_config(dir, &base);
    assert_eq!(code, Some(0), "the base config must be valid: {err}");
    let cfg = dir.join("camtrapd.toml");
    for (from, to, want) in CASES {
        let from = &from.replace("MODEL", common::default_model().to_str().unwrap());
        assert!(base.contains(from.as_str()), "{from}");
        let (code, err) = check_config(dir, &base.replacen(from, to, 1));
        let want = format!(
            "error: {}",
            want.replace("{cfg}", cfg.to_str().unwrap())
                .replace("{dir}", dir.to_str().unwrap())
        );
        // The first line (under qemu-user, tract's CPU-feature warning about
        // the emulator's /proc/cpuinfo may come first).
        let first = err.lines().find(|l| !l.contains(" tract_linalg::"));
        assert_eq!(first, Some(want.as_str()), "{to}\n{err}");
        assert_eq!(code, Some(78), "{to}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `run` refuses the same way before reading a frame or touching the broker.
#[test]
fn run_refuses_a_bad_config_before_starting() {
    let tmp = tempfile::tempdir().unwrap();
    let base = BASE.replace("MODEL", common::default_model().to_str().unwrap());
    let cfg = tmp.path().join("camtrapd.toml");
    std::fs::write(&cfg, base.replace("port = 1883", "port = 70000")).unwrap();
    let out = common::camtrapd_cmd()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("`sinks[0].port`: invalid value: integer `70000`"),
        "{err}"
    );
    assert!(
        !err.contains("model efficientnet"),
        "started loading: {err}"
    );
    assert!(out.stdout.is_empty());
}
