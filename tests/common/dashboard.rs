//! The dashboard tests' daemon and HTTP client: a daemon with review
//! capture and the web server on a free loopback port, over a folder of
//! photos; raw HTTP/1.1 requests, so that a test can send exactly the bad
//! request it means (oversized bodies and headers, `../` in ids).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A response.
#[derive(Debug)]
pub struct Resp {
    /// The status code.
    pub status: u16,
    /// The head (status line and headers), as text.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    // The server may answer (and close) before an oversized body is sent.
    let _ = s.write_all(req.as_bytes()).and_then(|()| s.write_all(body));
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    Resp { status, head, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

/// The CSRF token in a page's forms.
pub fn csrf(html: &str) -> String {
    let i = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in the page:\n{html}"))
        + "name=\"csrf\" value=\"".len();
    html[i..i + 64].to_string()
}

/// Writes a daemon config over `photos` (looped at `fps`) with the zoo12
/// model, review capture into `dir/review` and the dashboard on a free
/// loopback port; `review` and `http` are extra lines for those tables.
pub fn config(dir: &Path, photos: &Path, fps: f64, review: &str, http: &str) -> PathBuf {
    let cfg = dir.join("camtrapd.toml");
    std::fs::write(
        &cfg,
        format!(
            "camera_id = \"dash-test\"\n\n[source]\nkind = \"files\"\npath = {:?}\nfps = {fps}\nloop = true\n\n[model]\npath = {:?}\n\n[stats]\ninterval_secs = 1\n\n[[sinks]]\nkind = \"stdout\"\n\n[review]\nenabled = true\nfolder = \"review\"\n{review}\n\n[http]\nlisten = \"127.0.0.1:0\"\n{http}\n",
            photos.display().to_string(),
            super::repo().join("models/zoo12").display().to_string(),
        ),
    )
    .unwrap();
    cfg
}

/// A running daemon with its dashboard.
pub struct Site {
    /// The daemon.
    pub child: Child,
    /// Its log file.
    pub log: PathBuf,
    /// Its stdout file (detections).
    pub out: PathBuf,
    /// host:port of the dashboard.
    pub addr: String,
    /// Headers sent with every request (basic auth).
    pub auth: Vec<(String, String)>,
}

impl Site {
    /// Starts `camtrapd run --config cfg` and waits for the dashboard.
    pub fn start(cfg: &Path) -> Site {
        let mut cmd = super::camtrapd_cmd();
        cmd.args(["run", "--config"]).arg(cfg);
        Site::spawn(cmd, cfg)
    }

    /// Starts `cmd` (a daemon run with `cfg`) and waits for the dashboard.
    pub fn spawn(mut cmd: Command, cfg: &Path) -> Site {
        let dir = cfg.parent().unwrap();
        let (log, out) = (dir.join("daemon.err"), dir.join("daemon.out"));
        let child = cmd
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut site = Site {
            child,
            log,
            out,
            addr: String::new(),
            auth: Vec::new(),
        };
        let end = Instant::now() + Duration::from_secs(120) * super::slowdown();
        loop {
            let err = site.err();
            if let Some(i) = err.find("dashboard on http://") {
                let rest = &err[i + "dashboard on http://".len()..];
                site.addr = rest[..rest.find('/').unwrap()].to_string();
                return site;
            }
            if let Ok(Some(st)) = site.child.try_wait() {
                panic!("the daemon exited ({st}):\n{err}");
            }
            assert!(Instant::now() < end, "no dashboard in the log:\n{err}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log so far.
    pub fn err(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Detections on stdout so far.
    pub fn detections(&self) -> usize {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// A request with the site's auth headers plus `headers`.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut h: Vec<(&str, &str)> = self
            .auth
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        h.extend_from_slice(headers);
        request(&self.addr, method, path, &h, body)
    }

    /// `GET path`, which must answer 200.
    pub fn get(&self, path: &str) -> Resp {
        let r = self.request("GET", path, &[], b"");
        assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.head, r.text());
        r
    }

    /// A form POST.
    pub fn post_form(&self, path: &str, body: &str) -> Resp {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    }

    /// Waits until `ok` holds for the JSON of `GET path`.
    pub fn wait_json(
        &self,
        path: &str,
        what: &str,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let end = Instant::now() + Duration::from_secs(120) * super::slowdown();
        loop {
            let j = self.get(path).json();
            if ok(&j) {
                return j;
            }
            assert!(
                Instant::now() < end,
                "waited for {what}: {j}\n{}",
                self.err()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the daemon with SIGTERM and returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(60) * super::slowdown();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < end,
                "no exit after SIGTERM:\n{}",
                self.err()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The file names in a folder, sorted (empty when it does not exist).
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
