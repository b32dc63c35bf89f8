//! `camtrapd run --config FILE`: the daemon.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::model::Model;
use crate::pipeline::{self, Pipeline};
use crate::review::capture::Capture;
use crate::review::store::Store as ReviewStore;
use crate::shutdown::Shutdown;
use crate::{sink, source};

/// Loads everything the daemon needs, in start-up order, failing before the
/// first frame if anything is wrong: config, model (with self-test), labels,
/// source, sinks. Returns the pipeline and the source.
///
/// With `check_only`, sinks are checked and described (returned as lines)
/// but not started: no broker connection, no spool lock.
pub(crate) fn start(
    config: &Config,
    shutdown: &Shutdown,
    check_only: bool,
) -> anyhow::Result<(Pipeline, Box<dyn source::FrameSource>, Vec<String>)> {
    let model_dir = config.model_dir();
    let model = Model::load(&model_dir).with_context(|| config.model_path_context())?;
    let overrides = config.overrides(model.manifest())?;
    log::info!(
        "model {} ({} labels, sha256 {}…) from {}",
        model.manifest().name,
        model.labels().len(),
        &model.sha256()[..12],
        model_dir.display()
    );
    log::info!("model input {}", model.manifest().input_summary());
    let src = source::open(
        &config.source,
        &config.base_dir(),
        config.limits,
        shutdown.clone(),
    )
    .with_context(|| format!("config {}: [source]", config.file.display()))?;
    let mut pipeline = Pipeline::new(model, &overrides, Vec::new(), config.camera_id())?;
    pipeline.set_events(&config.events);
    pipeline.set_motion(&config.motion);
    check_reachable(&pipeline)?;
    let policy = pipeline.policy();
    let ctx = sink::SinkContext {
        camera: config.camera_id(),
        publishable_labels: (0..policy.labels().len())
            .filter(|&i| policy.publishable(i))
            .map(|i| policy.labels()[i].clone())
            .collect(),
        model_name: pipeline.model().manifest().name.clone(),
        base_dir: config.base_dir(),
    };
    let context = || format!("config {}: [[sinks]]", config.file.display());
    let mut described = sink::check_all(&config.sinks, &ctx).with_context(context)?;
    if let Some(h) = &config.http {
        if let Some(p) = &h.password_file {
            crate::web::server::Auth::from_file(&h.user, &config.base_dir().join(p))
                .map_err(|m| super::CodedError(crate::exit::CONFIG, m))?;
        }
        described.push(format!(
            "dashboard on http://{}/{}",
            h.listen,
            if h.password_file.is_some() {
                " (basic auth)"
            } else {
                ""
            }
        ));
    }
    if config.review.enabled {
        let (folder, dataset) = config.review_dirs();
        described.push(format!(
            "review capture into {} (quota {} MB), sorted into {}",
            folder.join("queue").display(),
            config.review.quota_mb,
            dataset.display()
        ));
    }
    if !check_only {
        pipeline.add_sinks(sink::open_all(&config.sinks, &ctx).with_context(context)?);
        start_dashboard(config, &mut pipeline)?;
    }
    Ok((pipeline, src, described))
}

/// Part of the start-up self-test: refuses a bundle whose raw output on the
/// self-test's grey image lies entirely in 0..1 (probabilities, whatever
/// the manifest says) when, with outputs in 0..1, no published label's score
/// can ever reach its threshold ([`crate::decision::Policy::reachable`]):
/// e.g. probabilities declared `kind = "logits"`, whose softmax squashes
/// every score to about 1/N, so that every frame would be rejected
/// `below_threshold` without a word.
///
/// # Errors
/// [`crate::model::ModelError::Mismatch`] on `output.kind` (exit code 78).
fn check_reachable(pipeline: &Pipeline) -> Result<(), crate::model::ModelError> {
    let model = pipeline.model();
    let out = &model.manifest().output;
    let raw = model.self_test_scores();
    if out.kind != crate::model::manifest::OutputKind::Logits
        || raw.is_empty()
        || raw.iter().any(|v| !(0.0..=1.0).contains(v))
    {
        return Ok(());
    }
    let policy = pipeline.policy();
    let Some(best) = policy.reachable(0.0, 1.0) else {
        return Ok(());
    };
    let published: Vec<usize> = (0..policy.labels().len())
        .filter(|&i| policy.publishable(i))
        .collect();
    if published.is_empty()
        || published
            .iter()
            .any(|&i| best.get(i).is_some_and(|&b| b >= policy.threshold(i)))
    {
        return Ok(());
    }
    let ceiling = published
        .iter()
        .filter_map(|&i| best.get(i).copied())
        .fold(f32::NEG_INFINITY, f32::max);
    let lowest = published
        .iter()
        .map(|&i| policy.threshold(i))
        .fold(f32::INFINITY, f32::min);
    let sum: f32 = raw.iter().sum();
    Err(crate::model::ModelError::Mismatch {
        dir: model.dir().to_path_buf(),
        field: "output.kind".into(),
        message: format!(
            "on the start-up self-test's grey image, output '{}' holds {} values all in 0..1 (sum {sum:.3}): probabilities, not logits. Taken as logits ({}), no label's score can exceed {ceiling:.3}, below every threshold of the published labels (lowest {lowest:.3}), so no frame could ever be published. Set kind = \"probabilities\"; if they do not sum to 1, the softmax runs over the wrong axis (fix the export) or they are sigmoid scores (set activation = \"sigmoid\")",
            out.name,
            raw.len(),
            match out.activation {
                crate::model::manifest::Activation::Softmax => "softmax over them",
                crate::model::manifest::Activation::Sigmoid => "sigmoid of each",
            }
        ),
    })
}

/// Starts review capture (`[review] enabled`) and the web dashboard
/// (`[http]`), and connects them to the pipeline.
fn start_dashboard(config: &Config, pipeline: &mut Pipeline) -> anyhow::Result<()> {
    let review = config.review.enabled.then_some(&config.review);
    if review.is_none() && config.http.is_none() {
        return Ok(());
    }
    let store = match review {
        Some(r) => {
            let (folder, dataset) = config.review_dirs();
            let store = ReviewStore::open(&folder, &dataset, r.quota_mb.saturating_mul(1_000_000))
                .map_err(|e| {
                    super::CodedError(
                        crate::exit::CANTCREAT,
                        format!("config {}: [review]: {e}", config.file.display()),
                    )
                })?;
            Some(std::sync::Arc::new(store))
        }
        None => None,
    };
    let live = config
        .http
        .as_ref()
        .map(|_| crate::live::Live::new(&config.camera_id()));
    let capture = Capture::start(
        store.clone(),
        live.clone(),
        config.review.queue_len,
        config.review.image_side,
    )
    .context("starting the review writer thread")?;
    pipeline.set_dashboard(live.clone(), Some(capture), review);
    if let (Some(h), Some(live)) = (&config.http, live) {
        crate::web::server::start(h, &config.base_dir(), live, store)?;
    }
    Ok(())
}

/// SIGHUP: re-reads the config, reloads the model bundle (so a replaced
/// model file or new calibrated thresholds take effect) and swaps the
/// decision settings, keeping the source and the sinks (camera stream and
/// MQTT session stay up). On any error the running configuration stays.
fn reload(path: &Path, old: &Config, pipeline: &mut Pipeline) -> anyhow::Result<Config> {
    let new = Config::from_path(path)?;
    let dir = new.model_dir();
    let model = Model::load(&dir).with_context(|| new.model_path_context())?;
    let overrides = new.overrides(model.manifest())?;
    pipeline.reconfigure(model, &overrides)?;
    for (what, changed) in [
        ("[source]", new.source != old.source),
        ("[[sinks]]", new.sinks != old.sinks),
        ("[events]", new.events != old.events),
        ("[motion]", new.motion != old.motion),
        ("camera_id", new.camera_id != old.camera_id),
    ] {
        if changed {
            log::warn!(
                "{}: {what} changed; that takes effect after a restart (systemctl restart camtrapd)",
                path.display()
            );
        }
    }
    Ok(new)
}

pub(crate) fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::from_path(config_path)?;
    let shutdown = Shutdown::new();
    shutdown
        .install_signal_handlers()
        .context("installing signal handlers")?;
    let (mut pipeline, mut src, _) = start(&config, &shutdown, false)?;
    log::info!(
        "camtrapd {} running as camera {:?}",
        env!("CARGO_PKG_VERSION"),
        config.camera_id()
    );
    let notifier = shutdown.notifier();
    notifier.ready(&format!(
        "running: camera {}, model {}",
        config.camera_id(),
        pipeline.model().manifest().name
    ));
    if let Some(w) = notifier.watchdog() {
        log::info!("systemd watchdog: {:.1} s", w.as_secs_f64());
    }
    let stats_interval = Duration::from_secs(config.stats.interval_secs);
    let mut current = config;
    let mut on_reload = |p: &mut Pipeline| match reload(config_path, &current, p) {
        Ok(new) => {
            log::info!(
                "reloaded {}: model {}, {} label(s) publishable",
                config_path.display(),
                p.model().manifest().name,
                (0..p.policy().labels().len())
                    .filter(|&i| p.policy().publishable(i))
                    .count()
            );
            current = new;
        }
        Err(e) => log::error!(
            "reload of {} failed, the running configuration stays in effect: {e:#}",
            config_path.display()
        ),
    };
    pipeline::run(
        &mut pipeline,
        src.as_mut(),
        &shutdown,
        stats_interval,
        &mut on_reload,
    )?;
    if shutdown.is_triggered() {
        log::info!("shut down on signal");
    }
    let failed = pipeline.stats().sink_errors;
    if failed > 0 {
        return Err(super::CodedError(
            crate::exit::IOERR,
            format!("{failed} detection(s) could not be delivered to a sink (see the log above)"),
        )
        .into());
    }
    Ok(())
}
