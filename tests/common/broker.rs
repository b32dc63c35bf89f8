//! A real mosquitto broker for the tests, on a free loopback port, that a
//! test can stop and restart; and a subscriber that records what arrives.
#![allow(dead_code)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn mosquitto_bin() -> PathBuf {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "mosquitto is not installed: apt-get install mosquitto (the MQTT tests need a real broker)"
    );
}

/// A running mosquitto with its own config, log and persistence in a temp dir.
pub struct Broker {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts mosquitto with `extra` appended to a config whose first
    /// listener is plain MQTT on `port` (anonymous allowed unless `extra`
    /// says otherwise). Persistence is on, so that a subscriber's session and
    /// its queued QoS 1 messages survive a restart.
    pub fn start(extra: &str) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let root = std::fs::metadata(dir.path())
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let conf = format!(
            "per_listener_settings false\n{user}persistence true\npersistence_location {dir}/\nlog_dest file {dir}/mosquitto.log\nlog_type all\nlistener {port} 127.0.0.1\n{extra}\n",
            user = if root { "user root\n" } else { "" },
            dir = dir.path().display(),
        );
        let conf = if extra.contains("allow_anonymous") {
            conf
        } else {
            format!("allow_anonymous true\n{conf}")
        };
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker {
            dir,
            port,
            child: None,
        };
        b.restart();
        b
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < end,
                "mosquitto did not listen on {}: {}",
                self.port,
                self.log()
            );
            if let Some(c) = &mut self.child {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("mosquitto exited with {st}: {}", self.log());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it with SIGTERM (it saves its persistence file) and waits.
    ///
    /// mosquitto 2.0 can lose a SIGTERM that arrives while it is still
    /// starting (it resets its run flag when the main loop begins), so the
    /// signal is repeated, and SIGKILL ends it after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(c.id().to_string())
                    .status();
                let again = Instant::now() + Duration::from_millis(500);
                while Instant::now() < again {
                    if let Ok(Some(_)) = c.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                if Instant::now() > end {
                    let _ = c.kill();
                    let _ = c.wait();
                    return;
                }
            }
        }
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Writes a file into the broker's folder and returns its path.
    pub fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::File::create(&p)
            .and_then(|mut f| f.write_all(content))
            .unwrap();
        p
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub at: Instant,
}

impl Msg {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).to_string()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("payload is JSON")
    }
}

/// A subscriber (persistent session, QoS 1) that records messages in a
/// background thread and reconnects when the broker restarts.
pub struct Subscriber {
    pub got: Arc<Mutex<Vec<Msg>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Subscriber {
    pub fn connect(port: u16, id: &str, filters: &[&str]) -> Subscriber {
        Subscriber::connect_with(port, id, filters, None)
    }

    /// As [`Subscriber::connect`], with a user name and password.
    pub fn connect_auth(
        port: u16,
        id: &str,
        filters: &[&str],
        user: &str,
        pass: &str,
    ) -> Subscriber {
        Subscriber::connect_with(port, id, filters, Some((user, pass)))
    }

    fn connect_with(
        port: u16,
        id: &str,
        filters: &[&str],
        auth: Option<(&str, &str)>,
    ) -> Subscriber {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        if let Some((u, p)) = auth {
            o.set_credentials(u, p);
        }
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(16 << 20, 16 << 20);
        let (client, mut conn) = Client::new(o, 100);
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                match conn.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(Event::Incoming(Incoming::ConnAck(_)))) => {
                        for f in &filters {
                            let _ = client.try_subscribe(f.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Ok(Event::Incoming(Incoming::SubAck(_)))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Ok(Event::Incoming(Incoming::Publish(p)))) => {
                        g.lock().unwrap().push(Msg {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            at: Instant::now(),
                        });
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                    Err(rumqttc::RecvTimeoutError::Timeout) => {}
                    Err(_) => break,
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("subscriber did not get its SUBACK");
        Subscriber { got, stop }
    }

    /// Messages so far on `topic`.
    pub fn on(&self, topic: &str) -> Vec<Msg> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.topic == topic)
            .cloned()
            .collect()
    }

    /// Waits until `pred` holds for the messages on `topic`, or panics after `timeout`.
    pub fn wait_for(
        &self,
        topic: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Msg]) -> bool,
    ) -> Vec<Msg> {
        let timeout = timeout * super::slowdown();
        let end = Instant::now() + timeout;
        loop {
            let m = self.on(topic);
            if pred(&m) {
                return m;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what} on {topic}; got {:?}",
                m.iter().map(|m| m.text()).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Publishes one QoS 1 message (up to 32 MiB) and waits for its PUBACK.
///
/// The event loop runs in its own thread on blocking `recv`: a
/// `recv_timeout` that expires while a large packet is being written drops
/// the write half-way (rumqttc's poll is not cancel-safe there), and the
/// broker then never gets the whole message.
pub fn publish(port: u16, topic: &str, payload: &[u8], retain: bool) {
    let mut o = MqttOptions::new(format!("t-pub-{}", std::process::id()), "127.0.0.1", port);
    o.set_max_packet_size(32 << 20, 32 << 20);
    let (client, mut conn) = Client::new(o, 10);
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            let done = matches!(ev, Ok(Event::Incoming(Incoming::PubAck(_))));
            if tx
                .send(ev.map(|_| done).map_err(|e| e.to_string()))
                .is_err()
                || done
            {
                return;
            }
        }
    });
    // A 17 MiB message on a loaded machine takes a while.
    let end = Instant::now() + Duration::from_secs(30) * super::slowdown();
    let mut last_error = None;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(Ok(true)) => {
                let _ = client.disconnect();
                return;
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => break,
        }
    }
    panic!("no PUBACK for {topic} (last connection error: {last_error:?})");
}
