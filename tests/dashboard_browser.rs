//! The review loop in a real browser: Debian's chromium, driven through
//! chromium-driver (WebDriver) by fantoccini, sorts frames of the running
//! daemon's review queue by clicking, and `camtrapd train` builds a bundle
//! from the sorted folder plus more photos.
//!
//! Needs `chromium` and `chromium-driver` (apt). Without them the test
//! prints SKIPPED and passes, except under CI (`CI` set), where it fails.
//! It saves screenshots of the three pages in the test's temporary target
//! folder (printed at the end).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::dashboard::{self, files, Site};
use fantoccini::{ClientBuilder, Locator};

/// chromedriver on a free loopback port, stopped on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.is_file())
}

fn start_driver(log: &Path) -> Driver {
    let bin = find_binary(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]).unwrap();
    let port = common::broker::free_port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < end,
            "chromedriver did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, port }
}

/// The folder a sample photo came from (its true label), from the
/// sidecar's source path: `.../examples/photos/<folder>/[...]<file>`.
fn truth(source: &str, photos: &Path) -> String {
    Path::new(source)
        .strip_prefix(photos)
        .ok()
        .and_then(|p| p.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_else(|| panic!("{source} is not under {}", photos.display()))
}

#[test]
fn sorting_frames_in_chromium_fills_the_data_set_that_train_reads() {
    let browser = find_binary(&["/usr/bin/chromium"]);
    let driver_bin = find_binary(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
    if browser.is_none() || driver_bin.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "SKIPPED: no chromium or chromedriver (apt-get install chromium chromium-driver)"
        );
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let photos = common::repo().join("examples/photos");
    let cfg = dashboard::config(t.path(), &photos, 6.0, "sample_every = 1", "");
    let mut site = Site::start(&cfg);
    // A first pass over the 30 photos fills the queue.
    site.wait_json("/api/review", "14 queued frames", |j| {
        j["frames"].as_array().is_some_and(|f| f.len() >= 14)
    });
    let driver = start_driver(&t.path().join("chromedriver.log"));
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let base = format!("http://{}", site.addr);
    let sorted_dir = t.path().join("review/sorted");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let clicks = rt.block_on(async {
        let profile = t.path().join("chromium-profile");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1100,1400",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("chromedriver session");
        // Sort by clicking: the photo's folder says what it shows.
        let mut clicks: Vec<(String, String)> = Vec::new();
        for _ in 0..14 {
            c.goto(&format!("{base}/review")).await.unwrap();
            let card = c
                .find(Locator::Css("div.card[id^='frame-']"))
                .await
                .unwrap();
            let id = card.attr("id").await.unwrap().unwrap()["frame-".len()..].to_string();
            let api = site.get("/api/review").json();
            let frame = api["frames"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["id"] == id.as_str())
                .cloned()
                .unwrap_or_else(|| panic!("{id} not in /api/review"));
            let folder = truth(frame["source"].as_str().unwrap(), &photos);
            let top3: Vec<String> = frame["top_k"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["label"].as_str().unwrap().to_string())
                .collect();
            let choice = match folder.as_str() {
                "nothing" => "empty".to_string(),
                "other_animals" => "unlisted".to_string(),
                label => format!("label:{label}"),
            };
            if !choice.starts_with("label:") || top3.iter().any(|l| format!("label:{l}") == choice)
            {
                // One click on the button.
                card.find(Locator::Css(&format!("button[value='{choice}']")))
                    .await
                    .unwrap()
                    .click()
                    .await
                    .unwrap();
            } else {
                // Not among the top 3: the label list, then its button.
                let select = card
                    .find(Locator::Css("select[name='choice']"))
                    .await
                    .unwrap();
                select.select_by_value(&choice).await.unwrap();
                card.find(Locator::Css("select + button"))
                    .await
                    .unwrap()
                    .click()
                    .await
                    .unwrap();
            }
            // The click lands back on the review page, the frame filed.
            let end = Instant::now() + Duration::from_secs(20);
            loop {
                let url = c.current_url().await.unwrap();
                let src = c.source().await.unwrap();
                if url.path() == "/review" && !src.contains(&format!("frame-{id}")) {
                    break;
                }
                assert!(
                    Instant::now() < end,
                    "frame {id} still on the page after the click"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            clicks.push((id, choice));
        }
        // Screenshots of the three pages.
        for (path, name) in [
            ("/", "status"),
            ("/events", "events"),
            ("/review", "review"),
        ] {
            c.goto(&format!("{base}{path}")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let png = c.screenshot().await.unwrap();
            assert_eq!(&png[..4], b"\x89PNG");
            std::fs::write(shots.join(format!("dashboard-{name}.png")), png).unwrap();
        }
        c.close().await.unwrap();
        clicks
    });
    drop(driver);

    // Every click filed its frame: JPEG and sidecar in the folder of its choice.
    assert_eq!(clicks.len(), 14);
    for (id, choice) in &clicks {
        let folder = match choice.as_str() {
            "empty" => "nothing_empty".to_string(),
            "unlisted" => "nothing_animals".to_string(),
            l => l.trim_start_matches("label:").to_string(),
        };
        let d = sorted_dir.join(&folder);
        assert!(
            d.join(format!("{id}.jpg")).is_file(),
            "{id} not in {}",
            d.display()
        );
        let sidecar: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join(format!("{id}.json"))).unwrap()).unwrap();
        assert_eq!(sidecar["id"], id.as_str());
        assert!(!t.path().join(format!("review/queue/{id}.jpg")).exists());
    }
    let api = site.get("/api/status").json();
    assert_eq!(api["review"]["sorted"], 14, "{api}");
    assert!(site.stop().success(), "{}", site.err());
    let sorted_jpgs: usize = files(&sorted_dir)
        .iter()
        .map(|f| {
            files(&sorted_dir.join(f))
                .iter()
                .filter(|n| n.ends_with(".jpg"))
                .count()
        })
        .sum();
    assert_eq!(sorted_jpgs, 14);

    // camtrapd train on the sorted folder plus more photos: the sample
    // photos of the labels and the empty frames (other_animals counts as
    // "nothing" too).
    let out = t.path().join("retrained");
    let train = common::camtrapd_cmd()
        .args(["train", "--data"])
        .arg(&sorted_dir)
        .arg("--data")
        .arg(&photos)
        .args([
            "--negatives",
            "other_animals",
            "--max-epochs",
            "30",
            "--seed",
            "3",
        ])
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(t.path().join("cache"))
        .arg("--report")
        .arg(t.path().join("report"))
        .output()
        .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&train.stdout),
        String::from_utf8_lossy(&train.stderr),
    );
    assert!(train.status.success(), "{so}\n{se}");
    assert!(
        se.contains(&format!(
            "{} + {} read as",
            sorted_dir.display(),
            photos.display()
        )),
        "{se}"
    );
    // The sorted frames are in the training data (the seeded split lists every image).
    let split = std::fs::read_to_string(out.join("data-split.csv")).unwrap();
    for (id, _) in &clicks {
        assert!(
            split.contains(&format!("{id}.jpg")),
            "{id} not in data-split.csv"
        );
    }
    let manifest = std::fs::read_to_string(out.join("model.toml")).unwrap();
    assert!(manifest.contains("labels = [\"elephant\""), "{manifest}");
    assert!(out.join("model.onnx").is_file());
    eprintln!(
        "screenshots: {}",
        ["status", "events", "review"]
            .map(|n| shots
                .join(format!("dashboard-{n}.png"))
                .display()
                .to_string())
            .join(" ")
    );
}
