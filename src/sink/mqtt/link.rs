//! The MQTT connection thread: runs rumqttc's event loop, reconnects with
//! exponential back-off and jitter, and reports what happens on the wire
//! ([`LinkEvent`]) to the outbox. It never blocks the pipeline: the pipeline
//! only talks to the outbox through a queue.
//!
//! Each (re)connection uses a fresh rumqttc client and event loop, so no
//! half-sent state survives a disconnect: the outbox re-sends whatever the
//! broker has not acknowledged from its spool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{
    Client, ConnectReturnCode, ConnectionError, Event, Incoming, LastWill, MqttOptions, Outgoing,
    QoS, StateError, Transport,
};

use super::config::MqttConfig;
use super::Msg;

/// What the connection thread reports to the outbox.
pub(crate) enum LinkEvent {
    /// CONNACK received; publish through this client until [`LinkEvent::Down`].
    Connected(Client),
    /// The event loop took a PUBLISH off the request queue and gave it this
    /// packet id (0 for QoS 0). Reported in request order.
    Sent(u16),
    /// The broker acknowledged the QoS 1 PUBLISH with this packet id.
    PubAck(u16),
    /// Home Assistant announced `online` on its status topic.
    HomeAssistantOnline,
    /// An inbound message larger than `max_incoming_size` was dropped
    /// unread ([`Inbound`]).
    InboundDropped(Inbound),
    /// The connection is gone; the client from `Connected` is dead.
    Down,
}

/// An inbound message camtrapd dropped for its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inbound {
    /// The topic it came on.
    pub topic: String,
    /// Its size in bytes (the payload; over [`READ_LIMIT`], the whole packet).
    pub size: usize,
    /// Larger than [`READ_LIMIT`]: the connection was closed to get rid of
    /// it, and camtrapd no longer subscribes to `topic` until it restarts.
    pub unsubscribed: bool,
}

/// The largest inbound packet rumqttc reads into memory (16 MiB). A larger
/// one makes it close the connection (it stops reading rather than buffer
/// it); camtrapd then reconnects without the subscription that brought it,
/// so that a retained message cannot make it reconnect forever. Messages
/// between `max_incoming_size` and this are read, dropped and counted on a
/// connection that stays up.
pub(crate) const READ_LIMIT: usize = 16 << 20;

/// Settings the thread needs, resolved at start-up.
pub(crate) struct LinkSettings {
    pub options: MqttOptions,
    pub broker: String,
    pub reconnect_max: Duration,
    pub ha_status_topic: Option<String>,
    /// `max_incoming_size`: larger inbound messages are dropped.
    pub max_incoming: usize,
}

/// Builds rumqttc options: client id, keep-alive, credentials, last will
/// (`offline`, retained, QoS 1), packet size limits (outgoing:
/// `max_packet_size`; incoming: [`READ_LIMIT`]) and TLS.
///
/// # Errors
/// A message naming the setting and the fix (unreadable password or
/// certificate files).
pub(crate) fn options(
    cfg: &MqttConfig,
    client_id: &str,
    availability_topic: &str,
    base: &std::path::Path,
) -> Result<MqttOptions, String> {
    let mut o = MqttOptions::new(client_id, cfg.host.trim(), cfg.port());
    o.set_keep_alive(cfg.keep_alive());
    o.set_clean_session(true);
    o.set_max_packet_size(READ_LIMIT, cfg.max_packet_size);
    o.set_inflight(super::outbox::MAX_INFLIGHT);
    o.set_last_will(LastWill::new(
        availability_topic,
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(user) = &cfg.username {
        let password = match (&cfg.password_file, &cfg.password_env) {
            (Some(f), _) => {
                let p = base.join(f);
                let text = crate::read::read_text(&p).map_err(|e| {
                    format!(
                        "password_file {}: {e}; create it (one line, mode 0600) or use password_env",
                        p.display()
                    )
                })?;
                if let Some(w) = crate::read::secret_exposure(&p, "MQTT password_file") {
                    log::warn!("{w}");
                }
                text.lines().next().unwrap_or("").to_string()
            }
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                format!("password_env: environment variable {var} is not set (systemd: Environment= or EnvironmentFile=)")
            })?,
            (None, None) => String::new(),
        };
        o.set_credentials(user.clone(), password);
    }
    if let Some(tls) = &cfg.tls {
        o.set_transport(Transport::tls_with_config(super::tls::client_config(
            tls, base,
        )?));
    }
    Ok(o)
}

/// Explains a connection error in the user's terms, with the fix.
/// `handshake` is true when the error came before the broker accepted the
/// connection (no CONNACK yet).
pub(crate) fn explain(e: &ConnectionError, broker: &str, handshake: bool) -> String {
    let tls = broker.starts_with("mqtts://");
    let text = e.to_string();
    if text.contains("CertificateRequired") {
        return format!(
            "the broker at {broker} requires a client certificate ({text}): set tls.cert_file and tls.key_file"
        );
    }
    if text.contains("alert") && tls {
        return format!(
            "the broker at {broker} refused the TLS session ({text}): check tls.cert_file / tls.key_file and the broker's TLS settings"
        );
    }
    match e {
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword) => format!(
            "broker {broker} refused the user name or password: check username and password_file / password_env"
        ),
        ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized) => format!(
            "broker {broker} refused the connection as not authorised (a wrong user name or password, or no access for this client): check username and password_file / password_env"
        ),
        ConnectionError::ConnectionRefused(code) => {
            format!("broker {broker} refused the connection: {code:?}")
        }
        ConnectionError::Tls(t) if t.to_string().contains("certificate") => format!(
            "TLS handshake with {broker} failed: {t}; check that tls.ca_file holds the CA that signed the broker's certificate and that host matches a name in it"
        ),
        ConnectionError::Tls(t) => format!(
            "TLS handshake with {broker} failed: {t}; check that the port is the broker's TLS listener (usually 8883, plain MQTT is usually 1883)"
        ),
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "cannot reach broker {broker}: connection refused (is the broker running and listening on that port?)"
        ),
        ConnectionError::NetworkTimeout => format!(
            "connection to {broker} timed out (check host, port and firewall)"
        ),
        other if handshake && !tls => format!(
            "the broker at {broker} closed the connection before accepting it ({other}): if that port is a TLS listener (usually 8883), add [sinks.tls]"
        ),
        ConnectionError::Io(io) => format!("connection to {broker} lost: {io}"),
        other => format!("connection to {broker} lost: {other}"),
    }
}

/// The size of the inbound packet that made rumqttc close the connection
/// because it is over its read limit ([`READ_LIMIT`]), if that is what
/// `e` is.
fn too_large_to_read(e: &ConnectionError) -> Option<usize> {
    match e {
        ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(n),
        )) => Some(*n),
        _ => None,
    }
}

/// Back-off before reconnect attempt `attempt` (1-based): 1 s doubling up
/// to `max`, with "equal jitter" (a random half to full of it) so that many
/// cameras do not reconnect in lock-step after a broker restart.
pub(crate) fn backoff(attempt: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(max);
    base.mul_f64(0.5 + 0.5 * fastrand::f64())
}

/// A connection that lasts less than this before the broker drops it counts
/// as flapping.
const SHORT_LIVED: Duration = Duration::from_secs(10);

/// The connection thread's loop; returns when `stop` is set (or the outbox is gone).
pub(crate) fn run(settings: LinkSettings, tx: SyncSender<Msg>, stop: Arc<AtomicBool>) {
    let mut attempt: u32 = 0;
    let mut last_error: Option<String> = None;
    let mut down_since: Option<Instant> = None;
    let mut short_lived: u32 = 0;
    let mut flap_warned = false;
    // Cleared when a message on the Home Assistant status topic was too
    // large to read at all ([`READ_LIMIT`]).
    let mut ha_status_topic = settings.ha_status_topic.clone();
    while !stop.load(Ordering::SeqCst) {
        let (client, mut conn) = Client::new(settings.options.clone(), 64);
        let mut pending = Some(client);
        let mut connected_at: Option<Instant> = None;
        let error = loop {
            let ev = match conn.recv() {
                Ok(ev) => ev,
                // Every client handle is gone: the outbox shut us down.
                Err(_) => return,
            };
            let m = match ev {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    connected_at = Some(Instant::now());
                    match down_since.take() {
                        Some(t) if !flap_warned => log::info!(
                            "mqtt: reconnected to {} after {:.1} s",
                            settings.broker,
                            t.elapsed().as_secs_f64()
                        ),
                        Some(_) => log::debug!("mqtt: reconnected to {}", settings.broker),
                        None => log::info!("mqtt: connected to {}", settings.broker),
                    }
                    let Some(c) = pending.take() else { continue };
                    if let Some(t) = &ha_status_topic {
                        if let Err(e) = c.try_subscribe(t.clone(), QoS::AtLeastOnce) {
                            log::warn!("mqtt: subscribing to {t}: {e}");
                        }
                    }
                    LinkEvent::Connected(c)
                }
                Ok(Event::Incoming(Incoming::PubAck(p))) => LinkEvent::PubAck(p.pkid),
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    if p.payload.len() > settings.max_incoming {
                        LinkEvent::InboundDropped(Inbound {
                            topic: p.topic.clone(),
                            size: p.payload.len(),
                            unsubscribed: false,
                        })
                    } else if Some(&p.topic) == ha_status_topic.as_ref()
                        && p.payload.as_ref() == b"online"
                    {
                        LinkEvent::HomeAssistantOnline
                    } else {
                        continue;
                    }
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => LinkEvent::Sent(pkid),
                Ok(_) => continue,
                Err(e) => break e,
            };
            if tx.send(Msg::Link(m)).is_err() {
                return;
            }
        };
        drop(pending);
        if connected_at.is_some() && tx.send(Msg::Link(LinkEvent::Down)).is_err() {
            return;
        }
        if let (Some(size), Some(topic)) = (too_large_to_read(&error), &ha_status_topic) {
            // The only topic camtrapd subscribes to brought it (a retained
            // message comes back on every reconnect): leave that topic alone.
            let dropped = Inbound {
                topic: topic.clone(),
                size,
                unsubscribed: true,
            };
            ha_status_topic = None;
            if tx
                .send(Msg::Link(LinkEvent::InboundDropped(dropped)))
                .is_err()
            {
                return;
            }
            // Reconnect at once: this was no broker trouble.
            attempt = 0;
            continue;
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match connected_at.map(|t| t.elapsed()) {
            // A stable connection ended: start afresh (log it, quick retry).
            Some(lasted) if lasted >= SHORT_LIVED => {
                short_lived = 0;
                attempt = 0;
                last_error = None;
            }
            // Accepted, then dropped within seconds: flapping if it repeats.
            Some(_) => short_lived += 1,
            // Not even accepted: an outage, not flapping.
            None => short_lived = 0,
        }
        if short_lived >= 3 && !flap_warned {
            flap_warned = true;
            log::warn!(
                "mqtt: the broker {} keeps closing the connection within seconds of accepting it ({short_lived} times): another client may be connected with the same client id {:?} (two camtrapd with the same camera_id? give each its own camera_id or client_id), or a message is larger than the broker allows (set max_packet_size to the broker's max_packet_size / message_size_limit)",
                settings.broker,
                settings.options.client_id()
            );
        }
        let why = explain(&error, &settings.broker, connected_at.is_none());
        if down_since.is_none() {
            down_since = Some(Instant::now());
        }
        attempt = attempt.saturating_add(1);
        let wait = backoff(attempt, settings.reconnect_max);
        // Log state changes once, not every attempt.
        if last_error.as_deref() != Some(why.as_str()) {
            log::warn!(
                "mqtt: {why}; detections are kept in the spool; retrying with back-off (up to {} s)",
                settings.reconnect_max.as_secs()
            );
            last_error = Some(why);
        } else {
            log::debug!(
                "mqtt: attempt {attempt} failed; next in {:.1} s",
                wait.as_secs_f64()
            );
        }
        let end = Instant::now() + wait;
        while Instant::now() < end {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let max = Duration::from_secs(60);
        for (attempt, base) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (6, 32.0),
            (7, 60.0),
            (40, 60.0),
        ] {
            for _ in 0..50 {
                let b = backoff(attempt, max).as_secs_f64();
                assert!(b >= base * 0.5 - 1e-9 && b <= base + 1e-9, "{attempt}: {b}");
            }
        }
    }
}
