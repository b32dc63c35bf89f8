//! The outbox thread: owns the spool and the publishing side of the MQTT
//! session. The pipeline hands it detections through a bounded queue; it
//! writes each to the spool (fsync) and publishes spooled detections in
//! capture order while connected, keeping at most [`WINDOW`] unacknowledged.
//! A detection leaves the spool only when the broker's PUBACK for it
//! arrives. After a reconnect everything still in the spool is published
//! again from the oldest, so an outage or a restart loses nothing (a
//! detection whose PUBACK was lost may arrive twice, as QoS 1 allows).
//!
//! Packet ids: rumqttc reports `Outgoing::Publish(pkid)` for every publish
//! in the order the requests were queued, so the outbox pairs them with a
//! FIFO of what it queued. Because the window is far below rumqttc's
//! in-flight limit, packet ids never collide.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{Client, QoS};
use serde::Serialize;

use super::link::LinkEvent;
use super::spool::Spool;
use super::{Msg, Topics};
use crate::stats::Snapshot;

/// First byte of a spool record holding an event message (published on the
/// events topic); records without it are detections (their JSON starts with
/// `{`), as in spools written before events existed.
pub(crate) const EVENT_TAG: u8 = b'E';

/// rumqttc's in-flight limit (packet ids 1..=100).
pub(crate) const MAX_INFLIGHT: u16 = 100;
/// Detections published but not yet acknowledged, at most.
pub(crate) const WINDOW: usize = 32;
/// Detections kept in memory when the spool cannot be written (disk full).
const MEMORY_LIMIT: usize = 10_000;
/// How often a failed spool is reopened (redb needs a reopen after an I/O
/// error), moving the detections held in memory back to disk once it works.
const SPOOL_RETRY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tag {
    /// A spooled detection, by spool key.
    Spooled(u64),
    /// A detection held in memory because the spool failed, by memory key.
    Memory(u64),
    /// The retained `offline` sent at a clean shutdown.
    Offline,
    /// Anything else (availability, discovery, stats, snapshots).
    Other,
}

/// What a clean shutdown achieved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CloseReport {
    /// Detections still in the spool (delivered on the next start).
    pub undelivered: u64,
    /// Detections held in memory because the spool could not be written:
    /// lost when the process ends.
    pub lost_in_memory: u64,
    /// Whether the retained `offline` was acknowledged by the broker.
    pub offline_published: bool,
}

/// A request to shut down cleanly.
pub(crate) struct Close {
    pub deadline: Instant,
    pub reply: Sender<CloseReport>,
}

/// The stats message: the pipeline's counters plus the MQTT sink's own.
#[derive(Serialize)]
struct StatsMessage<'a> {
    camera: &'a str,
    #[serde(flatten)]
    pipeline: &'a Snapshot,
    mqtt: MqttCounters,
}

/// The MQTT sink's counters, as published on the stats topic.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct MqttCounters {
    connected: bool,
    spool_depth: u64,
    spool_bytes: u64,
    spool_dropped: u64,
    spool_errors: u64,
    in_memory: u64,
    published: u64,
    snapshots_dropped: u64,
    reconnects: u64,
    /// Inbound messages dropped for their size (`max_incoming_size`).
    inbound_dropped: u64,
}

pub(crate) struct Outbox {
    pub spool: Spool,
    pub topics: Topics,
    pub camera: String,
    pub discovery: Vec<(String, Vec<u8>)>,
    pub link_stop: Arc<AtomicBool>,
    spooled: SyncSender<()>,
    /// Snapshots the sink itself dropped (queue full, too large).
    sink_snapshot_drops: Arc<AtomicU64>,
    client: Option<Client>,
    fifo: VecDeque<Tag>,
    awaiting: HashMap<u16, Tag>,
    unacked: usize,
    cursor: u64,
    memory: BTreeMap<u64, Vec<u8>>,
    memory_next: u64,
    memory_cursor: u64,
    /// Since when the spool fails (first error logged once), and when it was
    /// last reopened.
    spool_failing: Option<Instant>,
    acked: Vec<u64>,
    closing: Option<Close>,
    offline: Option<(Instant, bool)>,
    counters: MqttCounters,
    connects: u64,
    /// The camera's latest status message, republished (retained) on every connect.
    camera_status: Option<Vec<u8>>,
    /// `max_incoming_size`, for the warning about a dropped inbound message.
    pub max_incoming: usize,
}

impl Outbox {
    pub fn new(
        spool: Spool,
        topics: Topics,
        camera: String,
        discovery: Vec<(String, Vec<u8>)>,
        link_stop: Arc<AtomicBool>,
        spooled: SyncSender<()>,
        sink_snapshot_drops: Arc<AtomicU64>,
    ) -> Outbox {
        Outbox {
            spool,
            topics,
            camera,
            discovery,
            link_stop,
            spooled,
            sink_snapshot_drops,
            client: None,
            fifo: VecDeque::new(),
            awaiting: HashMap::new(),
            unacked: 0,
            cursor: 0,
            memory: BTreeMap::new(),
            memory_next: 0,
            memory_cursor: 0,
            spool_failing: None,
            acked: Vec::new(),
            closing: None,
            offline: None,
            counters: MqttCounters::default(),
            connects: 0,
            camera_status: None,
            max_incoming: 0,
        }
    }

    /// The thread body: handles messages until closed.
    pub fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let msg = if self.closing.is_some() {
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => break,
                }
            };
            if let Some(m) = msg {
                self.handle(m);
                // Drain what is queued before the (fsync-free) batch removal.
                loop {
                    match rx.try_recv() {
                        Ok(m) => self.handle(m),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => break,
                    }
                    if self.acked.len() >= 256 {
                        self.remove_acked();
                    }
                }
            }
            if self
                .spool_failing
                .is_some_and(|t| t.elapsed() >= SPOOL_RETRY)
            {
                self.retry_spool();
            }
            self.remove_acked();
            self.pump();
            if self.closing.is_some() && self.try_finish() {
                return;
            }
        }
        // The sink was dropped without a close: stop the connection thread.
        self.link_stop.store(true, Ordering::SeqCst);
        self.client = None;
    }

    fn handle(&mut self, m: Msg) {
        match m {
            Msg::Detection(payload) => {
                self.store(payload);
                // The pipeline waits for this: once it moves on, the detection is on disk.
                let _ = self.spooled.try_send(());
            }
            Msg::Snapshot(jpeg) => match &self.client {
                Some(c) => {
                    if c.try_publish(self.topics.snapshot.clone(), QoS::AtMostOnce, false, jpeg)
                        .is_ok()
                    {
                        self.fifo.push_back(Tag::Other);
                    } else {
                        self.counters.snapshots_dropped += 1;
                    }
                }
                None => self.counters.snapshots_dropped += 1,
            },
            Msg::Stats(snap) => self.publish_stats(&snap),
            Msg::CameraStatus(body) => {
                self.camera_status = Some(body);
                self.publish_camera_status();
            }
            Msg::Close(c) => self.closing = Some(c),
            Msg::Link(ev) => self.link_event(ev),
        }
    }

    fn store(&mut self, payload: Vec<u8>) {
        if self.spool_failing.is_none() {
            match self.spool.append(&payload) {
                Ok(_) => return,
                Err(e) => self.spool_failed("writing", &e),
            }
        }
        self.counters.spool_errors += 1;
        if self.memory.len() >= MEMORY_LIMIT {
            self.memory.pop_first();
            self.counters.spool_dropped += 1;
        }
        self.memory.insert(self.memory_next, payload);
        self.memory_next += 1;
    }

    /// Enters the spool-failing state: logged once (loudly), then detections
    /// are held in memory and the spool is reopened every [`SPOOL_RETRY`].
    fn spool_failed(&mut self, doing: &str, e: &super::spool::SpoolError) {
        self.counters.spool_errors += 1;
        if self.spool_failing.is_some() {
            log::debug!("mqtt: {doing} the spool: {e}");
            return;
        }
        self.spool_failing = Some(Instant::now());
        log::error!(
            "mqtt: {doing} the spool: {e}; keeping new detections in memory (at most {MEMORY_LIMIT}) and reopening the spool every {} s; free disk space or fix the state directory, or the detections held in memory are lost if camtrapd stops before the broker has them",
            SPOOL_RETRY.as_secs()
        );
    }

    /// Reopens the failed spool; once it works again, moves the detections
    /// held in memory into it (in order, after those already spooled, so
    /// capture order is kept; one in flight may be delivered twice, which
    /// QoS 1 allows and the detection `id` tells apart).
    fn retry_spool(&mut self) {
        self.spool_failing = Some(Instant::now());
        if let Err(e) = self
            .spool
            .reopen()
            .and_then(|()| self.spool.remove(&self.acked))
        {
            log::debug!("mqtt: spool still failing: {e}");
            return;
        }
        while let Some((&k, payload)) = self.memory.first_key_value() {
            if let Err(e) = self.spool.append(payload) {
                log::debug!("mqtt: spool still failing: {e}");
                return;
            }
            self.memory.remove(&k);
        }
        self.acked.clear();
        self.spool_failing = None;
        self.memory_cursor = self.memory_next;
        log::warn!(
            "mqtt: the spool {} works again; detections held in memory are back on disk",
            self.spool.path().display()
        );
    }

    fn link_event(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Connected(c) => {
                self.connects += 1;
                if self.connects > 1 {
                    self.counters.reconnects += 1;
                }
                self.fifo.clear();
                self.awaiting.clear();
                self.unacked = 0;
                self.cursor = 0;
                self.memory_cursor = 0;
                self.client = Some(c);
                self.announce();
            }
            LinkEvent::Sent(pkid) => {
                let tag = self.fifo.pop_front().unwrap_or(Tag::Other);
                if pkid != 0 {
                    self.awaiting.insert(pkid, tag);
                } else if matches!(tag, Tag::Spooled(_) | Tag::Memory(_)) {
                    // Never happens (detections are QoS 1); keep the count honest.
                    self.unacked = self.unacked.saturating_sub(1);
                }
            }
            LinkEvent::PubAck(pkid) => match self.awaiting.remove(&pkid) {
                Some(Tag::Spooled(key)) => {
                    self.unacked = self.unacked.saturating_sub(1);
                    self.counters.published += 1;
                    self.acked.push(key);
                }
                Some(Tag::Memory(key)) => {
                    self.unacked = self.unacked.saturating_sub(1);
                    self.counters.published += 1;
                    self.memory.remove(&key);
                }
                Some(Tag::Offline) => {
                    if let Some((t, _)) = self.offline {
                        self.offline = Some((t, true));
                    }
                }
                Some(Tag::Other) | None => {}
            },
            LinkEvent::InboundDropped(m) => {
                self.counters.inbound_dropped += 1;
                self.inbound_dropped(&m);
            }
            LinkEvent::HomeAssistantOnline => {
                log::info!("mqtt: Home Assistant came online: republishing discovery");
                self.announce();
            }
            LinkEvent::Down => {
                self.client = None;
                self.fifo.clear();
                self.awaiting.clear();
                self.unacked = 0;
            }
        }
    }

    /// Says once (a warning) that an inbound message was dropped for its
    /// size; later ones are counted (`inbound_dropped`) and logged at debug
    /// level, except the one that makes camtrapd leave its topic alone.
    fn inbound_dropped(&mut self, m: &super::link::Inbound) {
        let n = self.counters.inbound_dropped;
        if m.unsubscribed {
            log::warn!(
                "mqtt: dropped a {} byte message on {}: larger than the {} MiB camtrapd reads at all, so the connection was closed to skip it; camtrapd no longer subscribes to {} until it restarts (Home Assistant restarts go unnoticed; discovery is retained, so Home Assistant still finds the camera). Delete that retained message: mosquitto_pub -t '{}' -r -n",
                m.size,
                m.topic,
                super::link::READ_LIMIT >> 20,
                m.topic,
                m.topic
            );
        } else if n == 1 {
            log::warn!(
                "mqtt: dropped a {} byte message on {}: larger than max_incoming_size ({} bytes); detections are not affected. Further ones are only counted (inbound_dropped in the stats)",
                m.size,
                m.topic,
                self.max_incoming
            );
        } else {
            log::debug!(
                "mqtt: dropped a {} byte message on {} ({n} so far)",
                m.size,
                m.topic
            );
        }
    }

    /// Availability `online` (retained) and the discovery messages.
    fn announce(&mut self) {
        let Some(c) = &self.client else { return };
        let mut n = 0;
        if c.try_publish(
            self.topics.availability.clone(),
            QoS::AtLeastOnce,
            true,
            "online",
        )
        .is_ok()
        {
            n += 1;
        }
        for (t, p) in &self.discovery {
            if c.try_publish(t.clone(), QoS::AtLeastOnce, true, p.clone())
                .is_ok()
            {
                n += 1;
            } else {
                log::warn!("mqtt: could not queue discovery message {t}");
            }
        }
        for _ in 0..n {
            self.fifo.push_back(Tag::Other);
        }
        self.publish_camera_status();
    }

    /// The camera's latest status, retained, if there is one and a connection.
    fn publish_camera_status(&mut self) {
        let (Some(c), Some(body)) = (&self.client, &self.camera_status) else {
            return;
        };
        if c.try_publish(
            self.topics.camera_status.clone(),
            QoS::AtLeastOnce,
            true,
            body.clone(),
        )
        .is_ok()
        {
            self.fifo.push_back(Tag::Other);
        } else {
            log::warn!("mqtt: could not queue the camera status");
        }
    }

    fn publish_stats(&mut self, snap: &Snapshot) {
        self.counters.connected = self.client.is_some();
        self.counters.spool_depth = self.spool.len();
        self.counters.spool_bytes = self.spool.bytes();
        self.counters.spool_dropped = self.counters.spool_dropped.max(self.spool.dropped());
        self.counters.in_memory = self.memory.len() as u64;
        let c = &self.counters;
        if !c.connected || c.spool_depth > 0 || c.in_memory > 0 {
            // The stats topic is out of reach while disconnected: say it in the log.
            log::info!(
                "mqtt: {}; {} message(s) waiting in the spool ({:.2} MiB), {} dropped, {} held in memory, {} delivered",
                if c.connected { "connected" } else { "not connected" },
                c.spool_depth,
                c.spool_bytes as f64 / 1048576.0,
                c.spool_dropped,
                c.in_memory,
                c.published
            );
        }
        let Some(c) = &self.client else { return };
        let msg = StatsMessage {
            camera: &self.camera,
            pipeline: snap,
            mqtt: MqttCounters {
                snapshots_dropped: self.counters.snapshots_dropped
                    + self.sink_snapshot_drops.load(Ordering::Relaxed),
                ..self.counters
            },
        };
        let Ok(body) = serde_json::to_vec(&msg) else {
            return;
        };
        if c.try_publish(self.topics.stats.clone(), QoS::AtMostOnce, false, body)
            .is_ok()
        {
            self.fifo.push_back(Tag::Other);
        }
    }

    fn remove_acked(&mut self) {
        if self.acked.is_empty() {
            return;
        }
        if self.spool_failing.is_some() {
            // Kept, and removed once the spool is reopened.
            return;
        }
        match self.spool.remove(&self.acked) {
            Ok(()) => self.acked.clear(),
            // Kept: removed once the spool is reopened (or sent again after a restart).
            Err(e) => self.spool_failed("removing delivered detections from", &e),
        }
    }

    /// Publishes waiting detections, oldest first, up to the window.
    fn pump(&mut self) {
        while self.unacked < WINDOW && self.offline.is_none() {
            let Some(c) = &self.client else { return };
            // While the spool fails, what it holds waits for the reopen.
            let next = match self.spool_failing {
                Some(_) => Ok(None),
                None => self.spool.next_from(self.cursor),
            };
            let (tag, payload) = match next {
                Ok(Some((key, p))) => (Tag::Spooled(key), p),
                Ok(None) => match self.memory.range(self.memory_cursor..).next() {
                    Some((k, p)) => (Tag::Memory(*k), p.clone()),
                    None => return,
                },
                Err(e) => {
                    self.spool_failed("reading", &e);
                    return;
                }
            };
            let (topic, payload) = match payload.split_first() {
                Some((&EVENT_TAG, rest)) => (self.topics.events.clone(), rest.to_vec()),
                _ => (self.topics.detection.clone(), payload),
            };
            match c.try_publish(topic, QoS::AtLeastOnce, false, payload) {
                Ok(()) => {
                    match tag {
                        Tag::Spooled(k) => self.cursor = k + 1,
                        Tag::Memory(k) => self.memory_cursor = k + 1,
                        _ => {}
                    }
                    self.fifo.push_back(tag);
                    self.unacked += 1;
                }
                // The request queue is full: continue on the next event.
                Err(_) => return,
            }
        }
    }

    fn pending(&self) -> bool {
        !self.spool.is_empty() || !self.memory.is_empty() || self.unacked > 0
    }

    /// Clean shutdown: drain as far as the broker allows before the deadline,
    /// then publish retained `offline`, wait briefly for its PUBACK, and
    /// disconnect (a clean disconnect suppresses the last will).
    fn try_finish(&mut self) -> bool {
        let Some(deadline) = self.closing.as_ref().map(|c| c.deadline) else {
            return false;
        };
        let now = Instant::now();
        if self.client.is_none() {
            if !self.memory.is_empty() {
                // These detections exist nowhere else: try the disk again,
                // else wait for the broker until the deadline.
                if self
                    .spool_failing
                    .is_some_and(|t| t.elapsed() >= Duration::from_secs(1))
                {
                    self.retry_spool();
                }
                if !self.memory.is_empty() && now < deadline {
                    return false;
                }
            }
            // Nothing can be delivered; the broker has already published the will.
            return self.finish(false);
        }
        match self.offline {
            None => {
                if self.pending() && now < deadline {
                    return false;
                }
                let Some(c) = &self.client else { return false };
                if c.try_publish(
                    self.topics.availability.clone(),
                    QoS::AtLeastOnce,
                    true,
                    "offline",
                )
                .is_ok()
                {
                    self.fifo.push_back(Tag::Offline);
                }
                self.offline = Some((now, false));
                false
            }
            Some((_, true)) => self.finish(true),
            Some((t, false)) => {
                if now.duration_since(t) > Duration::from_secs(1) {
                    self.finish(false)
                } else {
                    false
                }
            }
        }
    }

    fn finish(&mut self, offline_published: bool) -> bool {
        self.remove_acked();
        // Stop first, so the link thread takes the closing connection as the end.
        self.link_stop.store(true, Ordering::SeqCst);
        if let Some(c) = self.client.take() {
            let _ = c.try_disconnect();
        }
        let report = CloseReport {
            undelivered: self.spool.len(),
            lost_in_memory: self.memory.len() as u64,
            offline_published,
        };
        if let Some(close) = self.closing.take() {
            let _ = close.reply.send(report);
        }
        true
    }
}
