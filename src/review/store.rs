//! The review folder on disk: the queue of kept frames (`<id>.jpg` and
//! `<id>.json` in `<folder>/queue`) under a quota, oldest first, and the
//! sorted data set they are moved into (`<dataset>/<label>/`,
//! `<dataset>/nothing_animals/`, `<dataset>/nothing_empty/`, the layout
//! `camtrapd train` reads).
//!
//! Frames are addressed by id only: an id from a request must have the
//! form of a UUID and be in the in-memory index of the queue, so no path is
//! ever built from request text. Labels are the model's labels only.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::Sidecar;
use crate::read::read_capped;

/// The folder of frames sorted as "none of my labels" (an unlisted animal).
pub const UNLISTED: &str = "nothing_animals";
/// The folder of frames sorted as "empty".
pub const EMPTY: &str = "nothing_empty";

/// Largest sidecar read back (bytes).
const MAX_SIDECAR: u64 = 64 * 1024;
/// Largest JPEG served (bytes).
const MAX_JPEG: u64 = 16 * 1024 * 1024;

/// Counters of review capture, shown on the dashboard and in `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames written to the queue.
    pub saved: AtomicU64,
    /// Frames dropped because the writer's queue was full.
    pub dropped: AtomicU64,
    /// Frames that could not be written (full disk, ...).
    pub write_errors: AtomicU64,
    /// Frames deleted to stay under the quota.
    pub deleted_quota: AtomicU64,
    /// Frames filed into the data set.
    pub sorted: AtomicU64,
    /// Frames skipped (removed from the queue without filing).
    pub skipped: AtomicU64,
}

impl Counters {
    /// The value of one counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// What a click on the review page does with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// "this is LABEL" (one of the model's labels).
    Label(String),
    /// "none of my labels": an animal the model does not know.
    Unlisted,
    /// "empty": no animal.
    Empty,
    /// "skip": removed from the queue, not filed.
    Skip,
}

impl Choice {
    /// Parses a form value: `label:NAME`, `unlisted`, `empty` or `skip`.
    pub fn parse(s: &str) -> Option<Choice> {
        match s {
            "unlisted" => Some(Choice::Unlisted),
            "empty" => Some(Choice::Empty),
            "skip" => Some(Choice::Skip),
            _ => s
                .strip_prefix("label:")
                .map(|l| Choice::Label(l.to_string())),
        }
    }
}

/// Why a frame could not be sorted or served.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The id does not have the form of a frame id.
    #[error("not a frame id: ids are UUIDs such as 0190f3c4-...")]
    BadId,
    /// No frame of that id is in the queue (sorted already, or deleted).
    #[error("no frame with this id in the review queue (already sorted, or deleted by the quota)")]
    UnknownId,
    /// The label is not one of the model's labels.
    #[error("{0:?} is not a label of the model")]
    UnknownLabel(String),
    /// Moving or reading the files failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug)]
struct Entry {
    sidecar: Sidecar,
    bytes: u64,
}

#[derive(Debug, Default)]
struct Index {
    entries: BTreeMap<String, Entry>,
    bytes: u64,
    /// Images per data set folder.
    sorted: BTreeMap<String, u64>,
    /// Ids sorted or skipped since start (an event's later best frame does
    /// not bring them back).
    handled: std::collections::HashSet<String>,
}

/// The review queue and data set (see the module docs).
#[derive(Debug)]
pub struct Store {
    queue: PathBuf,
    dataset: PathBuf,
    quota_bytes: u64,
    index: Mutex<Index>,
    /// The counters.
    pub counters: Counters,
}

/// Whether `id` has the form of a UUID (36 characters, lowercase hex and
/// dashes at the UUID positions).
pub fn valid_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// Whether `label` can name a data set folder (the model's labels are
/// checked by the caller): no path separator, not hidden, not a "nothing"
/// folder name.
fn folder_name_ok(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 200
        && !label.starts_with('.')
        && !label.contains(['/', '\\', '\0'])
        && !crate::eval::dataset::is_empty_name(label)
}

/// Moves a file, copying across file systems.
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            std::fs::copy(from, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e),
    }
}

fn count_images(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "jpg"))
                .count() as u64
        })
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating) the queue folder `<folder>/queue` and the data set
    /// folder, and indexes the frames already queued.
    ///
    /// # Errors
    /// When a folder cannot be created or listed (the message names it).
    pub fn open(folder: &Path, dataset: &Path, quota_bytes: u64) -> std::io::Result<Store> {
        let queue = folder.join("queue");
        for d in [&queue, &dataset.to_path_buf()] {
            std::fs::create_dir_all(d).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("review folder {}: {e}; create it writable for camtrapd, or change [review] folder", d.display()),
                )
            })?;
        }
        let mut index = Index::default();
        for e in std::fs::read_dir(&queue)?.filter_map(Result::ok) {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&p);
                continue;
            }
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            if !valid_id(id) {
                continue;
            }
            let jpg = queue.join(format!("{id}.jpg"));
            let (Ok(meta), Ok(json)) = (std::fs::metadata(&jpg), read_capped(&p, MAX_SIDECAR))
            else {
                continue;
            };
            let Ok(sidecar) = serde_json::from_slice::<Sidecar>(&json) else {
                log::warn!("{}: not a review sidecar, left alone", p.display());
                continue;
            };
            if sidecar.id != id {
                continue;
            }
            let bytes = meta.len() + json.len() as u64;
            index.bytes += bytes;
            index
                .entries
                .insert(id.to_string(), Entry { sidecar, bytes });
        }
        if let Ok(rd) = std::fs::read_dir(dataset) {
            for e in rd.filter_map(Result::ok) {
                if e.path().is_dir() {
                    let n = count_images(&e.path());
                    index
                        .sorted
                        .insert(e.file_name().to_string_lossy().into_owned(), n);
                }
            }
        }
        Ok(Store {
            queue,
            dataset: dataset.to_path_buf(),
            quota_bytes,
            index: Mutex::new(index),
            counters: Counters::default(),
        })
    }

    /// The queue folder.
    pub fn queue_dir(&self) -> &Path {
        &self.queue
    }

    /// The data set folder.
    pub fn dataset_dir(&self) -> &Path {
        &self.dataset
    }

    /// The quota in bytes.
    pub fn quota_bytes(&self) -> u64 {
        self.quota_bytes
    }

    /// Frames in the queue and their bytes on disk.
    pub fn usage(&self) -> (usize, u64) {
        self.index
            .lock()
            .map(|i| (i.entries.len(), i.bytes))
            .unwrap_or((0, 0))
    }

    /// Images per data set folder.
    pub fn sorted_counts(&self) -> BTreeMap<String, u64> {
        self.index
            .lock()
            .map(|i| i.sorted.clone())
            .unwrap_or_default()
    }

    /// The queued frames' sidecars, newest first, at most `limit`.
    pub fn list(&self, limit: usize) -> Vec<Sidecar> {
        self.index
            .lock()
            .map(|i| {
                i.entries
                    .values()
                    .rev()
                    .take(limit)
                    .map(|e| e.sidecar.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Writes one frame (JPEG and sidecar) into the queue, replacing a
    /// frame of the same id (an event's better frame), then deletes the
    /// oldest frames until the queue is within the quota. A frame sorted or
    /// skipped since start is not brought back.
    ///
    /// # Errors
    /// When a file cannot be written (e.g. the disk is full); nothing is
    /// left half-written.
    pub fn insert(&self, sidecar: &Sidecar, jpeg: &[u8]) -> std::io::Result<()> {
        let id = &sidecar.id;
        if !valid_id(id) {
            return Err(std::io::Error::other(format!("bad frame id {id:?}")));
        }
        if self.index.lock().is_ok_and(|i| i.handled.contains(id)) {
            return Ok(());
        }
        let json = serde_json::to_vec_pretty(sidecar)?;
        let write = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
            let tmp = self.queue.join(format!(".{name}.tmp"));
            let r = (|| {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(bytes)?;
                f.sync_data()?;
                std::fs::rename(&tmp, self.queue.join(name))
            })();
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            r
        };
        write(&format!("{id}.jpg"), jpeg)?;
        if let Err(e) = write(&format!("{id}.json"), &json) {
            let _ = std::fs::remove_file(self.queue.join(format!("{id}.jpg")));
            return Err(e);
        }
        self.counters.saved.fetch_add(1, Ordering::Relaxed);
        let Ok(mut index) = self.index.lock() else {
            return Ok(());
        };
        let bytes = (jpeg.len() + json.len()) as u64;
        if let Some(old) = index.entries.insert(
            id.clone(),
            Entry {
                sidecar: sidecar.clone(),
                bytes,
            },
        ) {
            index.bytes -= old.bytes;
        }
        index.bytes += bytes;
        while index.bytes > self.quota_bytes {
            let Some((old_id, old)) = index.entries.pop_first() else {
                break;
            };
            index.bytes -= old.bytes;
            for ext in ["jpg", "json"] {
                let _ = std::fs::remove_file(self.queue.join(format!("{old_id}.{ext}")));
            }
            self.counters.deleted_quota.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The JPEG of a queued frame.
    ///
    /// # Errors
    /// [`StoreError::BadId`], [`StoreError::UnknownId`], or reading failed.
    pub fn jpeg(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        if !valid_id(id) {
            return Err(StoreError::BadId);
        }
        if !self.index.lock().is_ok_and(|i| i.entries.contains_key(id)) {
            return Err(StoreError::UnknownId);
        }
        Ok(read_capped(
            &self.queue.join(format!("{id}.jpg")),
            MAX_JPEG,
        )?)
    }

    /// Files a queued frame: moves its JPEG and sidecar into the data set
    /// folder for `choice` (a label must be one of `labels`), or deletes
    /// them for [`Choice::Skip`]. Returns the folder it went to (`None`
    /// for skip).
    ///
    /// # Errors
    /// [`StoreError`]; on any error the frame stays in the queue.
    pub fn sort(
        &self,
        id: &str,
        choice: &Choice,
        labels: &[String],
    ) -> Result<Option<PathBuf>, StoreError> {
        if !valid_id(id) {
            return Err(StoreError::BadId);
        }
        let folder = match choice {
            Choice::Label(l) => {
                if !labels.iter().any(|x| x == l) || !folder_name_ok(l) {
                    return Err(StoreError::UnknownLabel(l.clone()));
                }
                Some(l.as_str())
            }
            Choice::Unlisted => Some(UNLISTED),
            Choice::Empty => Some(EMPTY),
            Choice::Skip => None,
        };
        // Claim the entry, so that a second click on the same frame finds nothing.
        let entry = {
            let mut index = self.index.lock().map_err(|_| StoreError::UnknownId)?;
            let e = index.entries.remove(id).ok_or(StoreError::UnknownId)?;
            index.bytes -= e.bytes;
            e
        };
        let (jpg, json) = (
            self.queue.join(format!("{id}.jpg")),
            self.queue.join(format!("{id}.json")),
        );
        let result = match folder {
            None => std::fs::remove_file(&jpg)
                .and_then(|()| std::fs::remove_file(&json))
                .map(|()| None),
            Some(f) => {
                let dir = self.dataset.join(f);
                std::fs::create_dir_all(&dir)
                    .and_then(|()| move_file(&jpg, &dir.join(format!("{id}.jpg"))))
                    .and_then(|()| move_file(&json, &dir.join(format!("{id}.json"))))
                    .map(|()| Some(dir))
            }
        };
        let Ok(mut index) = self.index.lock() else {
            return result.map_err(StoreError::from);
        };
        match result {
            Ok(dir) => {
                index.handled.insert(id.to_string());
                match folder {
                    Some(f) => {
                        *index.sorted.entry(f.to_string()).or_insert(0) += 1;
                        self.counters.sorted.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(dir)
            }
            Err(e) => {
                // Put it back if its files are still there.
                if jpg.exists() && json.exists() {
                    index.bytes += entry.bytes;
                    index.entries.insert(id.to_string(), entry);
                }
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{LabelScore, ScoreFn};
    use crate::review::{Kind, SidecarModel};

    fn sidecar(id: &str) -> Sidecar {
        Sidecar {
            id: id.into(),
            kind: Kind::Sample,
            captured_at: "2026-01-01T00:00:00.000Z".into(),
            camera: "cam".into(),
            source: "a.jpg".into(),
            frame_seq: 1,
            model: SidecarModel {
                name: "m".into(),
                sha256: "0".repeat(64),
            },
            score_fn: ScoreFn::Msp,
            top_k: vec![LabelScore {
                label: "llama".into(),
                score: 0.3,
            }],
            verdict: "rejected".into(),
            reason: Some("below_threshold".into()),
            score: 0.3,
            threshold: 0.5,
            event_id: None,
        }
    }

    fn id(n: u32) -> String {
        format!("0190f3c4-0000-7000-8000-{n:012x}")
    }

    #[test]
    fn quota_deletes_oldest_first_and_sorting_moves_both_files() {
        let t = tempfile::tempdir().unwrap();
        let jpeg = vec![0xffu8; 1000];
        // Each frame is 1000 bytes + its sidecar (< 600 bytes): 3 fit in 5000.
        let s = Store::open(t.path(), &t.path().join("sorted"), 5000).unwrap();
        for n in 1..=5 {
            s.insert(&sidecar(&id(n)), &jpeg).unwrap();
        }
        let ids: Vec<String> = s.list(10).into_iter().map(|c| c.id).collect();
        assert_eq!(ids, [id(5), id(4), id(3)]);
        assert!(!t.path().join(format!("queue/{}.jpg", id(1))).exists());
        assert!(!t.path().join(format!("queue/{}.json", id(2))).exists());
        assert_eq!(Counters::get(&s.counters.deleted_quota), 2);
        let labels = vec!["llama".to_string()];
        let dir = s
            .sort(&id(4), &Choice::Label("llama".into()), &labels)
            .unwrap()
            .unwrap();
        assert_eq!(dir, t.path().join("sorted/llama"));
        assert!(dir.join(format!("{}.jpg", id(4))).is_file());
        assert!(dir.join(format!("{}.json", id(4))).is_file());
        assert!(!t.path().join(format!("queue/{}.jpg", id(4))).exists());
        // Twice: gone from the queue. Unknown labels, bad ids: refused, nothing moves.
        assert!(matches!(
            s.sort(&id(4), &Choice::Empty, &labels),
            Err(StoreError::UnknownId)
        ));
        assert!(matches!(
            s.sort(&id(5), &Choice::Label("../x".into()), &labels),
            Err(StoreError::UnknownLabel(_))
        ));
        assert!(matches!(
            s.sort("../queue/x", &Choice::Empty, &labels),
            Err(StoreError::BadId)
        ));
        s.sort(&id(5), &Choice::Empty, &labels).unwrap();
        s.sort(&id(3), &Choice::Skip, &labels).unwrap();
        assert_eq!(s.usage().0, 0);
        assert_eq!(
            s.sorted_counts(),
            BTreeMap::from([("llama".to_string(), 1), (EMPTY.to_string(), 1)])
        );
        // A skipped event frame is not brought back by a later best frame.
        s.insert(&sidecar(&id(3)), &jpeg).unwrap();
        assert_eq!(s.usage().0, 0);
        // Reopened: the counts are read back from the folders.
        s.insert(&sidecar(&id(9)), &jpeg).unwrap();
        let again = Store::open(t.path(), &t.path().join("sorted"), 5000).unwrap();
        assert_eq!(again.usage().0, 1);
        assert_eq!(again.sorted_counts().get("llama"), Some(&1));
    }

    #[test]
    fn ids_have_the_uuid_form() {
        assert!(valid_id(&id(7)));
        for bad in [
            "",
            "..",
            "../../etc/passwd",
            &id(7).to_uppercase(),
            &format!("{}x", id(7)),
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
