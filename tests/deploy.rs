//! Deployment artefacts: the systemd unit's hardening, measured by
//! `systemd-analyze security --offline=yes` (Debian package systemd).

mod common;

use std::process::Command;

#[test]
fn systemd_unit_exposure_is_at_most_2() {
    let unit = common::repo().join("systemd/camtrapd.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze is missing: apt-get install systemd (the CI script installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unparsable: {line}"));
    assert!(score <= 2.0, "{line}");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "RestartPreventExitStatus=78",
        "SupplementaryGroups=video",
        "DeviceAllow=char-video4linux rw",
        "StateDirectory=camtrapd camtrapd/review",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit_text.contains(needed), "the unit lacks {needed}");
    }
}

/// `systemd-analyze verify` on the unit, with `ExecStart` pointed at the
/// binary under test (verify also checks that the command exists).
#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(common::repo().join("systemd/camtrapd.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/camtrapd run"),
        "unexpected ExecStart"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("camtrapd.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/camtrapd", env!("CARGO_BIN_EXE_camtrapd")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is missing: apt-get install systemd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

/// The Debian package description in Cargo.toml (`cargo deb`): every asset
/// exists, the maintainer scripts are valid sh, and the layout is the
/// documented one (/usr/bin, /etc/camtrapd, /usr/share/camtrapd/models).
#[test]
fn debian_package_assets_exist() {
    let root = common::repo();
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().unwrap();
    let mut dests = Vec::new();
    for a in assets {
        let a = a.as_array().unwrap();
        let (src, dest) = (a[0].as_str().unwrap(), a[1].as_str().unwrap());
        dests.push(dest.to_string());
        if src.starts_with("target/") {
            continue; // built by `cargo deb`
        }
        let n = glob::glob(root.join(src).to_str().unwrap())
            .unwrap()
            .count();
        assert!(n > 0, "asset {src} matches no file");
    }
    for want in [
        "usr/bin/",
        "etc/camtrapd/camtrapd.toml",
        "usr/share/camtrapd/models/efficientnet-lite0-imagenet/",
    ] {
        assert!(
            dests.iter().any(|d| d == want),
            "no asset installed to {want}"
        );
    }
    let scripts = root.join(deb["maintainer-scripts"].as_str().unwrap());
    for s in ["postinst", "postrm"] {
        let st = Command::new("sh")
            .arg("-n")
            .arg(scripts.join(s))
            .status()
            .unwrap();
        assert!(st.success(), "{s} is not valid sh");
    }
    let postinst = std::fs::read_to_string(scripts.join("postinst")).unwrap();
    assert!(
        postinst.contains("adduser --quiet --system --group") && postinst.contains("#DEBHELPER#")
    );
}

/// The Debian package's default config parses and names the bundled model;
/// on a machine without a camera, check-config stops at the camera (not at
/// a config or model error) with exit code 75 (retried by the unit), and at
/// a node that is no camera with 78 (not retried).
#[test]
fn debian_default_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::repo().join("packaging/deb/camtrapd.toml"))
        .unwrap()
        .replace(
            "/usr/share/camtrapd/models/efficientnet-lite0-imagenet",
            common::default_model().to_str().unwrap(),
        );
    let cfg = dir.path().join("camtrapd.toml");
    // check-config with the camera at `device`: (exit code, stderr).
    let check = |device: &str| {
        std::fs::write(&cfg, text.replace("/dev/video0", device)).unwrap();
        let out = common::camtrapd_cmd()
            .args(["check-config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), err)
    };
    let (code, err) = check("/nonexistent/video9");
    assert!(err.contains("/nonexistent/video9: no such device"), "{err}");
    assert!(!err.contains("invalid config file"), "{err}");
    // An absent camera is worth retrying (a USB camera that enumerates late
    // at boot): 75, which the unit restarts on; not 78, which it does not.
    assert_eq!(code, Some(75), "{err}");

    // A node that is there but is no camera (/dev/null) is a config error.
    let (code, err) = check("/dev/null");
    assert!(err.contains("/dev/null: not a V4L2 device"), "{err}");
    assert_eq!(code, Some(78), "{err}");
}
