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
        "StateDirectory=camtrapd",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit_text.contains(needed), "the unit lacks {needed}");
    }
}
