//! The on-disk spool: detections wait here, in capture order, until the
//! broker has acknowledged them (PUBACK). Store-and-forward: a broker outage
//! or a daemon restart loses nothing.
//!
//! Backed by [redb](https://docs.rs/redb), a pure-Rust embedded key-value
//! store with ACID transactions, copy-on-write B-trees and checksummed
//! pages. We chose it over a home-made append-only log because a crash at any
//! point (SIGKILL, power cut) leaves the last committed state intact without
//! our own recovery code, over SQLite because it needs no C toolchain when
//! cross-building for the Pi, and over sled because sled's on-disk format is
//! still unstable. One file, `<state_dir>/mqtt-<camera>.redb`, with one table
//! from a monotonically increasing `u64` key to the detection's JSON bytes.
//!
//! Appends are committed with `Durability::Immediate` (fsync) before the
//! pipeline moves on; removals after PUBACK are batched and committed
//! without fsync, so a crash can re-deliver an already acknowledged
//! detection (allowed by QoS 1, "at least once") but never lose one.
//!
//! The spool is bounded by the size of its payloads; when full, the oldest
//! detections are dropped and counted.

use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("detections");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const DROPPED: &str = "dropped";

/// Spool errors.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Another process (a second camtrapd for the same camera?) holds the spool.
    #[error("spool {path} is in use by another process: is camtrapd already running for this camera? Each camtrapd needs its own camera_id (it names the spool and the MQTT client id)")]
    InUse {
        /// The spool file.
        path: PathBuf,
    },
    /// The folder could not be created or the file opened.
    #[error("cannot open spool {path}: {message} (check that the folder exists and is writable by the service user; systemd: StateDirectory=camtrapd)")]
    Open {
        /// The spool file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A read or write transaction failed (disk full, I/O error).
    #[error("spool {path}: {message}")]
    Io {
        /// The spool file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The spool (see the module docs).
pub struct Spool {
    db: Database,
    path: PathBuf,
    max_bytes: u64,
    bytes: u64,
    len: u64,
    next_key: u64,
    dropped: u64,
    unreported_drops: u64,
    last_drop_warning: Option<std::time::Instant>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// Checks that the spool's folder exists (or can be created) and is
/// writable, without opening or locking the spool (for `check-config`).
///
/// # Errors
/// [`SpoolError::Open`] naming the folder.
pub fn check_dir(path: &Path) -> Result<(), SpoolError> {
    let err = |message: String| SpoolError::Open {
        path: path.to_path_buf(),
        message,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let probe = dir.join(format!(".camtrapd-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| err(format!("the folder is not writable: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

impl Spool {
    /// Opens (or creates) the spool file at `path`, bounded to `max_bytes` of
    /// payload. Recovers the last committed state after a crash.
    ///
    /// # Errors
    /// [`SpoolError::InUse`] when another process has it open,
    /// [`SpoolError::Open`] when the folder or file is not usable.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        let open_err = |message: String| SpoolError::Open {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => SpoolError::InUse {
                path: path.to_path_buf(),
            },
            other => open_err(other.to_string()),
        })?;
        let mut s = Spool {
            db,
            path: path.to_path_buf(),
            max_bytes,
            bytes: 0,
            len: 0,
            next_key: 0,
            dropped: 0,
            unreported_drops: 0,
            last_drop_warning: None,
        };
        s.scan()?;
        Ok(s)
    }

    /// Closes and reopens the spool file (redb refuses further use after an
    /// I/O error such as a full disk), then re-reads its state.
    ///
    /// # Errors
    /// As [`Spool::open`]; the spool stays unusable until a reopen succeeds.
    pub fn reopen(&mut self) -> Result<(), SpoolError> {
        // Release the file (and its lock) before opening it again.
        self.db = redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| self.io(e))?;
        self.db = Database::create(&self.path).map_err(|e| self.io(e))?;
        self.scan()
    }

    fn io<E: std::fmt::Display>(&self, e: E) -> SpoolError {
        SpoolError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn scan(&mut self) -> Result<(), SpoolError> {
        let w = self.db.begin_write().map_err(|e| self.io(e))?;
        {
            // Creates the tables on first use.
            let rec = w.open_table(RECORDS).map_err(|e| self.io(e))?;
            let meta = w.open_table(META).map_err(|e| self.io(e))?;
            self.len = rec.len().map_err(|e| self.io(e))?;
            let mut bytes = 0u64;
            for r in rec.iter().map_err(|e| self.io(e))? {
                let (_, v) = r.map_err(|e| self.io(e))?;
                bytes += v.value().len() as u64;
            }
            self.bytes = bytes;
            self.next_key = match rec.last().map_err(|e| self.io(e))? {
                Some((k, _)) => k.value() + 1,
                None => 0,
            };
            self.dropped = meta
                .get(DROPPED)
                .map_err(|e| self.io(e))?
                .map(|v| v.value())
                .unwrap_or(0);
        }
        w.commit().map_err(|e| self.io(e))?;
        Ok(())
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Detections waiting for a PUBACK.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no detection is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Payload bytes waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Detections dropped because the spool was full (over the spool's lifetime).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Appends a detection durably (fsync) and returns its key. When the
    /// spool would exceed its bound, the oldest records are dropped first
    /// (counted in [`Spool::dropped`]); the new one is always kept.
    ///
    /// # Errors
    /// [`SpoolError::Io`] when the write fails (disk full, read-only file system).
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, SpoolError> {
        let key = self.next_key;
        let mut w = self.db.begin_write().map_err(|e| self.io(e))?;
        w.set_durability(Durability::Immediate)
            .map_err(|e| self.io(e))?;
        let (mut bytes, mut len, mut dropped) = (self.bytes, self.len, self.dropped);
        {
            let mut rec = w.open_table(RECORDS).map_err(|e| self.io(e))?;
            while len > 0 && bytes + payload.len() as u64 > self.max_bytes {
                let Some((_, v)) = rec.pop_first().map_err(|e| self.io(e))? else {
                    break;
                };
                bytes -= v.value().len() as u64;
                len -= 1;
                dropped += 1;
            }
            rec.insert(key, payload).map_err(|e| self.io(e))?;
            if dropped != self.dropped {
                let mut meta = w.open_table(META).map_err(|e| self.io(e))?;
                meta.insert(DROPPED, dropped).map_err(|e| self.io(e))?;
            }
        }
        w.commit().map_err(|e| self.io(e))?;
        if dropped > self.dropped {
            self.unreported_drops += dropped - self.dropped;
            // Warn on the first drop, then at most once a minute with the count.
            if self
                .last_drop_warning
                .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60))
            {
                log::warn!(
                    "spool {} is full ({:.2} MiB): dropped the {} oldest undelivered message(s) ({} in all); raise spool_max_mb or check the broker",
                    self.path.display(),
                    self.max_bytes as f64 / 1048576.0,
                    self.unreported_drops,
                    dropped
                );
                self.unreported_drops = 0;
                self.last_drop_warning = Some(std::time::Instant::now());
            }
        }
        self.bytes = bytes + payload.len() as u64;
        self.len = len + 1;
        self.dropped = dropped;
        self.next_key = key + 1;
        Ok(key)
    }

    /// The first record with key ≥ `from`, in key (= capture) order.
    ///
    /// # Errors
    /// [`SpoolError::Io`] when the read fails.
    pub fn next_from(&self, from: u64) -> Result<Option<(u64, Vec<u8>)>, SpoolError> {
        let r = self.db.begin_read().map_err(|e| self.io(e))?;
        let rec = r.open_table(RECORDS).map_err(|e| self.io(e))?;
        let mut it = rec.range(from..).map_err(|e| self.io(e))?;
        match it.next() {
            Some(item) => {
                let (k, v) = item.map_err(|e| self.io(e))?;
                Ok(Some((k.value(), v.value().to_vec())))
            }
            None => Ok(None),
        }
    }

    /// Removes acknowledged records (keys that are gone already are ignored).
    /// Committed without fsync: see the module docs.
    ///
    /// # Errors
    /// [`SpoolError::Io`] when the write fails.
    pub fn remove(&mut self, keys: &[u64]) -> Result<(), SpoolError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut w = self.db.begin_write().map_err(|e| self.io(e))?;
        w.set_durability(Durability::None).map_err(|e| self.io(e))?;
        let (mut bytes, mut len) = (self.bytes, self.len);
        {
            let mut rec = w.open_table(RECORDS).map_err(|e| self.io(e))?;
            for k in keys {
                if let Some(v) = rec.remove(k).map_err(|e| self.io(e))? {
                    bytes -= v.value().len() as u64;
                    len -= 1;
                }
            }
        }
        w.commit().map_err(|e| self.io(e))?;
        self.bytes = bytes;
        self.len = len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_survives_reopen_and_drops_oldest_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        {
            let mut s = Spool::open(&p, 100).unwrap();
            assert_eq!(s.append(&[1u8; 40]).unwrap(), 0);
            assert_eq!(s.append(&[2u8; 40]).unwrap(), 1);
            assert_eq!((s.len(), s.bytes(), s.dropped()), (2, 80, 0));
            // 120 > 100 bytes: the oldest goes.
            assert_eq!(s.append(&[3u8; 40]).unwrap(), 2);
            assert_eq!((s.len(), s.bytes(), s.dropped()), (2, 80, 1));
            assert_eq!(s.next_from(0).unwrap().unwrap().0, 1);
            s.remove(&[1, 7]).unwrap();
            assert_eq!((s.len(), s.bytes()), (1, 40));
        }
        let s = Spool::open(&p, 100).unwrap();
        assert_eq!((s.len(), s.bytes(), s.dropped()), (1, 40, 1));
        let (k, v) = s.next_from(0).unwrap().unwrap();
        assert_eq!((k, v), (2, vec![3u8; 40]));
        assert!(s.next_from(3).unwrap().is_none());
        // A second opener is refused with a clear error.
        let e = Spool::open(&p, 100).unwrap_err().to_string();
        assert!(e.contains("in use by another process"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_spool_is_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        std::fs::write(&p, b"not a database at all, just text").unwrap();
        let e = Spool::open(&p, 100).unwrap_err().to_string();
        assert!(
            e.contains("cannot open spool") && e.contains("s.redb"),
            "{e}"
        );
    }
}
