//! The `camtrapd` binary end to end on real photos: classify, the daemon
//! over a folder with counted rejections, config errors with exit code 78,
//! and a clean exit on SIGTERM.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{default_model, sample_photo};

fn camtrapd(args: &[&str]) -> Output {
    common::camtrapd_cmd()
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn classify_labels_elephants_as_elephants() {
    let Some(data) = common::full_data("the 64 photos of zoo12/known/elephant") else {
        return;
    };
    let dir = data.join("zoo12/known/elephant");
    let out = camtrapd(&["classify", "--json", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 64);
    let elephants = rows
        .iter()
        .filter(|r| {
            matches!(
                r["label"].as_str(),
                Some("African elephant" | "tusker" | "Indian elephant")
            )
        })
        .count();
    // Measured: 52 of 64 (81%) with the int8 model.
    assert!(
        elephants >= 48,
        "only {elephants} of 64 elephant photos got an elephant label"
    );
    assert!(rows
        .iter()
        .all(|r| r["top_k"].as_array().unwrap().len() == 3));
}

#[test]
fn classify_table_and_bad_arguments() {
    let f = sample_photo("llama/c101_image_0001.jpg");
    let out = camtrapd(&["classify", f.to_str().unwrap()]);
    assert!(out.status.success());
    let t = text(&out.stdout);
    assert!(t.starts_with("RESULT"), "{t}");
    assert!(
        t.contains("detection") && t.contains("llama") && t.contains("1 images: 1 detections"),
        "{t}"
    );
    // A missing input: EX_NOINPUT.
    let out = camtrapd(&["classify", "/nonexistent/photos"]);
    assert_eq!(out.status.code(), Some(66), "{}", text(&out.stderr));
    // A --publish label the model lacks: usage error with a hint.
    let out = camtrapd(&["classify", "--publish", "elephant", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(
        e.contains("did you mean") && e.contains("\"African elephant\""),
        "{e}"
    );
}

/// `camtrapd --help` names every exit code the program uses, and the
/// signals.
#[test]
fn help_lists_every_exit_code_and_the_signals() {
    let out = camtrapd(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    let codes = &help[help.find("Exit codes:").expect("an exit code list")..];
    let numbers: Vec<&str> = codes.split(|c: char| !c.is_ascii_digit()).collect();
    for code in camtrapd::exit::ALL {
        assert!(
            numbers.contains(&code.to_string().as_str()),
            "exit code {code} missing from --help:\n{codes}"
        );
    }
    assert!(help.contains("SIGHUP reloads"), "{help}");
}

/// A sample background photo (no animal) that the ImageNet model scores
/// below 0.5 (its top label: see the test that uses it).
const BLANK: &str = "nothing/c101_image_0001.jpg";

/// A folder with 3 confident elephants, a confident llama, a background
/// photo with no animal, a truncated JPEG and a text file named .jpg.
fn mixed_folder(dir: &Path) {
    for (src, name) in [
        ("elephant/c101_image_0004.jpg", "a_elephant.jpg"),
        ("elephant/c101_image_0060.jpg", "b_elephant.jpg"),
        ("elephant/c101_image_0064.jpg", "c_elephant.jpg"),
        ("llama/c101_image_0001.jpg", "d_llama.jpg"),
        (BLANK, "e_blank.jpg"),
    ] {
        std::fs::copy(sample_photo(src), dir.join(name)).unwrap();
    }
    let full = std::fs::read(sample_photo("elephant/c101_image_0001.jpg")).unwrap();
    std::fs::write(dir.join("f_truncated.jpg"), &full[..full.len() / 2]).unwrap();
    std::fs::write(dir.join("g_notes.jpg"), b"not an image at all").unwrap();
}

/// Starts `camtrapd run --config cfg` with stdout and stderr piped.
fn spawn_daemon(cfg: &Path) -> std::process::Child {
    common::camtrapd_cmd()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A temp dir holding `frames/` (see [`mixed_folder`]) and a config for it
/// with `source_extra` added to `[source]`.
fn daemon_setup(source_extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("frames")).unwrap();
    mixed_folder(&tmp.path().join("frames"));
    let cfg = write_config(tmp.path(), source_extra);
    (tmp, cfg)
}

fn write_config(dir: &Path, source_extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("camtrapd.toml");
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
"#,
            default_model().display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn daemon_publishes_confident_elephants_and_counts_the_rest() {
    let (_tmp, cfg) = daemon_setup("");
    let out = camtrapd(&["run", "--config", cfg.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let dets: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(&str, &str)> = dets
        .iter()
        .map(|d| {
            let src = d["source"].as_str().unwrap();
            (&src[src.len() - 14..], d["label"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a_elephant.jpg", "African elephant"),
            ("b_elephant.jpg", "Indian elephant"),
            ("c_elephant.jpg", "Indian elephant")
        ]
    );
    for d in &dets {
        assert_eq!(d["camera"], "pen-7");
        assert!(d["score"].as_f64().unwrap() >= 0.5);
        assert_eq!(d["threshold"], 0.5);
        assert_eq!(d["model"]["name"], "efficientnet-lite0-imagenet");
        assert_eq!(d["model"]["sha256"], "f3c696685252");
        let t = d["captured_at"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.len() == 24 && t.ends_with('Z'),
            "{t}"
        );
        let l = &d["latency_ms"];
        let stages: f64 = ["decode", "preprocess", "inference", "decision"]
            .iter()
            .map(|s| l[*s].as_f64().unwrap())
            .sum();
        let total = l["total"].as_f64().unwrap();
        assert!(l["inference"].as_f64().unwrap() > 1.0, "{l}");
        assert!(
            (total - stages).abs() <= 0.004,
            "total {total} vs sum of stages {stages}"
        );
    }
    assert!(
        err.contains("final stats: frames 7 classified 5 detections 3 rejected {below_threshold: 1, label_not_published: 1, unreadable: 2} unreadable {truncated: 1, unknown_format: 1}"),
        "{err}"
    );
    assert!(
        err.contains("f_truncated.jpg: skipped: truncated JPEG"),
        "{err}"
    );
}

#[test]
fn config_errors_exit_78_with_file_line_column() {
    let (_tmp, cfg) = daemon_setup("");
    let out = camtrapd(&["check-config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("OK"));
    // What the daemon feeds the model, as the run log also says (issue 21).
    let input = "\"input\": NCHW f32 1×3×224×224, RGB, (pixel - mean) / std with mean 127 and std 128, center-crop 0.875";
    assert!(
        text(&out.stdout).contains(&format!("\n  input:      {input}\n")),
        "{}",
        text(&out.stdout)
    );
    let run = camtrapd(&["run", "--config", cfg.to_str().unwrap()]);
    assert!(
        text(&run.stderr).contains(&format!("model input {input}\n")),
        "{}",
        text(&run.stderr)
    );

    // Unknown field.
    let t = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, t.replace("default_threshold", "default_thresold")).unwrap();
    for cmd in ["check-config", "run"] {
        let args: Vec<&str> = if cmd == "run" {
            vec!["run", "--config", cfg.to_str().unwrap()]
        } else {
            vec![cmd, cfg.to_str().unwrap()]
        };
        let out = camtrapd(&args);
        let e = text(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{e}");
        assert!(
            e.contains(cfg.to_str().unwrap())
                && e.contains("line 9, column 1")
                && e.contains("default_thresold"),
            "{e}"
        );
    }
    // A label the model does not have.
    std::fs::write(&cfg, t.replace("\"tusker\"", "\"elephant\"")).unwrap();
    let out = camtrapd(&["check-config", cfg.to_str().unwrap()]);
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{e}");
    assert!(
        e.contains("line 10, column 39")
            && e.contains("decision.publish_labels")
            && e.contains("\"elephant\" is not a label"),
        "{e}"
    );
    // A model bundle that does not exist.
    std::fs::write(
        &cfg,
        t.replace(&default_model().display().to_string(), "/nonexistent/model"),
    )
    .unwrap();
    let out = camtrapd(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("/nonexistent/model: no such folder"),
        "{}",
        text(&out.stderr)
    );
    // A source folder that does not exist: EX_NOINPUT.
    std::fs::write(&cfg, t.replace("path = \"frames\"", "path = \"missing\"")).unwrap();
    let out = camtrapd(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(66), "{}", text(&out.stderr));
}

#[test]
fn sigterm_stops_the_daemon_cleanly() {
    let (_tmp, cfg) = daemon_setup("fps = 5.0\nloop = true");
    let mut child = spawn_daemon(&cfg);
    // Wait for the first detection, then for the loop to come round again.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.contains("a_elephant.jpg"), "{first}");
    // Two more detections (the other two elephants), as they come.
    let mut more = String::new();
    for _ in 0..2 {
        std::io::BufRead::read_line(&mut stdout, &mut more).unwrap();
    }
    assert!(more.contains("elephant.jpg"), "{more}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "a looping source must keep the daemon running"
    );
    let t0 = Instant::now();
    // The shell's built-in kill: no dependency on procps.
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(3) * common::slowdown(),
        "took {:?} to stop",
        t0.elapsed()
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("shut down on signal") && err.contains("final stats"),
        "{err}"
    );
    // Whatever was classified before the signal is printed in full.
    assert!(rest.lines().all(|l| l.ends_with('}')), "{rest}");
}

#[test]
fn closed_stdout_stops_the_daemon_with_exit_74() {
    use std::io::BufRead;
    let (_tmp, cfg) = daemon_setup("fps = 20.0\nloop = true");
    let mut child = spawn_daemon(&cfg);
    // Read one detection, then close our end like `camtrapd run | head -1` does.
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("\"camera\":\"pen-7\""), "{line}");
    let t0 = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{err}");
    assert!(err.contains("sink stdout: stdout was closed"), "{err}");
}

#[test]
fn closed_pipe_on_listing_commands_is_quiet() {
    // `camtrapd labels --index | head -0`: the reader is gone before the first write.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = common::camtrapd_cmd()
        .args(["labels", "--index"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(74));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn label_groups_publish_the_group_name() {
    let (_tmp, cfg) = daemon_setup("");
    let cfg = cfg.to_str().unwrap().to_string();
    let text_cfg = std::fs::read_to_string(&cfg).unwrap().replace(
        "publish_labels = [\"African elephant\", \"tusker\", \"Indian elephant\"]",
        "[decision.label_groups]\nelephant = [\"African elephant\", \"tusker\", \"Indian elephant\"]",
    );
    std::fs::write(&cfg, text_cfg).unwrap();
    let out = camtrapd(&["run", "--config", &cfg]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let dets: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dets.len(), 3, "{dets:?}");
    for d in &dets {
        assert_eq!(d["label"], "elephant");
        // The group's score is the sum of its members' probabilities.
        assert!(d["score"].as_f64().unwrap() > 0.9, "{d}");
    }
    // The confident llama is outside every group: an unknown, below threshold.
    assert!(
        err.contains("detections 3 rejected {below_threshold: 2, unreadable: 2}"),
        "{err}"
    );
}

#[test]
fn full_disk_on_stdout_or_stderr_gives_exit_codes_not_panics() {
    // A looping daemon whose stdout is a full disk stops at the first detection.
    let (_tmp, cfg) = daemon_setup("loop = true");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = common::camtrapd_cmd()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{err}");
    assert!(err.contains("writing to stdout failed"), "{err}");
    // A config error whose message cannot be written still exits 78.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = common::camtrapd_cmd()
        .args(["check-config", "/nonexistent.toml"])
        .stderr(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}

/// The model file replaced under a running daemon: without SIGHUP nothing
/// changes (the model is in memory); a SIGHUP with a broken file keeps the
/// old model running; a SIGHUP with a complete new bundle switches to it.
#[test]
fn model_replaced_while_running_is_reloaded_or_kept() {
    let (tmp, _) = daemon_setup("");
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    for f in ["model.onnx", "model.toml", "LICENSE"] {
        std::fs::copy(default_model().join(f), bundle.join(f)).unwrap();
    }
    let cfg = write_config(tmp.path(), "fps = 10.0\nloop = true");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&default_model().display().to_string(), "bundle");
    std::fs::write(&cfg, text).unwrap();
    let err_path = tmp.path().join("daemon.err");
    let out_path = tmp.path().join("daemon.out");
    let mut child = common::camtrapd_cmd()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&err_path).unwrap_or_default();
    let shas = || -> Vec<String> {
        std::fs::read_to_string(&out_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|d| d["model"]["sha256"].as_str().unwrap().to_string())
            .collect()
    };
    let wait = |what: &dyn Fn() -> bool, msg: &str| {
        let end = Instant::now() + Duration::from_secs(60);
        while !what() {
            assert!(Instant::now() < end, "{msg}:\n{}", log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let hup = |pid: u32| {
        let st = Command::new("sh")
            .args(["-c", &format!("kill -HUP {pid}")])
            .status()
            .unwrap();
        assert!(st.success());
    };
    wait(&|| !shas().is_empty(), "no detection");
    // A half-copied model file, then SIGHUP: refused, the old model stays.
    let full = std::fs::read(default_model().join("model.onnx")).unwrap();
    std::fs::write(bundle.join("model.onnx"), &full[..full.len() / 2]).unwrap();
    hup(child.id());
    wait(
        &|| log().contains("the running configuration stays in effect"),
        "no refused reload",
    );
    assert!(
        log().contains("sha256"),
        "the refusal names the checksum: {}",
        log()
    );
    let n = shas().len();
    wait(
        &|| shas().len() >= n + 3,
        "detections stopped after a refused reload",
    );
    // The fp32 bundle copied in whole, then SIGHUP: the new model is used.
    for f in ["model.onnx", "model.toml"] {
        std::fs::copy(common::fp32_model().join(f), bundle.join(f)).unwrap();
    }
    hup(child.id());
    wait(
        &|| shas().last().map(String::as_str) == Some("871d04695c92"),
        "the new model is not in use",
    );
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status();
    let st = child.wait().unwrap();
    assert!(st.success(), "{}", log());
    let all = shas();
    let first_new = all.iter().position(|s| s == "871d04695c92").unwrap();
    assert!(all[..first_new].iter().all(|s| s == "f3c696685252"));
    assert!(all[first_new..].iter().all(|s| s == "871d04695c92"));
    assert!(!log().contains("panicked"));
}

/// With `[motion]` on, a frame identical to the last one is gated (read as
/// JPEG luma only, never classified) and a changed one is classified; the
/// first frame of a new size always is.
#[test]
fn daemon_with_the_motion_gate_classifies_only_changed_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = tmp.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    let a = sample_photo("elephant/c101_image_0004.jpg");
    for name in ["a1.jpg", "a2.jpg", "a3.jpg"] {
        std::fs::copy(&a, frames.join(name)).unwrap();
    }
    // The same photo with an "animal" (a bright square) walked in.
    let mut img = image::open(&a).unwrap().into_rgb8();
    let (w, h) = img.dimensions();
    for y in h / 3..h / 3 + h / 4 {
        for x in w / 3..w / 3 + w / 4 {
            img.put_pixel(x, y, image::Rgb([250, 250, 250]));
        }
    }
    img.save(frames.join("a4.jpg")).unwrap();
    // ... and moved on to the bottom right.
    let mut img = image::open(&a).unwrap().into_rgb8();
    for y in h * 2 / 3..h * 2 / 3 + h / 4 {
        for x in w * 2 / 3..w * 2 / 3 + w / 4 {
            img.put_pixel(x, y, image::Rgb([250, 250, 250]));
        }
    }
    img.save(frames.join("a5.jpg")).unwrap();
    let cfg = write_config(tmp.path(), "");
    let mut text_cfg = std::fs::read_to_string(&cfg).unwrap();
    text_cfg.push_str("[motion]\nenabled = true\nheartbeat_secs = 0\n");
    std::fs::write(&cfg, text_cfg).unwrap();
    let out = common::camtrapd_cmd()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    // a1 (first frame), a4 (square in), a5 (square moved) classified; a2, a3 gated.
    let classified: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(" -> "))
        .filter_map(|l| l.split_whitespace().find(|w| w.ends_with(".jpg:")))
        .map(|p| &p[p.len() - 7..p.len() - 1])
        .collect();
    assert_eq!(classified, ["a1.jpg", "a4.jpg", "a5.jpg"], "{err}");
    assert!(err.contains("final stats: frames 5 classified 3 "), "{err}");
    assert!(err.contains(" gated (no motion) 2"), "{err}");
}

#[test]
fn bench_insn_markers_names_every_stage_and_plan_node() {
    // Outside qemu the markers are refused system calls; the legend is what
    // scripts/arm-cost.sh joins with the plugin's counts.
    let photos = common::sample_photos();
    let model = common::fp32_model();
    let out = camtrapd(&[
        "bench",
        "--insn-markers",
        "-n",
        "2",
        "--warmup",
        "0",
        "-m",
        model.to_str().unwrap(),
        photos.join("elephant").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let legend: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(legend["frames"], 2);
    // EfficientNet-Lite0 at 224x224: 385,187,552 multiply-accumulates in its
    // Conv and Gemm layers (counted from the ONNX shapes with onnxruntime),
    // plus the 1280x7x7 sums of the average pool and the 1000 bias adds,
    // which tract's cost model counts too.
    assert_eq!(legend["macs"], 385_187_552u64 + 1280 * 49 + 1000);
    assert_eq!(legend["input"], "[1, 3, 224, 224] F32");
    let markers = legend["markers"].as_array().unwrap();
    let stages: Vec<&str> = markers
        .iter()
        .filter(|m| m["kind"] == "stage")
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "decode 640x480",
            "yuyv→rgb 640x480",
            "motion gate 640x480 (JPEG luma at 1/4)",
            "motion gate 640x480 (YUYV, Y in place)",
            "resize+normalise",
            "inference",
            "decision",
            "sink (JSON)"
        ]
    );
    let nodes: Vec<&serde_json::Value> = markers.iter().filter(|m| m["kind"] == "node").collect();
    assert!(nodes.len() > 50, "{} plan nodes", nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["id"], 1000 + i as u64);
    }
    assert!(nodes.iter().any(|n| n["op"] == "OptMatMul"));
    // Timing options do not mix with it: a usage error, as clap reports one.
    let out = camtrapd(&[
        "bench",
        "--insn-markers",
        "--json",
        photos.join("elephant").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("'--insn-markers' cannot be used with '--json'"));
}
