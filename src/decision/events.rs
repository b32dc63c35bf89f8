//! Events: one message per animal visit instead of one per frame.
//!
//! An elephant in front of the camera for 20 s at 1 frame/s gives 20
//! detections; subscribers usually want one *event* for it. The
//! [`EventTracker`] turns the per-frame verdicts into events, per label:
//!
//! * **Confirmation (k of n).** A label is confirmed when it is the
//!   detection in at least `confirm_frames` (k) of the last `window_frames`
//!   (n) classified frames (BirdNET-Go counts detections in a window in the
//!   same spirit; Frigate uses the median score over a short history). A
//!   single-frame fluke never reaches k ≥ 2 and is dropped silently once it
//!   falls out of the window.
//! * **`new`** when a label is confirmed: a fresh event id (UUID v7), the
//!   start time (capture time of the first detection frame still in the
//!   window when it was confirmed), the best score so far and its frame.
//! * **`update`** whenever a later frame of the event beats the best score
//!   (with that frame as the new best snapshot). Other frames only move
//!   `last_seen` and count in `frames`: no message.
//! * **`end`** once the label has not been detected for `end_after_secs`
//!   (measured in capture time, so it also ends while motion gating skips
//!   frames), and for every open event when the daemon stops or reloads.
//!   An animal that returns within `end_after_secs` continues its event; one
//!   that returns later starts a new event (and needs k of n again).
//!
//! Labels are tracked independently: two species in view are two events. A
//! classifier that flips between two labels for one animal gives two events
//! (use `[decision.label_groups]` to merge such labels).
//!
//! Times are frame capture times, so scripted frame sequences give exact,
//! repeatable messages (see the tests at the end of this file).

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::{ModelRef, ScoreFn};

/// `[events]` in the config: how detections become events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// k: detection frames of a label, among the last `window_frames`
    /// classified frames, that confirm it (1..=`window_frames`; 1 publishes
    /// the first detection frame at once, flukes included). Default 2.
    #[serde(default = "default_confirm")]
    pub confirm_frames: usize,
    /// n: the classified frames the confirmation looks back on (1..=100).
    /// Default 3.
    #[serde(default = "default_window")]
    pub window_frames: usize,
    /// Seconds (capture time) without a detection of the label after which
    /// its event ends (0.001..=86400). Keep it above the motion gate's
    /// `heartbeat_secs`, or an animal standing still ends and restarts its
    /// event. Default 30.
    #[serde(default = "default_end_after")]
    pub end_after_secs: f64,
}

fn default_confirm() -> usize {
    2
}
fn default_window() -> usize {
    3
}
fn default_end_after() -> f64 {
    30.0
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            confirm_frames: default_confirm(),
            window_frames: default_window(),
            end_after_secs: default_end_after(),
        }
    }
}

impl EventsConfig {
    /// Checks the ranges; the message names the field and what is allowed.
    ///
    /// # Errors
    /// `(field, message)` for the first setting out of range.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(1..=100).contains(&self.window_frames) {
            return Err((
                "events.window_frames",
                format!("{} is out of range: use 1..=100", self.window_frames),
            ));
        }
        if !(1..=self.window_frames).contains(&self.confirm_frames) {
            return Err((
                "events.confirm_frames",
                format!(
                    "{} is out of range: use 1..=window_frames ({})",
                    self.confirm_frames, self.window_frames
                ),
            ));
        }
        if !(self.end_after_secs.is_finite() && (0.001..=86400.0).contains(&self.end_after_secs)) {
            return Err((
                "events.end_after_secs",
                format!(
                    "{} is out of range: use 0.001..=86400 seconds",
                    self.end_after_secs
                ),
            ));
        }
        Ok(())
    }
}

/// The kind of an event message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A label was confirmed: the event starts.
    New,
    /// A frame of the event beat the best score.
    Update,
    /// The label has not been seen for `end_after_secs` (or the daemon stops).
    End,
}

impl EventKind {
    /// `new`, `update` or `end`, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::New => "new",
            EventKind::Update => "update",
            EventKind::End => "end",
        }
    }
}

/// The best frame of an event so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BestFrame {
    /// Its confidence under `score_fn` (the event's `score`).
    pub score: f32,
    /// Where the frame came from (file path, or device and frame number).
    pub source: String,
    /// Its sequence number within the source.
    pub frame_seq: u64,
    /// Its capture time, RFC 3339 UTC with milliseconds.
    pub captured_at: String,
}

/// One event message (`new`, `update` or `end`), serialised as one JSON
/// object (see docs/mqtt.md, "Events").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventMessage {
    /// `new`, `update` or `end`.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The event's id, a UUID version 7 (RFC 9562): the same in its `new`,
    /// `update` and `end` messages.
    pub id: String,
    /// Camera id from the config.
    pub camera: String,
    /// The label (as `camtrapd labels` prints it, or a label group).
    pub label: String,
    /// The best confidence so far, under `score_fn`.
    pub score: f32,
    /// The score function of `score`.
    pub score_fn: ScoreFn,
    /// Capture time of the first detection frame of the event, RFC 3339.
    pub start_time: String,
    /// Capture time of the last detection frame so far, RFC 3339.
    pub last_seen: String,
    /// On `end`: the same as `last_seen` (when the animal was last seen);
    /// `null` before.
    pub end_time: Option<String>,
    /// Detection frames of this label in the event so far.
    pub frames: u64,
    /// The frame with the best score (its snapshot goes with `new` and
    /// `update` messages when snapshots are on).
    pub best: BestFrame,
    /// The model that made the decisions.
    pub model: ModelRef,
}

/// A label's detection in one classified frame, as the tracker sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Decision label index (into the policy's labels).
    pub label: usize,
    /// Confidence under the score function.
    pub score: f32,
}

/// One label being tracked: a candidate (not yet confirmed) or an open event.
#[derive(Debug)]
struct Track {
    label: usize,
    /// Set once confirmed.
    id: Option<String>,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    frames: u64,
    best_score: f32,
    best_source: String,
    best_seq: u64,
    best_at: DateTime<Utc>,
    best_image: RgbImage,
}

/// Turns per-frame verdicts into events (see the module docs). Call
/// [`EventTracker::observe`] for every classified frame,
/// [`EventTracker::tick`] for frames that were not classified (motion
/// gating), and [`EventTracker::finish`] at shutdown.
#[derive(Debug)]
pub struct EventTracker {
    cfg: EventsConfig,
    end_after: chrono::Duration,
    camera: String,
    labels: Vec<String>,
    score_fn: ScoreFn,
    model: ModelRef,
    /// The label detected in each of the last `window_frames` classified
    /// frames (None: no detection), oldest first.
    history: VecDeque<Option<usize>>,
    tracks: Vec<Track>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl EventTracker {
    /// A tracker for one camera, with the decision's labels, score
    /// function and model (copied into every message). `cfg` must pass
    /// [`EventsConfig::check`] (out-of-range values are clamped).
    pub fn new(
        cfg: &EventsConfig,
        camera: String,
        labels: Vec<String>,
        score_fn: ScoreFn,
        model: ModelRef,
    ) -> EventTracker {
        let mut cfg = cfg.clone();
        cfg.window_frames = cfg.window_frames.clamp(1, 100);
        cfg.confirm_frames = cfg.confirm_frames.clamp(1, cfg.window_frames);
        let end_after = chrono::Duration::microseconds(
            (cfg.end_after_secs.clamp(0.001, 86400.0) * 1e6).round() as i64,
        );
        EventTracker {
            history: VecDeque::with_capacity(cfg.window_frames),
            cfg,
            end_after,
            camera,
            labels,
            score_fn,
            model,
            tracks: Vec::new(),
        }
    }

    /// Events open now (confirmed and not ended).
    pub fn open_events(&self) -> usize {
        self.tracks.iter().filter(|t| t.id.is_some()).count()
    }

    /// Whether decision label `label` has an open (confirmed) event.
    pub fn is_open(&self, label: usize) -> bool {
        self.tracks
            .iter()
            .any(|t| t.label == label && t.id.is_some())
    }

    /// The best frame's image of the open event `id` (for its snapshot).
    pub fn best_image(&self, id: &str) -> Option<&RgbImage> {
        self.tracks
            .iter()
            .find(|t| t.id.as_deref() == Some(id))
            .map(|t| &t.best_image)
    }

    fn message(&self, t: &Track, kind: EventKind) -> EventMessage {
        EventMessage {
            kind,
            id: t.id.clone().unwrap_or_default(),
            camera: self.camera.clone(),
            label: self.labels.get(t.label).cloned().unwrap_or_default(),
            score: t.best_score,
            score_fn: self.score_fn,
            start_time: rfc3339(t.first_seen),
            last_seen: rfc3339(t.last_seen),
            end_time: (kind == EventKind::End).then(|| rfc3339(t.last_seen)),
            frames: t.frames,
            best: BestFrame {
                score: t.best_score,
                source: t.best_source.clone(),
                frame_seq: t.best_seq,
                captured_at: rfc3339(t.best_at),
            },
            model: self.model.clone(),
        }
    }

    /// Ends the open events whose label has not been seen for
    /// `end_after_secs` as of `now` (a frame's capture time), appending
    /// their `end` messages to `out`. Call it for frames that are not
    /// classified; [`EventTracker::observe`] does it itself.
    pub fn tick(&mut self, now: DateTime<Utc>, out: &mut Vec<EventMessage>) {
        let mut i = 0;
        while i < self.tracks.len() {
            let t = &self.tracks[i];
            if t.id.is_some() && now - t.last_seen >= self.end_after {
                let t = self.tracks.swap_remove(i);
                out.push(self.message(&t, EventKind::End));
                // Its old detections must not help confirm a return visit.
                for h in self.history.iter_mut() {
                    if *h == Some(t.label) {
                        *h = None;
                    }
                }
            } else {
                i += 1;
            }
        }
    }

    /// Takes one classified frame: `hit` is its detection (None when the
    /// frame was rejected), `now` its capture time, `source`/`seq` its
    /// origin and `image` its pixels (copied only when it becomes an
    /// event's best frame). Appends the resulting messages to `out`, in
    /// order: `end`s of stale events, then `new`/`update`.
    pub fn observe(
        &mut self,
        hit: Option<Hit>,
        now: DateTime<Utc>,
        source: &str,
        seq: u64,
        image: &RgbImage,
        out: &mut Vec<EventMessage>,
    ) {
        self.tick(now, out);
        if self.history.len() == self.cfg.window_frames {
            self.history.pop_front();
        }
        self.history.push_back(hit.map(|h| h.label));
        let mut improved = None;
        if let Some(h) = hit {
            let idx = match self.tracks.iter().position(|t| t.label == h.label) {
                Some(i) => i,
                None => {
                    self.tracks.push(Track {
                        label: h.label,
                        id: None,
                        first_seen: now,
                        last_seen: now,
                        frames: 0,
                        best_score: f32::NEG_INFINITY,
                        best_source: String::new(),
                        best_seq: 0,
                        best_at: now,
                        best_image: RgbImage::new(0, 0),
                    });
                    self.tracks.len() - 1
                }
            };
            let t = &mut self.tracks[idx];
            t.last_seen = now;
            t.frames += 1;
            if h.score > t.best_score {
                t.best_score = h.score;
                t.best_source.clear();
                t.best_source.push_str(source);
                t.best_seq = seq;
                t.best_at = now;
                t.best_image.clone_from(image);
                improved = Some(idx);
            }
        }
        let k = self.cfg.confirm_frames;
        let mut i = 0;
        while i < self.tracks.len() {
            let label = self.tracks[i].label;
            let in_window = self.history.iter().filter(|h| **h == Some(label)).count();
            if self.tracks[i].id.is_none() {
                if in_window >= k {
                    self.tracks[i].id = Some(uuid::Uuid::now_v7().to_string());
                    out.push(self.message(&self.tracks[i], EventKind::New));
                } else if in_window == 0 {
                    // A fluke that fell out of the window: forget it.
                    self.tracks.swap_remove(i);
                    continue;
                }
            } else if improved == Some(i) {
                out.push(self.message(&self.tracks[i], EventKind::Update));
            }
            i += 1;
        }
    }

    /// Ends every open event (at shutdown or reload), appending their
    /// `end` messages to `out`; candidates are dropped.
    pub fn finish(&mut self, out: &mut Vec<EventMessage>) {
        let mut tracks = std::mem::take(&mut self.tracks);
        tracks.sort_by_key(|t| t.first_seen);
        for t in tracks.iter().filter(|t| t.id.is_some()) {
            out.push(self.message(t, EventKind::End));
        }
        self.history.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const LABELS: [&str; 3] = ["elephant", "hedgehog", "tiger"];
    const E: usize = 0;
    const H: usize = 1;

    fn tracker(k: usize, n: usize, end: f64) -> EventTracker {
        EventTracker::new(
            &EventsConfig {
                confirm_frames: k,
                window_frames: n,
                end_after_secs: end,
            },
            "pen-7".into(),
            LABELS.iter().map(|s| s.to_string()).collect(),
            ScoreFn::Msp,
            ModelRef {
                name: "m".into(),
                sha256: "0123456789ab".into(),
            },
        )
    }

    /// Frame `i` is captured at 12:00:00 + i seconds.
    fn at(i: u64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap() + chrono::Duration::seconds(i as i64)
    }

    /// Runs a script: one entry per classified frame, 1 s apart: `None` =
    /// rejected, `Some((label, score))` = detection. Returns
    /// `(frame index, type, label, score, frames)` per message, and the
    /// messages themselves. `finish` ends open events at the end.
    #[allow(clippy::type_complexity)]
    fn script(
        t: &mut EventTracker,
        frames: &[Option<(usize, f32)>],
        finish: bool,
    ) -> (
        Vec<(u64, &'static str, String, f32, u64)>,
        Vec<EventMessage>,
    ) {
        let img = RgbImage::new(4, 3);
        let mut all = Vec::new();
        let mut summary = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let mut out = Vec::new();
            let hit = f.map(|(label, score)| Hit { label, score });
            t.observe(
                hit,
                at(i as u64),
                &format!("f{i}.jpg"),
                i as u64,
                &img,
                &mut out,
            );
            for m in out {
                summary.push((
                    i as u64,
                    m.kind.as_str(),
                    m.label.clone(),
                    m.score,
                    m.frames,
                ));
                all.push(m);
            }
        }
        if finish {
            let mut out = Vec::new();
            t.finish(&mut out);
            for m in out {
                summary.push((
                    frames.len() as u64,
                    m.kind.as_str(),
                    m.label.clone(),
                    m.score,
                    m.frames,
                ));
                all.push(m);
            }
        }
        (summary, all)
    }

    #[test]
    fn a_single_fluke_frame_is_suppressed() {
        let mut t = tracker(2, 3, 5.0);
        let (s, _) = script(
            &mut t,
            &[None, Some((E, 0.9)), None, None, None, None, None, None],
            true,
        );
        assert!(s.is_empty(), "{s:?}");
        assert_eq!(t.tracks.len(), 0, "the fluke is forgotten");
    }

    #[test]
    fn an_animal_for_20_frames_is_one_event_with_new_updates_and_end() {
        let mut t = tracker(2, 3, 5.0);
        let mut frames = vec![None];
        // 20 detection frames, scores rising to 0.8 at frame 10 then falling.
        for i in 0..20u32 {
            let s = 0.6 + 0.02 * (i.min(10) as f32) - 0.01 * (i.saturating_sub(10) as f32);
            frames.push(Some((E, s)));
        }
        frames.extend([None; 8]);
        let (s, msgs) = script(&mut t, &frames, true);
        // new at the second detection frame (frame 2), updates while the score
        // rises (frames 3..=11), end 5 s after the last detection (frame 20 → 25).
        assert_eq!(s.first().map(|m| (m.0, m.1)), Some((2, "new")));
        assert!((s[0].3 - 0.62).abs() < 1e-6, "{}", s[0].3);
        assert_eq!(s[0].4, 2);
        let updates: Vec<u64> = s.iter().filter(|m| m.1 == "update").map(|m| m.0).collect();
        assert_eq!(updates, (3..=11).collect::<Vec<_>>());
        let end = s.last().unwrap();
        assert_eq!((end.0, end.1, end.4), (25, "end", 20));
        assert!((end.3 - 0.8).abs() < 1e-6, "best score {}", end.3);
        assert_eq!(s.len(), 1 + 9 + 1);
        let id = &msgs[0].id;
        assert!(
            msgs.iter().all(|m| &m.id == id),
            "one id for the whole visit"
        );
        let e = msgs.last().unwrap();
        assert_eq!(e.start_time, "2026-11-29T12:00:01.000Z");
        assert_eq!(e.last_seen, "2026-11-29T12:00:20.000Z");
        assert_eq!(e.end_time.as_deref(), Some("2026-11-29T12:00:20.000Z"));
        assert_eq!(e.best.frame_seq, 11);
        assert_eq!(e.best.source, "f11.jpg");
        assert_eq!(e.best.captured_at, "2026-11-29T12:00:11.000Z");
        assert_eq!(msgs[0].end_time, None);
    }

    #[test]
    fn flicker_stays_one_event() {
        // Detected every other frame (the classifier is unsure at times):
        // 2 of every 3 frames once it starts, so it is confirmed and never ends.
        let mut t = tracker(2, 3, 5.0);
        let mut frames = Vec::new();
        for i in 0..12 {
            frames.push(if i % 2 == 0 { Some((E, 0.7)) } else { None });
        }
        let (s, _) = script(&mut t, &frames, true);
        assert_eq!(
            s,
            vec![
                (2, "new", "elephant".to_string(), 0.7, 2),
                (12, "end", "elephant".to_string(), 0.7, 6)
            ]
        );
    }

    #[test]
    fn an_animal_that_leaves_and_returns() {
        let mut t = tracker(2, 3, 4.0);
        let d = Some((E, 0.7));
        // Visit 1: frames 0-2. Gone 3-4 (last seen 2, back at 5: 3 s < 4 s):
        // the same event. Gone 7-10 (last seen 6, ends at 10 = 6 + 4 s),
        // back at 11-12: a new event.
        let frames = [
            d,
            d,
            d,
            None,
            None,
            d,
            d,
            None,
            None,
            None,
            None,
            d,
            Some((E, 0.9)),
            None,
        ];
        let (s, msgs) = script(&mut t, &frames, true);
        assert_eq!(
            s,
            vec![
                (1, "new", "elephant".to_string(), 0.7, 2),
                (10, "end", "elephant".to_string(), 0.7, 5),
                (12, "new", "elephant".to_string(), 0.9, 2),
                (14, "end", "elephant".to_string(), 0.9, 2),
            ]
        );
        assert_eq!(msgs[0].id, msgs[1].id);
        assert_eq!(msgs[2].id, msgs[3].id);
        assert_ne!(msgs[0].id, msgs[2].id);
        assert_eq!(msgs[1].last_seen, "2026-11-29T12:00:06.000Z");
        assert_eq!(msgs[2].start_time, "2026-11-29T12:00:11.000Z");
    }

    #[test]
    fn a_return_needs_k_frames_again_after_the_end() {
        // The end clears the label from the window: the first frame of a
        // return must not confirm together with an old frame.
        let mut t = tracker(2, 5, 1.0);
        let d = Some((E, 0.7));
        let (s, _) = script(&mut t, &[d, d, None, None, d, None, None, None], false);
        assert_eq!(
            s,
            vec![
                (1, "new", "elephant".to_string(), 0.7, 2),
                (2, "end", "elephant".to_string(), 0.7, 2)
            ]
        );
    }

    #[test]
    fn two_labels_are_two_events_and_a_fluke_of_a_third_is_ignored() {
        let mut t = tracker(2, 4, 2.0);
        let e = Some((E, 0.8));
        let h = Some((H, 0.6));
        let (s, _) = script(
            &mut t,
            &[e, h, e, h, Some((2, 0.99)), None, None, None, None],
            false,
        );
        assert_eq!(
            s,
            vec![
                (2, "new", "elephant".to_string(), 0.8, 2),
                (3, "new", "hedgehog".to_string(), 0.6, 2),
                (4, "end", "elephant".to_string(), 0.8, 2),
                (5, "end", "hedgehog".to_string(), 0.6, 2),
            ]
        );
    }

    #[test]
    fn k_equals_1_publishes_the_first_frame() {
        let mut t = tracker(1, 1, 10.0);
        let (s, _) = script(&mut t, &[Some((H, 0.6))], true);
        assert_eq!(
            s,
            vec![
                (0, "new", "hedgehog".to_string(), 0.6, 1),
                (1, "end", "hedgehog".to_string(), 0.6, 1)
            ]
        );
    }

    #[test]
    fn the_best_image_is_the_best_frame() {
        let mut t = tracker(2, 3, 10.0);
        let mut out = Vec::new();
        let a = RgbImage::from_pixel(2, 2, image::Rgb([1, 1, 1]));
        let b = RgbImage::from_pixel(3, 2, image::Rgb([2, 2, 2]));
        t.observe(
            Some(Hit {
                label: E,
                score: 0.6,
            }),
            at(0),
            "a",
            0,
            &a,
            &mut out,
        );
        t.observe(
            Some(Hit {
                label: E,
                score: 0.9,
            }),
            at(1),
            "b",
            1,
            &b,
            &mut out,
        );
        t.observe(
            Some(Hit {
                label: E,
                score: 0.7,
            }),
            at(2),
            "a",
            2,
            &a,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].best.source, "b");
        assert_eq!(t.best_image(&out[0].id), Some(&b));
        assert_eq!(t.open_events(), 1);
    }

    #[test]
    fn config_ranges_are_checked() {
        let ok = EventsConfig::default();
        assert!(ok.check().is_ok());
        let bad = EventsConfig {
            confirm_frames: 4,
            ..ok.clone()
        };
        assert_eq!(bad.check().unwrap_err().0, "events.confirm_frames");
        let bad = EventsConfig {
            end_after_secs: f64::NAN,
            ..ok
        };
        assert_eq!(bad.check().unwrap_err().0, "events.end_after_secs");
    }
}
