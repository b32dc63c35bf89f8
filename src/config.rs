//! The daemon's configuration file (TOML).
//!
//! ```toml
//! camera_id = "enclosure-1"          # default: the host name
//!
//! [source]
//! kind = "files"                     # image files; kind = "v4l2" for a camera (see source::v4l2::V4l2Config)
//! path = "/srv/frames"               # a file, a folder, or a glob
//! fps = 1.0                          # optional pacing
//!
//! [model]
//! path = "/usr/share/camtrapd/models/efficientnet-lite0-imagenet"
//!
//! [decision]
//! default_threshold = 0.5            # 0..1 score a label must reach
//! publish_labels = ["tusker"]        # optional; default: every label
//! top_k = 3
//! [decision.thresholds]
//! "tusker" = 0.4                     # per-label overrides
//!
//! [[sinks]]
//! kind = "stdout"
//! ```
//!
//! Unknown fields are errors. Every error names the file, the line and
//! column, the field and what is allowed. Relative paths are relative to the
//! folder of the config file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::decision::{self, Overrides};
use crate::decode::DecodeLimits;
use crate::model::manifest::Manifest;
use crate::sink::stdout::StdoutConfig;
use crate::sink::SinkConfig;
use crate::source::SourceConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Camera id reported with each detection (default: the host name).
    #[serde(default)]
    pub camera_id: Option<String>,
    /// Where frames come from.
    pub source: SourceConfig,
    /// The model bundle.
    pub model: ModelConfig,
    /// Thresholds and publishing rules.
    #[serde(default)]
    pub decision: DecisionConfig,
    /// Where detections go (default: one stdout sink).
    #[serde(default = "default_sinks")]
    pub sinks: Vec<SinkConfig>,
    /// Decoding limits.
    #[serde(default)]
    pub limits: DecodeLimits,
    /// Periodic counters in the log.
    #[serde(default)]
    pub stats: StatsConfig,
    /// `[events]`: how per-frame detections become events.
    #[serde(default)]
    pub events: crate::decision::EventsConfig,
    /// `[motion]`: motion gating (run the model only on change).
    #[serde(default)]
    pub motion: crate::motion::MotionConfig,
    /// `[review]`: frames kept for the dashboard's review queue.
    #[serde(default)]
    pub review: crate::review::ReviewConfig,
    /// `[http]`: the web dashboard (off without this table).
    #[serde(default)]
    pub http: Option<crate::web::HttpConfig>,
    /// The config file this was read from (set by [`Config::from_path`]).
    #[serde(skip)]
    pub file: PathBuf,
    #[serde(skip)]
    text: String,
}

fn default_sinks() -> Vec<SinkConfig> {
    vec![SinkConfig::Stdout(StdoutConfig::default())]
}

/// Re-checks one `kind = "..."` table (source or sink) field by field, so
/// that errors inside it get a position (see [`crate::toml_errors::toml_from_str_tagged`]).
fn check_variant(
    root: &str,
    kind: &str,
    de: toml::de::ValueDeserializer<'_>,
) -> Option<Result<(), serde_path_to_error::Error<toml::de::Error>>> {
    use crate::source::files::FilesConfig;
    fn check<T: serde::de::DeserializeOwned>(
        de: toml::de::ValueDeserializer<'_>,
    ) -> Result<(), serde_path_to_error::Error<toml::de::Error>> {
        serde_path_to_error::deserialize::<_, T>(de).map(|_| ())
    }
    match (root, kind) {
        ("source", "files") => Some(check::<FilesConfig>(de)),
        ("source", "v4l2") => Some(check::<crate::source::v4l2::V4l2Config>(de)),
        ("sinks", "stdout") => Some(check::<StdoutConfig>(de)),
        ("sinks", "mqtt") => Some(check::<crate::sink::mqtt::MqttConfig>(de)),
        _ => None,
    }
}

/// `[model]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The model bundle folder (holding model.onnx and model.toml).
    pub path: Spanned<PathBuf>,
}

/// `[decision]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionConfig {
    /// The score function (`msp`, `msp_temp`, `max_logit`, `energy`,
    /// `sigmoid`, `knn`); default: the thresholds file's, else the head's own
    /// 0..1 score.
    #[serde(default)]
    pub score: Option<Spanned<crate::decision::ScoreFn>>,
    /// Calibrated thresholds written by `camtrapd calibrate` (relative to
    /// the config file's folder).
    #[serde(default)]
    pub thresholds_file: Option<Spanned<PathBuf>>,
    /// Threshold for labels without their own (0..1 for the 0..1 scores);
    /// overrides the thresholds file's and the model's default.
    #[serde(default)]
    pub default_threshold: Option<Spanned<f32>>,
    /// Per-label thresholds (0..1).
    #[serde(default)]
    pub thresholds: BTreeMap<Spanned<String>, Spanned<f32>>,
    /// Labels that may be published; absent = all labels.
    #[serde(default)]
    pub publish_labels: Option<Vec<Spanned<String>>>,
    /// Label groups: a published label made of several model labels, e.g.
    /// `elephant = ["African elephant", "tusker", "Indian elephant"]`; its score is
    /// the sum of its members' probabilities. When present, thresholds and
    /// `publish_labels` name groups, and other model labels count as unknown.
    #[serde(default)]
    pub label_groups: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    /// Number of best labels reported with each detection (default 3).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            score: None,
            thresholds_file: None,
            label_groups: BTreeMap::new(),
            default_threshold: None,
            thresholds: BTreeMap::new(),
            publish_labels: None,
            top_k: default_top_k(),
        }
    }
}

fn default_top_k() -> usize {
    3
}

/// `[stats]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Seconds between counter lines in the log at info level (0 = only at exit).
    #[serde(default = "default_stats_interval")]
    pub interval_secs: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            interval_secs: default_stats_interval(),
        }
    }
}

fn default_stats_interval() -> u64 {
    60
}

/// Configuration errors. Exit code 78 (`EX_CONFIG`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The config path.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Malformed TOML, a wrong type, or an unknown field (toml's message has line and column).
    #[error("invalid config file {path}, {message}")]
    Parse {
        /// The config path.
        path: PathBuf,
        /// toml's message with line, column and the offending text.
        message: String,
    },
    /// A value is not allowed.
    #[error("invalid config file {path}, line {line}, column {column}: `{field}`: {message}")]
    Invalid {
        /// The config path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted field name.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

impl Config {
    /// Reads and checks a config file (syntax, types, unknown fields, ranges).
    /// Label names are checked against the model by [`Config::overrides`].
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, line, column and field.
    pub fn from_path(path: &Path) -> Result<Config, ConfigError> {
        let text = crate::read::read_text(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::from_str(&text, path)
    }

    /// Parses config text; `path` names the file in errors and anchors relative paths.
    ///
    /// # Errors
    /// As [`Config::from_path`].
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut c: Config = crate::toml_errors::toml_from_str_tagged(text, &check_variant)
            .map_err(|e| {
                if e.field.is_empty() {
                    ConfigError::Parse {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    }
                } else {
                    ConfigError::Invalid {
                        path: path.to_path_buf(),
                        line: e.line,
                        column: e.column,
                        field: e.field,
                        message: e.message,
                    }
                }
            })?;
        c.file = path.to_path_buf();
        c.text = text.to_string();
        c.check()?;
        Ok(c)
    }

    /// Where `[model] path` is, for errors loading the model it names:
    /// "invalid config file F, line L, column C: `model.path` = "P"".
    pub fn model_path_context(&self) -> String {
        let (line, column) = crate::text::line_col(&self.text, self.model.path.span().start);
        format!(
            "invalid config file {}, line {line}, column {column}: `model.path` = {:?}",
            self.file.display(),
            self.model.path.get_ref()
        )
    }

    fn invalid<T>(&self, span: Option<&Spanned<T>>, field: &str, message: String) -> ConfigError {
        let (line, column) = span
            .map(|s| crate::text::line_col(&self.text, s.span().start))
            .or_else(|| crate::toml_errors::position(&self.text, field))
            .unwrap_or((1, 1));
        ConfigError::Invalid {
            path: self.file.clone(),
            line,
            column,
            field: field.to_string(),
            message,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        // Thresholds are 0..1 for the 0..1 scores; in their own units for the
        // others (checked against the thresholds file's score at start-up).
        let bounded = match &self.decision.score {
            Some(s) => s.get_ref().bounded(),
            None => self.decision.thresholds_file.is_none(),
        };
        let check_threshold = |t: f32| decision::check_threshold_for(t, bounded);
        if let Some(t) = &self.decision.default_threshold {
            check_threshold(*t.get_ref())
                .map_err(|m| self.invalid(Some(t), "decision.default_threshold", m))?;
        }
        for (label, t) in &self.decision.thresholds {
            check_threshold(*t.get_ref()).map_err(|m| {
                self.invalid(
                    Some(t),
                    &format!("decision.thresholds.{:?}", label.get_ref()),
                    m,
                )
            })?;
        }
        if let Err((field, m)) = self.events.check() {
            return Err(self.invalid::<()>(None, field, m));
        }
        if let Err((field, m)) = self.motion.check() {
            return Err(self.invalid::<()>(None, &field, m));
        }
        if let Err((field, m)) = self.review.check() {
            return Err(self.invalid::<()>(None, field, m));
        }
        if let Some(h) = &self.http {
            if let Err((field, m)) = h.check() {
                return Err(self.invalid::<()>(None, field, m));
            }
        }
        if !(1..=100).contains(&self.decision.top_k) {
            return Err(self.invalid::<()>(
                None,
                "decision.top_k",
                format!("{} is out of range; allowed 1..=100", self.decision.top_k),
            ));
        }
        if let Some(list) = &self.decision.publish_labels {
            if list.is_empty() {
                return Err(self.invalid::<()>(
                    None,
                    "decision.publish_labels",
                    "the list is empty, so nothing would ever be published; list labels, or remove the line to publish all".into(),
                ));
            }
        }
        if let Some(id) = &self.camera_id {
            if id.is_empty()
                || id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(self.invalid::<()>(
                    None,
                    "camera_id",
                    format!("{id:?}: use 1 to 64 ASCII letters, digits, '-' or '_' (it becomes part of MQTT topics)"),
                ));
            }
        }
        match &self.source {
            SourceConfig::Files(f) => {
                if f.path.trim().is_empty() {
                    return Err(self.invalid::<()>(
                        None,
                        "source.path",
                        "is empty; name a file, a folder or a glob pattern".into(),
                    ));
                }
                if let Some(fps) = f.fps {
                    crate::source::files::fps_interval(fps)
                        .map_err(|m| self.invalid::<()>(None, "source.fps", m))?;
                }
            }
            SourceConfig::V4l2(v) => {
                v.check().map_err(|(field, m)| {
                    self.invalid::<()>(None, &format!("source.{field}"), m)
                })?;
            }
        }
        if self.model.path.get_ref().as_os_str().is_empty() {
            return Err(self.invalid(
                Some(&self.model.path),
                "model.path",
                "is empty; name the model bundle folder".into(),
            ));
        }
        let l = &self.limits;
        for (field, v, min) in [
            ("limits.max_file_bytes", l.max_file_bytes, 1024),
            ("limits.max_dimension", u64::from(l.max_dimension), 16),
            ("limits.max_alloc_bytes", l.max_alloc_bytes, 1 << 20),
        ] {
            if v < min {
                return Err(self.invalid::<()>(
                    None,
                    field,
                    format!(
                        "{v} is too small: every frame would be refused; allowed at least {min}"
                    ),
                ));
            }
        }
        if l.max_dimension > 65_535 {
            return Err(self.invalid::<()>(
                None,
                "limits.max_dimension",
                format!(
                    "{} is too large; allowed at most 65535 pixels",
                    l.max_dimension
                ),
            ));
        }
        let mut brokers: Vec<(String, u16)> = Vec::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            if let SinkConfig::Mqtt(m) = sink {
                m.check().map_err(|(field, message)| {
                    self.invalid::<()>(None, &format!("sinks[{i}].{field}"), message)
                })?;
                let broker = (m.host.trim().to_ascii_lowercase(), m.port());
                if brokers.contains(&broker) {
                    return Err(self.invalid::<()>(
                        None,
                        &format!("sinks[{i}].host"),
                        format!(
                            "a second mqtt sink for {}:{}; one sink per broker (it publishes every topic)",
                            broker.0, broker.1
                        ),
                    ));
                }
                brokers.push(broker);
            }
        }
        if self.sinks.is_empty() {
            return Err(self.invalid::<()>(
                None,
                "sinks",
                "no sink: add [[sinks]] kind = \"stdout\"".into(),
            ));
        }
        Ok(())
    }

    /// The folder relative paths are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        match self.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// The model bundle folder, resolved.
    pub fn model_dir(&self) -> PathBuf {
        self.base_dir().join(self.model.path.get_ref())
    }

    /// The review folder and the sorted data set folder, resolved.
    pub fn review_dirs(&self) -> (PathBuf, PathBuf) {
        let folder = self.base_dir().join(&self.review.folder);
        let dataset = match &self.review.dataset {
            Some(d) => self.base_dir().join(d),
            None => folder.join("sorted"),
        };
        (folder, dataset)
    }

    /// The thresholds file, resolved against the config's folder.
    pub fn thresholds_file(&self) -> Option<PathBuf> {
        self.decision
            .thresholds_file
            .as_ref()
            .map(|p| self.base_dir().join(p.get_ref()))
    }

    /// The camera id: `camera_id`, or the host name.
    pub fn camera_id(&self) -> String {
        self.camera_id.clone().unwrap_or_else(|| {
            // Host names may hold dots or other characters that do not belong in topics.
            let h: String = gethostname::gethostname()
                .to_string_lossy()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            if h.is_empty() {
                "camtrapd".into()
            } else {
                h
            }
        })
    }

    /// The decision settings, with every label checked against the model's.
    ///
    /// The thresholds file is read here (its own errors name it).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] at the position of a label the model does not
    /// have, or of a `thresholds_file` that cannot be read.
    pub fn overrides(&self, manifest: &Manifest) -> Result<Overrides, ConfigError> {
        let model_label = |l: &Spanned<String>, field: &str| -> Result<String, ConfigError> {
            let s = l.get_ref();
            if manifest.labels.iter().any(|x| x == s) {
                Ok(s.clone())
            } else {
                let e = decision::unknown_label(s, &manifest.labels);
                Err(self.invalid(Some(l), field, format!("{e} (model {})", manifest.name)))
            }
        };
        // Group members are model labels, each in one group at most.
        let mut label_groups = Vec::new();
        let mut grouped = std::collections::HashSet::new();
        for (group, members) in &self.decision.label_groups {
            let field = format!("decision.label_groups.{:?}", group.get_ref());
            if members.is_empty() {
                return Err(self.invalid(
                    Some(group),
                    &field,
                    "the group is empty; list the model labels it stands for".into(),
                ));
            }
            let mut m = Vec::with_capacity(members.len());
            for l in members {
                let name = model_label(l, &field)?;
                if !grouped.insert(name.clone()) {
                    return Err(self.invalid(
                        Some(l),
                        &field,
                        format!("{name:?} is already in another group (or twice in this one)"),
                    ));
                }
                m.push(name);
            }
            label_groups.push((group.get_ref().clone(), m));
        }
        // With groups, thresholds and publish_labels name groups; else model labels.
        let group_names: Vec<String> = label_groups.iter().map(|(g, _)| g.clone()).collect();
        let known = |l: &Spanned<String>, field: &str| -> Result<String, ConfigError> {
            if group_names.is_empty() {
                return model_label(l, field);
            }
            let s = l.get_ref();
            if group_names.iter().any(|g| g == s) {
                Ok(s.clone())
            } else {
                let e = decision::unknown_label(s, &group_names);
                Err(self.invalid(
                    Some(l),
                    field,
                    format!("{e}: with [decision.label_groups], name a group"),
                ))
            }
        };
        let mut thresholds = BTreeMap::new();
        for (l, t) in &self.decision.thresholds {
            thresholds.insert(known(l, "decision.thresholds")?, *t.get_ref());
        }
        let publish_labels = match &self.decision.publish_labels {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|l| known(l, "decision.publish_labels"))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let calibrated = match (&self.decision.thresholds_file, self.thresholds_file()) {
            (Some(span), Some(path)) => {
                Some(crate::decision::Calibrated::load(&path).map_err(|e| {
                    self.invalid(Some(span), "decision.thresholds_file", e.to_string())
                })?)
            }
            _ => None,
        };
        Ok(Overrides {
            score_fn: self.decision.score.as_ref().map(|s| *s.get_ref()),
            calibrated,
            default_threshold: self
                .decision
                .default_threshold
                .as_ref()
                .map(|t| *t.get_ref()),
            thresholds,
            publish_labels,
            top_k: self.decision.top_k,
            label_groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"camera_id = "pen-3"
[source]
kind = "files"
path = "frames"
fps = 2.0

[model]
path = "../models/m"

[decision]
default_threshold = 0.6
publish_labels = ["cat"]
[decision.thresholds]
"dog" = 0.7
"#;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::from_str(t, Path::new("/etc/camtrapd/camtrapd.toml"))
    }

    #[test]
    fn camera_source_parses_and_its_errors_have_positions() {
        let cam = GOOD.replace(
            "kind = \"files\"\npath = \"frames\"\nfps = 2.0",
            "kind = \"v4l2\"\ndevice = \"/dev/v4l/by-id/usb-cam-video-index0\"\nformat = \"MJPG\"\nwidth = 1280\nheight = 720\nfps = 15",
        );
        let c = parse(&cam).unwrap();
        match &c.source {
            SourceConfig::V4l2(v) => {
                assert_eq!(v.device, "/dev/v4l/by-id/usb-cam-video-index0");
                assert_eq!(v.format, crate::source::v4l2::FormatChoice::Mjpg);
                assert_eq!((v.width, v.height, v.fps), (1280, 720, Some(15.0)));
                assert_eq!(v.classify_interval_secs, 1.0);
                assert_eq!(v.warmup_frames, 5);
            }
            other => panic!("expected a v4l2 source, got {other:?}"),
        }
        let e = parse(&cam.replace("format = \"MJPG\"", "format = \"mjpeg\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 5") && e.contains("source.format"), "{e}");
        assert!(e.contains("MJPG") && e.contains("YUYV"), "{e}");
        let e = parse(&cam.replace("fps = 15", "fps = 15\nclassify_interval_secs = -2"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`source.classify_interval_secs`: -2 is out of range"),
            "{e}"
        );
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.camera_id(), "pen-3");
        assert_eq!(c.model_dir(), PathBuf::from("/etc/camtrapd/../models/m"));
        assert_eq!(c.decision.top_k, 3);
        assert_eq!(c.sinks, vec![SinkConfig::Stdout(StdoutConfig::default())]);
        assert_eq!(c.stats.interval_secs, 60);
        match &c.source {
            SourceConfig::Files(f) => {
                assert_eq!(f.path, "frames");
                assert_eq!(f.fps, Some(2.0));
                assert!(!f.repeat);
            }
            other => panic!("expected a files source, got {other:?}"),
        }
    }

    #[test]
    fn unknown_field_reports_file_line_column() {
        let e = parse(&GOOD.replace("default_threshold", "default_treshold"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/camtrapd/camtrapd.toml"), "{e}");
        assert!(e.contains("line 11, column 1"), "{e}");
        assert!(
            e.contains("unknown field `default_treshold`") && e.contains("default_threshold"),
            "{e}"
        );
    }

    #[test]
    fn errors_inside_source_and_sinks_have_positions() {
        let e = parse(&GOOD.replace("path = \"frames\"", "pth = \"frames\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4, column 1: `source.pth`: unknown field `pth`, expected one of `path`, `fps`, `loop`"), "{e}");
        let t = format!("{GOOD}\n[[sinks]]\nkind = \"stdout\"\npretty = \"yes\"\n");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("line 18, column 10: `sinks[0].pretty`: invalid type: string \"yes\", expected true or false (no quotes)"), "{e}");
    }

    #[test]
    fn values_that_would_make_the_daemon_useless_are_refused_at_their_position() {
        let cases = [
            (
                GOOD.replace("fps = 2.0", "fps = 1e-300"),
                "line 5, column 7: `source.fps`: 1e-300 is out of range",
            ),
            (
                GOOD.replace("[\"cat\"]", "[]"),
                "line 12, column 18: `decision.publish_labels`: the list is empty",
            ),
            (
                GOOD.replace("publish_labels", "top_k = 0\npublish_labels"),
                "line 12, column 9: `decision.top_k`: 0 is out of range",
            ),
            (
                GOOD.replace("\"pen-3\"", "\"pen 3\""),
                "line 1, column 13: `camera_id`: \"pen 3\"",
            ),
            (
                format!("{GOOD}[limits]\nmax_dimension = 0\n"),
                "`limits.max_dimension`: 0 is too small",
            ),
            (
                GOOD.replace("path = \"frames\"", "path = \"\""),
                "line 4, column 8: `source.path`: is empty",
            ),
        ];
        for (text, want) in cases {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{e}\nwanted: {want}");
        }
    }

    #[test]
    fn unknown_source_kind_lists_kinds() {
        let e = parse(&GOOD.replace("kind = \"files\"", "kind = \"camera\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("camera") && e.contains("files"), "{e}");
    }

    #[test]
    fn threshold_out_of_range_points_at_the_value() {
        let e = parse(&GOOD.replace("\"dog\" = 0.7", "\"dog\" = 7")).unwrap_err();
        match &e {
            ConfigError::Invalid {
                line,
                column,
                field,
                message,
                ..
            } => {
                assert_eq!((*line, *column), (14, 9));
                assert_eq!(field, "decision.thresholds.\"dog\"");
                assert!(message.contains("0.0..=1.0"), "{message}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn wrong_type_is_reported() {
        let e = parse(&GOOD.replace("fps = 2.0", "fps = \"fast\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "line 5, column 7: `source.fps`: invalid type: string \"fast\", expected a number such as 1.0 (no quotes)"
            ),
            "{e}"
        );
    }

    #[test]
    fn label_groups_are_checked_with_positions() {
        let m = crate::model::manifest::test_manifest(
            "\"cat\", \"wildcat\", \"dog\"",
            "layout = \"NCHW\"\nwidth = 2\nheight = 2\ndatum_type = \"f32\"\nresize = \"squash\"",
            "softmax",
            "",
        );
        let base = GOOD
            .replace("\"dog\" = 0.7", "\"felid\" = 0.7")
            .replace("[\"cat\"]", "[\"felid\"]");
        let ok = format!("{base}[decision.label_groups]\nfelid = [\"cat\", \"wildcat\"]\n");
        let o = parse(&ok).unwrap().overrides(&m).unwrap();
        assert_eq!(
            o.label_groups,
            vec![(
                "felid".to_string(),
                vec!["cat".to_string(), "wildcat".to_string()]
            )]
        );
        assert_eq!(o.publish_labels, Some(vec!["felid".to_string()]));
        let bad = format!("{base}[decision.label_groups]\nfelid = [\"cat\", \"lynx\"]\n");
        let e = parse(&bad).unwrap().overrides(&m).unwrap_err().to_string();
        assert!(
            e.contains("line 16, column 17") && e.contains("\"lynx\" is not a label"),
            "{e}"
        );
        let twice =
            format!("{base}[decision.label_groups]\nfelid = [\"cat\"]\nother = [\"cat\"]\n");
        let e = parse(&twice)
            .unwrap()
            .overrides(&m)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 17, column 10") && e.contains("already in another group"),
            "{e}"
        );
        let model_label = format!("{GOOD}[decision.label_groups]\nfelid = [\"cat\"]\n");
        let e = parse(&model_label)
            .unwrap()
            .overrides(&m)
            .unwrap_err()
            .to_string();
        assert!(e.contains("name a group"), "{e}");
    }

    #[test]
    fn labels_are_checked_against_the_model() {
        let m = crate::model::manifest::test_manifest(
            "\"cat\", \"wildcat\"",
            "layout = \"NCHW\"\nwidth = 2\nheight = 2\ndatum_type = \"f32\"\nresize = \"squash\"",
            "softmax",
            "",
        );
        let c = parse(GOOD).unwrap();
        match c.overrides(&m).unwrap_err() {
            ConfigError::Invalid {
                line,
                column,
                field,
                message,
                ..
            } => {
                assert_eq!((line, column), (14, 1));
                assert_eq!(field, "decision.thresholds");
                assert!(
                    message.contains("\"dog\" is not a label of the model"),
                    "{message}"
                );
            }
            other => panic!("{other}"),
        }
        let c = parse(&GOOD.replace("\"dog\" = 0.7", "")).unwrap();
        let o = c.overrides(&m).unwrap();
        assert_eq!(o.publish_labels, Some(vec!["cat".to_string()]));
        assert_eq!(o.default_threshold, Some(0.6));
        let c = parse(
            &GOOD
                .replace("\"dog\" = 0.7", "")
                .replace("[\"cat\"]", "[\"Cat\"]"),
        )
        .unwrap();
        let e = c.overrides(&m).unwrap_err().to_string();
        assert!(
            e.contains("line 12, column 19") && e.contains("did you mean \"cat\", \"wildcat\""),
            "{e}"
        );
    }
}
