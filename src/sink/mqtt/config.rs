//! `[[sinks]] kind = "mqtt"`: broker address, topics, credentials, TLS,
//! spool and Home Assistant discovery settings, with their checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[[sinks]]` with `kind = "mqtt"`.
///
/// ```toml
/// [[sinks]]
/// kind = "mqtt"
/// host = "localhost"
/// port = 1883
/// topic_prefix = "camtrapd"        # topics: camtrapd/<camera_id>/detection, ...
/// username = "camtrapd"
/// password_file = "/etc/camtrapd/mqtt-password"
/// snapshots = true
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address. Default `localhost`.
    #[serde(default = "default_host")]
    pub host: String,
    /// Broker port. Default 1883, or 8883 when `[sinks.tls]` is given.
    #[serde(default)]
    pub port: Option<u16>,
    /// First topic level. Default `camtrapd`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// MQTT client id. Default `camtrapd-<camera_id>`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// User name for the broker (optional).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password (first line; never logged).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password (never logged).
    #[serde(default)]
    pub password_env: Option<String>,
    /// MQTT keep-alive in seconds (1..=3600). The broker publishes the last
    /// will (`offline`) after 1.5 × this without hearing from the daemon.
    /// Default 30.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    /// Upper bound of the reconnect back-off in seconds (1..=3600). Default 60.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_secs: u64,
    /// The largest MQTT packet in bytes camtrapd *sends*: the broker's
    /// limit (mosquitto's `max_packet_size`/`message_size_limit`); larger
    /// snapshots are shrunk or dropped. Default 2 MiB.
    #[serde(default = "default_max_packet")]
    pub max_packet_size: usize,
    /// The largest message in bytes camtrapd *accepts* on the topic it
    /// subscribes to (Home Assistant's `homeassistant/status`, whose
    /// messages are `online` or `offline`): a larger one is dropped unread,
    /// counted (`inbound_dropped`) and warned about once, and the connection
    /// stays up (64..=16777216). Default 65536.
    #[serde(default = "default_max_incoming")]
    pub max_incoming_size: usize,
    /// What to publish: `"events"` (default: `new`/`update`/`end` messages
    /// on `<prefix>/<camera>/events`, one event per animal visit),
    /// `"detections"` (one message per detected frame on
    /// `<prefix>/<camera>/detection`) or `"both"`. Both kinds go through the
    /// spool (at-least-once).
    #[serde(default = "default_messages")]
    pub messages: crate::sink::Messages,
    /// Publish a JPEG to `<prefix>/<camera>/snapshot` (QoS 0): the best
    /// frame with each event `new`/`update`, and each detected frame when
    /// detections are published. Default false.
    #[serde(default)]
    pub snapshots: bool,
    /// Longest side of snapshot JPEGs in pixels (16..=8192). Default 1280.
    #[serde(default = "default_snapshot_size")]
    pub snapshot_max_size: u32,
    /// Folder for the on-disk spool. Default: `$STATE_DIRECTORY` (set by
    /// systemd's `StateDirectory=`), else `$XDG_STATE_HOME/camtrapd`, else
    /// `~/.local/state/camtrapd`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Spool size bound in MiB; when full the oldest detection is dropped and
    /// counted. Default 64.
    #[serde(default = "default_spool_mb")]
    pub spool_max_mb: f64,
    /// How long a clean shutdown waits for the broker to acknowledge spooled
    /// detections, in seconds. Default 5.
    #[serde(default = "default_drain")]
    pub shutdown_timeout_secs: f64,
    /// TLS (rustls). Absent = plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Home Assistant MQTT discovery.
    #[serde(default)]
    pub home_assistant: HomeAssistantConfig,
}

/// `[sinks.tls]`: TLS with rustls; the server certificate is always verified.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) that signed the broker's
    /// certificate. Default: the system's trust store
    /// (`/etc/ssl/certs/ca-certificates.crt`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain), for brokers that require one.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// `[sinks.home_assistant]`: MQTT discovery messages for Home Assistant.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAssistantConfig {
    /// Publish discovery config messages. Default true.
    #[serde(default = "yes")]
    pub discovery: bool,
    /// Home Assistant's discovery prefix. Default `homeassistant`.
    #[serde(default = "default_ha_prefix")]
    pub discovery_prefix: String,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        HomeAssistantConfig {
            discovery: true,
            discovery_prefix: default_ha_prefix(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_messages() -> crate::sink::Messages {
    crate::sink::Messages::Events
}
fn default_host() -> String {
    "localhost".into()
}
fn default_prefix() -> String {
    "camtrapd".into()
}
fn default_ha_prefix() -> String {
    "homeassistant".into()
}
fn default_keep_alive() -> u64 {
    30
}
fn default_reconnect_max() -> u64 {
    60
}
fn default_max_packet() -> usize {
    2 << 20
}
fn default_max_incoming() -> usize {
    64 << 10
}
fn default_snapshot_size() -> u32 {
    1280
}
fn default_spool_mb() -> f64 {
    64.0
}
fn default_drain() -> f64 {
    5.0
}

/// The largest detection message the daemon sends, in bytes (a detection
/// with top-5 labels of 255 bytes each and a long source path stays below).
pub const MAX_DETECTION_BYTES: usize = 8192;

fn topic_level_ok(s: &str) -> bool {
    !s.is_empty()
        && !s.contains(['+', '#', '\0'])
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.contains("//")
}

impl MqttConfig {
    /// Checks values; returns the field (relative to this table) and the
    /// message with the fix.
    ///
    /// # Errors
    /// `(field, message)` for the first bad value.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let host = self.host.trim();
        if host.contains("://") || host.contains('/') || host.contains(char::is_whitespace) {
            return Err((
                "host",
                format!(
                    "{:?}: give the host name or address only, e.g. \"localhost\" or \"192.168.1.10\"; the port goes in port, TLS in [sinks.tls]",
                    self.host
                ),
            ));
        }
        if host.is_empty() {
            return Err((
                "host",
                "is empty; name the MQTT broker, e.g. \"localhost\"".into(),
            ));
        }
        if self.port == Some(0) {
            return Err((
                "port",
                "0 is not a port; use 1883 (plain) or 8883 (TLS)".into(),
            ));
        }
        if !topic_level_ok(&self.topic_prefix) {
            return Err((
                "topic_prefix",
                format!(
                    "{:?}: use a non-empty topic without '+', '#', or leading/trailing '/', e.g. \"camtrapd\"",
                    self.topic_prefix
                ),
            ));
        }
        if !topic_level_ok(&self.home_assistant.discovery_prefix) {
            return Err((
                "home_assistant.discovery_prefix",
                format!(
                    "{:?}: use Home Assistant's discovery prefix, normally \"homeassistant\"",
                    self.home_assistant.discovery_prefix
                ),
            ));
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 128 {
                return Err(("client_id", "use 1 to 128 characters".into()));
            }
        }
        if !(1..=3600).contains(&self.keep_alive_secs) {
            return Err((
                "keep_alive_secs",
                format!(
                    "{} is out of range; allowed 1..=3600 seconds",
                    self.keep_alive_secs
                ),
            ));
        }
        if !(1..=3600).contains(&self.reconnect_max_secs) {
            return Err((
                "reconnect_max_secs",
                format!(
                    "{} is out of range; allowed 1..=3600 seconds",
                    self.reconnect_max_secs
                ),
            ));
        }
        if self.max_packet_size < MAX_DETECTION_BYTES {
            return Err((
                "max_packet_size",
                format!(
                    "{} bytes is smaller than the largest detection message ({MAX_DETECTION_BYTES} bytes); raise it here and in the broker (mosquitto: max_packet_size / message_size_limit)",
                    self.max_packet_size
                ),
            ));
        }
        if self.max_packet_size > 256 << 20 {
            return Err((
                "max_packet_size",
                format!(
                    "{} bytes is above MQTT's limit of 256 MiB",
                    self.max_packet_size
                ),
            ));
        }
        if !(64..=super::link::READ_LIMIT).contains(&self.max_incoming_size) {
            return Err((
                "max_incoming_size",
                format!(
                    "{} is out of range; allowed 64..={} bytes (Home Assistant's status messages are a few bytes)",
                    self.max_incoming_size,
                    super::link::READ_LIMIT
                ),
            ));
        }
        if !(16..=8192).contains(&self.snapshot_max_size) {
            return Err((
                "snapshot_max_size",
                format!(
                    "{} is out of range; allowed 16..=8192 pixels",
                    self.snapshot_max_size
                ),
            ));
        }
        if !(self.spool_max_mb.is_finite() && (0.01..=1_048_576.0).contains(&self.spool_max_mb)) {
            return Err((
                "spool_max_mb",
                format!(
                    "{} is out of range; allowed 0.01..=1048576 MiB (default 64)",
                    self.spool_max_mb
                ),
            ));
        }
        if !(self.shutdown_timeout_secs.is_finite()
            && (0.0..=300.0).contains(&self.shutdown_timeout_secs))
        {
            return Err((
                "shutdown_timeout_secs",
                format!(
                    "{} is out of range; allowed 0..=300 seconds",
                    self.shutdown_timeout_secs
                ),
            ));
        }
        if self.password_file.is_some() && self.password_env.is_some() {
            return Err((
                "password_env",
                "give either password_file or password_env, not both".into(),
            ));
        }
        if (self.password_file.is_some() || self.password_env.is_some()) && self.username.is_none()
        {
            return Err((
                if self.password_file.is_some() {
                    "password_file"
                } else {
                    "password_env"
                },
                "a password is configured but no username; add username = \"...\"".into(),
            ));
        }
        if let Some(tls) = &self.tls {
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return Err((
                    "tls",
                    "give both cert_file and key_file for a client certificate, or neither".into(),
                ));
            }
        }
        Ok(())
    }

    /// The broker port: `port`, else 8883 with TLS, else 1883.
    pub fn port(&self) -> u16 {
        self.port
            .unwrap_or(if self.tls.is_some() { 8883 } else { 1883 })
    }

    /// Keep-alive as a duration.
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_secs)
    }

    /// Spool bound in bytes.
    pub fn spool_max_bytes(&self) -> u64 {
        (self.spool_max_mb * 1024.0 * 1024.0) as u64
    }

    /// The spool folder (see [`MqttConfig::state_dir`]), relative paths
    /// resolved against `base` (the config file's folder).
    pub fn state_dir(&self, base: &Path) -> PathBuf {
        if let Some(d) = &self.state_dir {
            return base.join(d);
        }
        if let Some(d) = std::env::var_os("STATE_DIRECTORY") {
            // systemd may list several, separated by ':'.
            let s = d.to_string_lossy().to_string();
            if let Some(first) = s.split(':').next().filter(|f| !f.is_empty()) {
                return PathBuf::from(first);
            }
        }
        if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(d).join("camtrapd");
        }
        if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(h).join(".local/state/camtrapd");
        }
        PathBuf::from("/var/lib/camtrapd")
    }
}
