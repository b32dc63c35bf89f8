//! Running the model over a data set, with a cache of its raw outputs.
//!
//! Evaluation and calibration need each image's raw scores output (logits)
//! and embedding, for every score function. Computing them is the slow part
//! (tens of ms per image), so they are cached in one file
//! (`model-outputs.bin` in `$XDG_CACHE_HOME/camtrapd`, else
//! `~/.cache/camtrapd`, or `--cache DIR`), keyed by the SHA-256 of the image
//! file's bytes, the model's SHA-256 and the preprocessing settings: a
//! re-run over the same images does not run the model again, a changed
//! image or model is recomputed, and renaming files costs nothing.
//!
//! File format: the line `camtrapd model outputs v1\n`, then records of
//! `b"REC1"`, a 32-byte key, the number of scores and of embedding values
//! (u32 little-endian each), and the values (f32 little-endian). Records are
//! appended as images are computed, so an interrupted run keeps its work; a
//! damaged tail is ignored.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::decode::{decode_bytes_for, DecodeLimits, DecodeTarget};
use crate::model::{Model, ModelError};
use crate::preprocess::Preprocessor;

use super::dataset::Item;

const HEADER: &[u8] = b"camtrapd model outputs v1\n";
const RECORD: &[u8] = b"REC1";
/// Bumped whenever decoding or preprocessing changes what the model sees.
/// v2: JPEGs decoded with libjpeg-turbo, shrunk in the DCT domain as far as
/// the model's input allows (as the daemon decodes them).
const PREPROCESS_VERSION: &str = "preprocess-v2";

/// The raw outputs of the model for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// The scores output (logits or probabilities, one per model class).
    pub scores: Vec<f32>,
    /// The embedding output (empty if the model has none).
    pub embedding: Vec<f32>,
}

/// The default cache folder: `$XDG_CACHE_HOME/camtrapd`, else `$HOME/.cache/camtrapd`.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|p| !p.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .map(|p| p.join("camtrapd"))
}

/// The output cache: loaded records and an append handle.
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    records: HashMap<[u8; 32], Outputs>,
    file: Option<std::fs::File>,
}

impl Cache {
    /// Opens (or creates) `model-outputs.bin` in `dir`. A file that is not a
    /// cache, or a damaged tail, is reported with a warning and ignored.
    ///
    /// # Errors
    /// The I/O error when the folder or file cannot be created or opened.
    pub fn open(dir: &Path) -> std::io::Result<Cache> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("model-outputs.bin");
        let mut records = HashMap::new();
        let mut valid_len = 0u64;
        if let Ok(bytes) = std::fs::read(&path) {
            if bytes.starts_with(HEADER) {
                let mut pos = HEADER.len();
                while let Some((key, out, used)) = parse_record(&bytes[pos..]) {
                    records.insert(key, out);
                    pos += used;
                }
                if pos < bytes.len() {
                    log::warn!(
                        "cache {}: ignoring {} damaged bytes at the end",
                        path.display(),
                        bytes.len() - pos
                    );
                }
                valid_len = pos as u64;
            } else if !bytes.is_empty() {
                log::warn!(
                    "cache {}: not a camtrapd cache; starting a new one",
                    path.display()
                );
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        // Cut a damaged tail (or a foreign file) so that new records follow valid ones.
        file.set_len(valid_len)?;
        if valid_len == 0 {
            file.write_all(HEADER)?;
        }
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))?;
        Ok(Cache {
            path,
            records,
            file: Some(file),
        })
    }

    /// A cache that keeps nothing (for `--no-cache`).
    pub fn disabled() -> Cache {
        Cache {
            path: PathBuf::new(),
            records: HashMap::new(),
            file: None,
        }
    }

    /// The cache file (empty for a disabled cache).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of cached records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn get(&self, key: &[u8; 32]) -> Option<&Outputs> {
        self.records.get(key)
    }

    fn put(&mut self, key: [u8; 32], out: Outputs) {
        if let Some(f) = self.file.as_mut() {
            let mut rec = Vec::with_capacity(44 + 4 * (out.scores.len() + out.embedding.len()));
            rec.extend_from_slice(RECORD);
            rec.extend_from_slice(&key);
            rec.extend_from_slice(&(out.scores.len() as u32).to_le_bytes());
            rec.extend_from_slice(&(out.embedding.len() as u32).to_le_bytes());
            for v in out.scores.iter().chain(&out.embedding) {
                rec.extend_from_slice(&v.to_le_bytes());
            }
            if let Err(e) = f.write_all(&rec) {
                log::warn!(
                    "cache {}: cannot write ({e}); continuing without it",
                    self.path.display()
                );
                self.file = None;
            }
        }
        self.records.insert(key, out);
    }
}

fn parse_record(b: &[u8]) -> Option<([u8; 32], Outputs, usize)> {
    if b.len() < 44 || &b[..4] != RECORD {
        return None;
    }
    let key: [u8; 32] = b[4..36].try_into().ok()?;
    let n = u32::from_le_bytes(b[36..40].try_into().ok()?) as usize;
    let e = u32::from_le_bytes(b[40..44].try_into().ok()?) as usize;
    let len = 44 + 4 * (n + e);
    let vals: Vec<f32> = b
        .get(44..len)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (scores, embedding) = vals.split_at(n);
    Some((
        key,
        Outputs {
            scores: scores.to_vec(),
            embedding: embedding.to_vec(),
        },
        len,
    ))
}

/// What running the model over a data set gave: per item, the outputs or
/// why the image could not be used.
#[derive(Debug)]
pub struct Run {
    /// One entry per item, in order.
    pub outputs: Vec<Result<Outputs, String>>,
    /// How many came from the cache.
    pub cached: usize,
    /// How many were computed now.
    pub computed: usize,
}

/// Runs `model` over `items` (decoding and preprocessing as the daemon
/// does), using and filling `cache`; shows a progress bar on a terminal
/// unless `quiet`.
///
/// # Errors
/// [`ModelError`] when inference itself fails (a broken model, not a bad image).
pub fn run(
    model: &mut Model,
    items: &[&Item],
    cache: &mut Cache,
    quiet: bool,
) -> Result<Run, ModelError> {
    let limits = DecodeLimits::default();
    let mut pre = Preprocessor::new(model.manifest());
    // The daemon's decode for this model. With MQTT snapshots larger than
    // what the model's margin keeps, the daemon decodes more pixels; the
    // final resize still shrinks 4× or more either way, which leaves the
    // scores as they are (src/decode.rs, MODEL_MARGIN).
    let target = DecodeTarget::model(pre.geometry());
    let fingerprint = format!(
        "{PREPROCESS_VERSION}|{}|{:?}|shrink margin {}",
        model.sha256(),
        model.manifest().input,
        crate::decode::shrink_margin()
    );
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(items.len() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {bar:40} {pos}/{len} images, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("embedding");
    let (mut cached, mut computed) = (0, 0);
    let mut outputs = Vec::with_capacity(items.len());
    for item in items {
        bar.inc(1);
        let bytes = match std::fs::read(&item.path) {
            Ok(b) => b,
            Err(e) => {
                outputs.push(Err(format!("cannot read: {e}")));
                continue;
            }
        };
        let mut h = Sha256::new();
        h.update(Sha256::digest(&bytes));
        h.update(fingerprint.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        if let Some(o) = cache.get(&key) {
            cached += 1;
            outputs.push(Ok(o.clone()));
            continue;
        }
        let d = match decode_bytes_for(&bytes, &limits, &target) {
            Ok(d) => d,
            Err(e) => {
                outputs.push(Err(e.to_string()));
                continue;
            }
        };
        pre.run_window(&d.image, d.window, model.input_mut())
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        model.run()?;
        let o = Outputs {
            scores: model.scores_output()?.to_vec(),
            embedding: model
                .embedding_output()?
                .map(<[f32]>::to_vec)
                .unwrap_or_default(),
        };
        computed += 1;
        cache.put(key, o.clone());
        outputs.push(Ok(o));
    }
    bar.finish_and_clear();
    Ok(Run {
        outputs,
        cached,
        computed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_damaged_tails_are_cut() {
        let t = tempfile::tempdir().unwrap();
        let mut c = Cache::open(t.path()).unwrap();
        let o = Outputs {
            scores: vec![1.0, -2.5],
            embedding: vec![0.5; 3],
        };
        c.put([7; 32], o.clone());
        drop(c);
        // Append half a record: ignored and cut on the next open.
        let p = t.path().join("model-outputs.bin");
        let good = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"REC1\x01\x02")
            .unwrap();
        let mut c = Cache::open(t.path()).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&[7; 32]), Some(&o));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), good);
        c.put([8; 32], o.clone());
        drop(c);
        assert_eq!(Cache::open(t.path()).unwrap().len(), 2);
        // A foreign file is replaced, not trusted.
        std::fs::write(&p, b"something else").unwrap();
        assert_eq!(Cache::open(t.path()).unwrap().len(), 0);
    }
}
