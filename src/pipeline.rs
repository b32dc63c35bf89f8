//! The pipeline: one frame through motion gate → preprocess → model →
//! decision → events → sinks, with per-stage timing and counters. [`run`]
//! drives it from a source until the source ends or shutdown is requested
//! (the daemon's main loop). The motion gate runs in the source, before the
//! frame is decoded for the model ([`FrameSource::next_event_gated`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::decision::events::Hit;
use crate::decision::{
    Decision, Detection, EventMessage, EventTracker, EventsConfig, Latency, ModelRef, Overrides,
    Policy, PolicyError, Verdict,
};
use crate::decode::{DecodeError, DecodeTarget};
use crate::frame::Frame;
use crate::live::{LabelInfo, Live, ModelInfo};
use crate::model::{Model, ModelError};
use crate::motion::{MotionConfig, MotionGate};
use crate::preprocess::{PreprocessError, Preprocessor};
use crate::review::capture::{Capture, Job};
use crate::review::{Kind, Selector, Sidecar, SidecarModel};
use crate::shutdown::Shutdown;
use crate::sink::{Sink, SinkError};
use crate::source::{FrameSource, SourceEvent};
use crate::stats::Stats;

/// Errors that stop the pipeline (never caused by a bad frame).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Inference failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Preprocessing failed (a model/tensor mismatch).
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    /// A sink's destination is gone for good; the daemon stops (exit 74) rather
    /// than drop every later detection.
    #[error("sink {sink}: {message}")]
    SinkClosed {
        /// The sink's name.
        sink: String,
        /// Why.
        message: String,
    },
    /// The source gave up (exit code 66).
    #[error("source: {0}")]
    SourceLost(String),
    /// The decision settings do not fit the model (a label it lacks, a
    /// thresholds file for another score function or model, ...).
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// The result for one classified frame (borrowing the pipeline's reusable decision).
#[derive(Debug)]
pub struct Classified<'a> {
    /// Scores, top-k, threshold and verdict.
    pub decision: &'a Decision,
    /// Per-stage latency in ms.
    pub latency: Latency,
}

/// Model, preprocessing, decision policy and sinks for one camera.
pub struct Pipeline {
    model: Model,
    pre: Preprocessor,
    policy: Policy,
    decision: Decision,
    sinks: Vec<Box<dyn Sink>>,
    stats: Stats,
    camera: String,
    model_ref: ModelRef,
    events_cfg: EventsConfig,
    events: EventTracker,
    /// Event messages of the current frame (reused).
    event_out: Vec<EventMessage>,
    gate: Option<MotionGate>,
    /// The dashboard's state, when the web server runs.
    live: Option<Arc<Live>>,
    /// The writer thread of review frames and dashboard images.
    capture: Option<Capture>,
    /// Which frames review capture keeps (review capture on).
    selector: Option<Selector>,
    /// When the latest frame was last handed to the writer.
    last_latest: Option<Instant>,
    /// When the dashboard's counters were last updated, and frames_in then.
    last_live: Option<(Instant, u64)>,
    /// Bundles loaded by reloads since start.
    reloads: u64,
}

/// How often the dashboard's latest frame is refreshed.
const LATEST_EVERY: Duration = Duration::from_secs(2);
/// How often the dashboard's counters are refreshed.
const LIVE_EVERY: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("camera", &self.camera)
            .field("model", &self.model)
            .finish()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Rounds ms to µs for reporting.
fn round_us(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

impl Pipeline {
    /// Assembles a pipeline around a loaded model.
    ///
    /// # Errors
    /// [`PipelineError::Policy`] if `overrides` names a label the model lacks
    /// or the thresholds do not fit (see [`Policy::with_model`]).
    pub fn new(
        model: Model,
        overrides: &Overrides,
        sinks: Vec<Box<dyn Sink>>,
        camera: String,
    ) -> Result<Pipeline, PipelineError> {
        let (policy, pre, model_ref, decision) = Pipeline::model_state(&model, overrides)?;
        let events_cfg = EventsConfig::default();
        let events = EventTracker::new(
            &events_cfg,
            camera.clone(),
            policy.labels().to_vec(),
            policy.score_fn(),
            model_ref.clone(),
        );
        Ok(Pipeline {
            model,
            pre,
            policy,
            decision,
            sinks,
            stats: Stats::new(),
            camera,
            model_ref,
            events_cfg,
            events,
            event_out: Vec::new(),
            gate: None,
            live: None,
            capture: None,
            selector: None,
            last_latest: None,
            last_live: None,
            reloads: 0,
        })
    }

    /// Connects the dashboard: `live` receives the counters, events and
    /// latest frame; `capture` is the writer thread; `review` (with review
    /// capture on) says which frames are kept.
    pub fn set_dashboard(
        &mut self,
        live: Option<Arc<Live>>,
        capture: Option<Capture>,
        review: Option<&crate::review::ReviewConfig>,
    ) {
        self.live = live;
        self.selector = review
            .filter(|_| capture.as_ref().is_some_and(|c| c.store().is_some()))
            .map(Selector::new);
        self.capture = capture;
        self.publish_model();
    }

    /// The model and thresholds as the dashboard shows them.
    fn model_info(&self) -> ModelInfo {
        let p = &self.policy;
        ModelInfo {
            name: self.model.manifest().name.clone(),
            sha256: self.model.sha256().to_string(),
            score_fn: Some(p.score_fn()),
            labels: (0..p.labels().len())
                .map(|i| LabelInfo {
                    label: p.labels()[i].clone(),
                    threshold: p.threshold(i),
                    published: p.publishable(i),
                })
                .collect(),
            thresholds_file: p.thresholds_source().map(|f| f.display().to_string()),
            loaded_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    fn publish_model(&self) {
        if let Some(live) = &self.live {
            let info = self.model_info();
            let reloads = self.reloads;
            live.update(|s| {
                s.model = info;
                s.reloads = reloads;
            });
        }
    }

    /// Updates the dashboard's counters and frame rate (at most once per
    /// second unless `force`; skipped when the server holds the lock).
    pub fn publish_live(&mut self, force: bool) {
        let Some(live) = self.live.clone() else {
            return;
        };
        let now = Instant::now();
        let fps = match self.last_live {
            Some((t, _)) if !force && now - t < LIVE_EVERY => return,
            Some((t, n)) if now > t => {
                self.stats.frames_in.saturating_sub(n) as f64 / (now - t).as_secs_f64()
            }
            _ => 0.0,
        };
        self.last_live = Some((now, self.stats.frames_in));
        let snap = self.stats.snapshot();
        live.try_update(|s| {
            if let Some(c) = &snap.camera {
                s.online = c.online;
            }
            s.stats = Some(snap);
            s.fps = fps;
        });
    }

    /// Hands the current frame to the review writer when the selector
    /// keeps it, and the event best frames among `event_out` that are this
    /// frame; refreshes the dashboard's latest frame every few seconds.
    fn capture_frame(&mut self, frame: &Frame, in_event: bool) {
        let Some(capture) = &self.capture else {
            return;
        };
        let now = Instant::now();
        if self.live.is_some() && self.last_latest.is_none_or(|t| now - t >= LATEST_EVERY) {
            self.last_latest = Some(now);
            capture.offer(|| Job::Latest {
                image: frame.image.clone(),
                captured_at: frame
                    .captured_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            });
        }
        let Some(selector) = self.selector.as_mut() else {
            return;
        };
        let d = &self.decision;
        let mut keep: Vec<(Kind, String, Option<String>)> = Vec::new();
        if let Some(kind) = selector.select(d, in_event, now) {
            keep.push((kind, uuid::Uuid::now_v7().to_string(), None));
        }
        for m in &self.event_out {
            if matches!(
                m.kind,
                crate::decision::EventKind::New | crate::decision::EventKind::Update
            ) && m.best.frame_seq == frame.seq
                && m.best.source == frame.source_id
            {
                keep.push((Kind::Event, m.id.clone(), Some(m.id.clone())));
            }
        }
        if keep.is_empty() {
            return;
        }
        let labels = self.policy.labels();
        for (kind, id, event_id) in keep {
            let sidecar = Sidecar {
                id,
                kind,
                captured_at: frame
                    .captured_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                camera: self.camera.clone(),
                source: frame.source_id.clone(),
                frame_seq: frame.seq,
                model: SidecarModel {
                    name: self.model.manifest().name.clone(),
                    sha256: self.model.sha256().to_string(),
                },
                score_fn: self.policy.score_fn(),
                top_k: d.top_k_scores(labels),
                verdict: match d.verdict {
                    Verdict::Detection => "detection".into(),
                    Verdict::Rejected(_) => "rejected".into(),
                },
                reason: match d.verdict {
                    Verdict::Detection => None,
                    Verdict::Rejected(r) => Some(r.as_str().into()),
                },
                score: d.top_score(),
                threshold: d.threshold,
                event_id,
            };
            capture.offer(|| Job::Save {
                sidecar: Box::new(sidecar),
                image: frame.image.clone(),
            });
        }
    }

    /// Sets how detections become events (`[events]`; default
    /// [`EventsConfig::default`]). Open events are ended first.
    pub fn set_events(&mut self, cfg: &EventsConfig) {
        self.end_events();
        self.events_cfg = cfg.clone();
        self.events = self.new_tracker();
    }

    /// Sets motion gating (`[motion]`): with `enabled = false`, every
    /// frame is classified.
    pub fn set_motion(&mut self, cfg: &MotionConfig) {
        self.gate = cfg.enabled.then(|| MotionGate::new(cfg));
    }

    fn new_tracker(&self) -> EventTracker {
        EventTracker::new(
            &self.events_cfg,
            self.camera.clone(),
            self.policy.labels().to_vec(),
            self.policy.score_fn(),
            self.model_ref.clone(),
        )
    }

    /// Ends every open event and publishes the `end` messages.
    fn end_events(&mut self) {
        self.event_out.clear();
        self.events.finish(&mut self.event_out);
        if let Some(e) = self.publish_events() {
            log::error!("{e}");
        }
    }

    /// Publishes `event_out` to every sink, each `new`/`update` with the
    /// event's best frame. Failures are logged and counted.
    fn publish_events(&mut self) -> Option<PipelineError> {
        let mut fatal = None;
        for m in &self.event_out {
            log::info!(
                "{}: event {} {} {:?} {:.3} ({} frame(s))",
                self.camera,
                m.kind.as_str(),
                m.id,
                m.label,
                m.score,
                m.frames
            );
            if m.kind == crate::decision::EventKind::New {
                self.stats.events += 1;
            }
            let best = self.events.best_image(&m.id);
            if let Some(live) = &self.live {
                live.event(m);
                if let (Some(c), Some(img)) = (&self.capture, best) {
                    c.offer(|| Job::Thumb {
                        event_id: m.id.clone(),
                        image: img.clone(),
                    });
                }
            }
            for s in &mut self.sinks {
                match s.publish_event(m, best) {
                    Ok(()) => {}
                    Err(SinkError::Closed(message)) => {
                        self.stats.sink_errors += 1;
                        fatal.get_or_insert(PipelineError::SinkClosed {
                            sink: s.name().to_string(),
                            message,
                        });
                    }
                    Err(e) => {
                        self.stats.sink_errors += 1;
                        log::error!("sink {}: {e}", s.name());
                    }
                }
            }
        }
        self.event_out.clear();
        fatal
    }

    /// Everything derived from a model and the decision settings: the policy
    /// (checked against the model's sha256 and kNN bank), the preprocessor,
    /// the model's identity for detections, and the reusable decision.
    fn model_state(
        model: &Model,
        overrides: &Overrides,
    ) -> Result<(Policy, Preprocessor, ModelRef, Decision), PipelineError> {
        let policy = Policy::with_model(
            model.manifest(),
            overrides,
            Some(model.sha256()),
            model.knn_bank(),
        )?;
        let model_ref = ModelRef {
            name: model.manifest().name.clone(),
            sha256: model.sha256()[..12].to_string(),
        };
        let decision = Decision {
            scores: Vec::with_capacity(model.labels().len()),
            top_k: Vec::with_capacity(overrides.top_k.max(1)),
            ..Decision::default()
        };
        Ok((
            policy,
            Preprocessor::new(model.manifest()),
            model_ref,
            decision,
        ))
    }

    /// Adds sinks (after [`Pipeline::new`], once the policy has told which
    /// labels may be published).
    pub fn add_sinks(&mut self, sinks: Vec<Box<dyn Sink>>) {
        self.sinks.extend(sinks);
    }

    /// Swaps in a new model and decision settings (SIGHUP reload), checked
    /// exactly as at start-up; the sinks and counters stay. On error nothing
    /// changes.
    ///
    /// # Errors
    /// As [`Pipeline::new`].
    pub fn reconfigure(
        &mut self,
        model: Model,
        overrides: &Overrides,
    ) -> Result<(), PipelineError> {
        let (policy, pre, model_ref, decision) = Pipeline::model_state(&model, overrides)?;
        // Labels or the score function may change: events of the old model end.
        self.end_events();
        self.model = model;
        self.policy = policy;
        self.pre = pre;
        self.model_ref = model_ref;
        self.decision = decision;
        self.events = self.new_tracker();
        self.reloads += 1;
        self.publish_model();
        Ok(())
    }

    /// How small frames may be decoded for this pipeline: what the model's
    /// preprocessing samples, and the largest image any sink needs (the MQTT
    /// snapshot size when snapshots are on). When only the model needs the
    /// pixels (no sink wants images), only the part a centre crop reads
    /// ([`DecodeTarget::crop`]); the motion gate does not stop that, as it
    /// reads the frame before it is decoded for the model
    /// ([`FrameSource::next_event_gated`]).
    /// Sources get it through [`FrameSource::set_decode_target`].
    pub fn decode_target(&self) -> DecodeTarget {
        let min_longest_side = self
            .sinks
            .iter()
            .map(|s| s.image_side())
            .chain(self.capture.as_ref().map(Capture::image_side))
            .max()
            .unwrap_or(0);
        DecodeTarget {
            input: Some(self.pre.geometry()),
            min_longest_side,
            crop: min_longest_side == 0,
        }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The resolved decision policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The counters, mutable (for snapshots).
    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Classifies one frame and decides on it, counting the outcome, without
    /// publishing. Allocates nothing per frame after the first.
    ///
    /// # Errors
    /// [`PipelineError`] on inference or preprocessing failure.
    pub fn classify(&mut self, frame: &Frame) -> Result<Classified<'_>, PipelineError> {
        self.stats.frames_in += 1;
        let t0 = Instant::now();
        self.pre
            .run_window(&frame.image, frame.window, self.model.input_mut())?;
        let t1 = Instant::now();
        self.model.run()?;
        let t2 = Instant::now();
        let embedding = if self.policy.score_fn() == crate::decision::ScoreFn::Knn {
            self.model.embedding_output()?
        } else {
            None
        };
        self.policy
            .decide(self.model.scores_output()?, embedding, &mut self.decision);
        let t3 = Instant::now();
        self.stats.classified += 1;
        let (pre, inf, dec) = (ms(t1 - t0), ms(t2 - t1), ms(t3 - t2));
        self.stats.record_inference_ms(inf);
        let latency = Latency {
            decode: round_us(frame.decode_ms),
            preprocess: round_us(pre),
            inference: round_us(inf),
            decision: round_us(dec),
            total: round_us(frame.decode_ms + pre + inf + dec),
        };
        let verdict = self.decision.verdict;
        if let Verdict::Rejected(r) = verdict {
            self.stats.reject(r);
        }
        if log::log_enabled!(log::Level::Debug) {
            let labels = self.policy.labels();
            let top = self.decision.top().unwrap_or(0);
            log::debug!(
                "{} {}: top {:?} {:.3} (threshold {:.2}) -> {} [decode {:.1} ms, preprocess {:.1} ms, inference {:.1} ms]",
                self.camera,
                frame.source_id,
                labels[top],
                self.decision.top_score(),
                self.decision.threshold,
                match verdict {
                    Verdict::Detection => "detection",
                    Verdict::Rejected(r) => r.as_str(),
                },
                latency.decode,
                latency.preprocess,
                latency.inference
            );
        }
        Ok(Classified {
            decision: &self.decision,
            latency,
        })
    }

    /// Builds the detection event for the last classified frame.
    pub fn detection(&self, frame: &Frame, latency: Latency) -> Detection {
        let labels = self.policy.labels();
        let d = &self.decision;
        let top = d.top().unwrap_or(0);
        Detection {
            id: uuid::Uuid::now_v7().to_string(),
            camera: self.camera.clone(),
            label: labels[top].clone(),
            score: d.confidence,
            score_fn: self.policy.score_fn(),
            threshold: d.threshold,
            top_k: d.top_k_scores(labels),
            source: frame.source_id.clone(),
            frame_seq: frame.seq,
            captured_at: frame
                .captured_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            model: self.model_ref.clone(),
            latency_ms: latency,
        }
    }

    /// The motion gate (`[motion] enabled`), which [`run`] hands to the
    /// source ([`FrameSource::next_event_gated`]) so that a frame it skips
    /// is never decoded for the model.
    pub fn gate_mut(&mut self) -> Option<&mut MotionGate> {
        self.gate.as_mut()
    }

    /// Counts a frame the motion gate skipped ([`SourceEvent::Still`]) and
    /// moves the event tracker's clock to its capture time, publishing any
    /// `end` message that falls due.
    ///
    /// # Errors
    /// [`PipelineError::SinkClosed`] when a sink is closed for good.
    pub fn still(
        &mut self,
        captured_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), PipelineError> {
        self.stats.frames_in += 1;
        self.stats.gated += 1;
        self.events.tick(captured_at, &mut self.event_out);
        match self.publish_events() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs one frame through the model and the decision (the motion gate,
    /// if any, has let it through: [`FrameSource::next_event_gated`], or
    /// [`MotionGate::check`] on a whole frame); publishes a detection to
    /// every sink and feeds the event tracker, publishing its messages.
    /// Returns the verdict. A failing sink is logged and counted, never
    /// fatal (except [`SinkError::Closed`]).
    ///
    /// # Errors
    /// [`PipelineError`] on inference or preprocessing failure, or a sink
    /// closed for good.
    pub fn process(&mut self, frame: &Frame) -> Result<Verdict, PipelineError> {
        let latency = self.classify(frame)?.latency;
        let verdict = self.decision.verdict;
        let mut hit = None;
        if verdict == Verdict::Detection {
            self.stats.detections += 1;
            hit = self.decision.top().map(|label| Hit {
                label,
                score: self.decision.confidence,
            });
            let det = self.detection(frame, latency);
            log::info!(
                "{}: detection {:?} {:.3} in {}",
                self.camera,
                det.label,
                det.score,
                det.source
            );
            for s in &mut self.sinks {
                match s.publish(&det, frame) {
                    Ok(()) => {}
                    Err(SinkError::Closed(message)) => {
                        self.stats.sink_errors += 1;
                        return Err(PipelineError::SinkClosed {
                            sink: s.name().to_string(),
                            message,
                        });
                    }
                    Err(e) => {
                        self.stats.sink_errors += 1;
                        log::error!("sink {}: {e}", s.name());
                    }
                }
            }
        }
        self.events.observe(
            hit,
            frame.captured_at,
            &frame.source_id,
            frame.seq,
            &frame.image,
            &mut self.event_out,
        );
        let in_event = hit.is_some_and(|h| self.events.is_open(h.label));
        self.capture_frame(frame, in_event);
        if let Some(e) = self.publish_events() {
            return Err(e);
        }
        Ok(verdict)
    }

    /// Counts and logs a frame that could not be decoded.
    pub fn unreadable(&mut self, source_id: &str, error: &DecodeError) {
        self.stats.frames_in += 1;
        self.stats.unreadable(error.reason());
        log::warn!("{source_id}: skipped: {error}");
    }

    /// Logs a camera going offline or coming back, and tells every sink
    /// (the MQTT sink publishes it on its `camera_status` topic).
    pub fn source_status(&mut self, online: bool, detail: &str) {
        if let Some(live) = &self.live {
            live.update(|s| {
                s.online = online;
                s.source_detail = detail.to_string();
            });
        }
        if online {
            log::info!("{}: camera online: {detail}", self.camera);
        } else {
            log::warn!(
                "{}: camera offline: {detail} (reopening it until it is back)",
                self.camera
            );
        }
        for s in &mut self.sinks {
            s.source_status(online, detail);
        }
    }

    /// Logs the counters and hands them to every sink (e.g. the MQTT stats topic).
    pub fn report_stats(&mut self, label: &str) {
        let snap = self.stats.snapshot();
        if let Some(live) = &self.live {
            let s2 = snap.clone();
            live.try_update(|s| s.stats = Some(s2));
        }
        log::info!("{label}: {snap}");
        for s in &mut self.sinks {
            s.stats(&snap);
        }
    }

    /// Ends open events (publishing their `end` messages), then flushes
    /// every sink (at shutdown).
    pub fn flush(&mut self) {
        self.end_events();
        for s in &mut self.sinks {
            if let Err(e) = s.flush() {
                self.stats.sink_errors += 1;
                log::error!("sink {}: flush: {e}", s.name());
            }
        }
    }
}

/// Runs `pipeline` on `source` until the source ends or `shutdown` triggers;
/// logs the counters every `stats_interval` (if non-zero) and at the end.
/// Between frames, a reload request (SIGHUP) calls `reload`; every event
/// tells the systemd watchdog that the pipeline is making progress.
///
/// # Errors
/// [`PipelineError`] when inference itself fails (not for bad frames).
pub fn run(
    pipeline: &mut Pipeline,
    source: &mut dyn FrameSource,
    shutdown: &Shutdown,
    stats_interval: Duration,
    reload: &mut dyn FnMut(&mut Pipeline),
) -> Result<(), PipelineError> {
    let mut last_stats = Instant::now();
    log::info!("source: {}", source.describe());
    source.set_decode_target(pipeline.decode_target());
    while !shutdown.is_triggered() {
        if shutdown.take_reload() {
            shutdown.notifier().reloading();
            reload(pipeline);
            source.set_decode_target(pipeline.decode_target());
            shutdown.notifier().ready("running");
        }
        let event = match pipeline.gate.as_mut() {
            Some(gate) => source.next_event_gated(gate),
            None => source.next_event(),
        };
        match event {
            SourceEvent::Frame(frame) => {
                if let Err(e) = pipeline.process(&frame) {
                    pipeline.flush();
                    log::info!("final stats: {}", pipeline.stats_mut().snapshot());
                    return Err(e);
                }
                source.recycle(frame);
            }
            SourceEvent::Still {
                source_id,
                captured_at,
                gate,
                decode_ms,
            } => {
                log::trace!(
                    "{source_id}: still ({:.2} % changed; {decode_ms:.2} ms)",
                    gate.changed() * 100.0
                );
                if let Err(e) = pipeline.still(captured_at) {
                    pipeline.flush();
                    log::info!("final stats: {}", pipeline.stats_mut().snapshot());
                    return Err(e);
                }
            }
            SourceEvent::Unreadable { source_id, error } => pipeline.unreadable(&source_id, &error),
            SourceEvent::Status { online, detail } => pipeline.source_status(online, &detail),
            SourceEvent::End => break,
            SourceEvent::Lost(why) => {
                pipeline.flush();
                log::info!("final stats: {}", pipeline.stats_mut().snapshot());
                return Err(PipelineError::SourceLost(why));
            }
        }
        shutdown.notifier().alive();
        if pipeline.live.is_some()
            && pipeline
                .last_live
                .is_none_or(|(t, _)| t.elapsed() >= LIVE_EVERY)
        {
            pipeline.stats.camera = source.camera_stats();
            pipeline.publish_live(false);
        }
        if !stats_interval.is_zero() && last_stats.elapsed() >= stats_interval {
            last_stats = Instant::now();
            pipeline.stats.camera = source.camera_stats();
            pipeline.report_stats("stats");
        }
    }
    shutdown.notifier().stopping();
    pipeline.stats.camera = source.camera_stats();
    pipeline.report_stats("final stats");
    pipeline.flush();
    Ok(())
}
