//! The model bundle's kNN embedding bank, and the query the `knn` score
//! function reads (Sun, Ming, Zhu & Li 2022, "Out-of-Distribution Detection
//! with Deep Nearest Neighbors", ICML): embeddings (the model's penultimate features) are L2-normalised, and a
//! frame's score is minus the Euclidean distance from its embedding to the
//! k-th nearest embedding of the training images (the "bank"). Frames far
//! from everything the model was trained on score low. Scores lie in -2..0.
//!
//! The bank is a `.npy` file (numpy's format: a small text header, then
//! little-endian f32 rows) in the model bundle, named with its SHA-256 and k
//! in `model.toml`:
//!
//! ```toml
//! [knn]
//! bank = "knn-bank.npy"   # [n, D] f32 embeddings of the training images
//! sha256 = "..."          # `sha256sum knn-bank.npy`; checked at load
//! k = 5                   # which neighbour: 1 = the nearest
//! ```
//!
//! `camtrapd bank` builds it from a folder or manifest of training images;
//! [`crate::model::Model::load`] loads and checks it with the bundle, and
//! the decision reads it through [`crate::model::Model::knn_bank`] (also
//! reachable as `crate::decision::knn`).

// Parses bytes from outside: no indexing or slicing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A loaded embedding bank: L2-normalised rows and the k to use.
#[derive(Debug, Clone)]
pub struct KnnBank {
    dim: usize,
    rows: Vec<f32>,
    k: usize,
    sha256: String,
}

/// Errors reading or writing a bank.
#[derive(Debug, thiserror::Error)]
pub enum KnnError {
    /// The file could not be read or written.
    #[error("kNN bank {path}: {error}")]
    Io {
        /// The bank file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not a bank camtrapd can use.
    #[error("kNN bank {path}: {message}")]
    Invalid {
        /// The bank file.
        path: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Largest bank file accepted: 1 GiB (about 200,000 embeddings of 1280 f32).
const BANK_MAX_BYTES: u64 = 1 << 30;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a version 1/2/3 `.npy` file holding a 2-D little-endian f32 array
/// in C order; returns `(rows, cols, values)`.
fn parse_npy(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), String> {
    if bytes.get(..6) != Some(MAGIC) {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let le = |range: std::ops::Range<usize>| -> Option<usize> {
        let b = bytes.get(range)?;
        Some(
            b.iter()
                .rev()
                .fold(0usize, |acc, &x| (acc << 8) | usize::from(x)),
        )
    };
    let (header_len, start) = match bytes.get(6) {
        Some(1) => (le(8..10).ok_or("truncated .npy header")?, 10),
        Some(2 | 3) => (le(8..12).ok_or("truncated .npy header")?, 12),
        Some(v) => return Err(format!("unsupported .npy version {v}")),
        None => return Err("truncated .npy header".into()),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-text .npy header")?;
    let compact: String = header.chars().filter(|c| !c.is_whitespace()).collect();
    if !compact.contains("'descr':'<f4'") {
        return Err(format!(
            "holds {header:?}; a bank must be float32 little-endian ('<f4')"
        ));
    }
    if !compact.contains("'fortran_order':False") {
        return Err("is in Fortran order; save a C-ordered array".into());
    }
    let shape = compact
        .split("'shape':(")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("header has no shape")?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape ({shape})"))
        })
        .collect::<Result<_, _>>()?;
    let [n, d] = *dims.as_slice() else {
        return Err(format!(
            "has shape ({shape}); a bank is 2-D: [images, embedding width]"
        ));
    };
    let data = bytes.get(start + header_len..).unwrap_or_default();
    let want = n
        .checked_mul(d)
        .and_then(|v| v.checked_mul(4))
        .ok_or("shape too large")?;
    if data.len() != want {
        return Err(format!(
            "shape ({n}, {d}) needs {want} bytes of data, the file has {}",
            data.len()
        ));
    }
    let values = data
        .chunks_exact(4)
        .filter_map(|c| <[u8; 4]>::try_from(c).ok())
        .map(f32::from_le_bytes)
        .collect();
    Ok((n, d, values))
}

/// Writes `rows` (each of the same width) as a version 1.0 `.npy` file of
/// little-endian f32 (readable with `numpy.load`); returns its hex SHA-256.
///
/// # Errors
/// [`KnnError`] when the rows are ragged or empty, or the file cannot be written.
pub fn write_npy(path: &Path, rows: &[Vec<f32>]) -> Result<String, KnnError> {
    let invalid = |message: String| KnnError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let d = rows.first().map_or(0, Vec::len);
    if d == 0 || rows.iter().any(|r| r.len() != d) {
        return Err(invalid(
            "no embeddings, or embeddings of different widths".into(),
        ));
    }
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {d}), }}",
        rows.len()
    );
    // Pad so that the data starts on a 64-byte boundary, ending in '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + rows.len() * d * 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in rows.iter().flatten() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, &bytes).map_err(|error| KnnError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// L2-normalises `v` in place (a zero vector stays zero).
pub fn normalise(v: &mut [f32]) {
    let n = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if n > 0.0 && n.is_finite() {
        v.iter_mut().for_each(|x| *x = (f64::from(*x) / n) as f32);
    }
}

impl KnnBank {
    /// Loads the bank at `path`, checks its SHA-256 against `sha256` (when
    /// given) and that it holds at least `k` embeddings, and normalises them.
    ///
    /// # Errors
    /// [`KnnError`] naming the file and the fix.
    pub fn load(path: &Path, sha256: Option<&str>, k: usize) -> Result<KnnBank, KnnError> {
        let bytes =
            crate::read::read_capped(path, BANK_MAX_BYTES).map_err(|error| KnnError::Io {
                path: path.to_path_buf(),
                error,
            })?;
        let invalid = |message: String| KnnError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let sha = hex(&Sha256::digest(&bytes));
        if let Some(want) = sha256 {
            if !want.eq_ignore_ascii_case(&sha) {
                return Err(invalid(format!(
                    "has sha256 {sha}, model.toml [knn] says {want}; rebuild it with `camtrapd bank`, or put its `sha256sum` in model.toml"
                )));
            }
        }
        let (n, dim, mut rows) = parse_npy(&bytes).map_err(invalid)?;
        if rows.iter().any(|v| !v.is_finite()) {
            return Err(invalid("holds NaN or infinite values".into()));
        }
        if k == 0 || k > n {
            return Err(invalid(format!(
                "k = {k} but the bank holds {n} embeddings; allowed 1..={n}"
            )));
        }
        for r in rows.chunks_exact_mut(dim) {
            normalise(r);
        }
        Ok(KnnBank {
            dim,
            rows,
            k,
            sha256: sha,
        })
    }

    /// A bank from embeddings in memory (normalised here).
    ///
    /// # Panics
    /// Never; rows of the wrong width are skipped.
    pub fn from_rows(rows: &[Vec<f32>], k: usize) -> KnnBank {
        let dim = rows.first().map_or(0, Vec::len);
        let mut flat = Vec::with_capacity(rows.len() * dim);
        for r in rows.iter().filter(|r| r.len() == dim) {
            let start = flat.len();
            flat.extend_from_slice(r);
            if let Some(row) = flat.get_mut(start..) {
                normalise(row);
            }
        }
        let n = flat.len().checked_div(dim).unwrap_or(0);
        KnnBank {
            dim,
            rows: flat,
            k: k.clamp(1, n.max(1)),
            sha256: String::new(),
        }
    }

    /// Embedding width D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of embeddings.
    pub fn len(&self) -> usize {
        self.rows.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether the bank is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Which neighbour the score uses (1 = nearest).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Hex SHA-256 of the bank file (empty for banks built in memory).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The kNN score of an embedding: minus the distance between its
    /// L2-normalised form and its k-th nearest bank embedding (-2..0;
    /// higher = closer to the training images). An embedding of the wrong
    /// width or with non-finite values scores -2 (as far as possible).
    pub fn score(&self, embedding: &[f32]) -> f32 {
        if embedding.len() != self.dim
            || self.is_empty()
            || embedding.iter().any(|v| !v.is_finite())
        {
            return -2.0;
        }
        let mut q = embedding.to_vec();
        normalise(&mut q);
        // For unit vectors |a - b|² = 2 - 2 a·b: the k-th nearest is the k-th largest dot product.
        let mut sims: Vec<f32> = self
            .rows
            .chunks_exact(self.dim)
            .map(|r| r.iter().zip(&q).map(|(a, b)| a * b).sum())
            .collect();
        let k = self.k.min(sims.len());
        let (_, kth, _) = sims.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        -(2.0 - 2.0 * *kth).max(0.0).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Case {
        k: usize,
        queries: Vec<Vec<f32>>,
        scores: Vec<f64>,
    }

    #[test]
    fn knn_scores_match_scikit_learn_on_a_numpy_written_bank() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
        let reference = Path::new(dir).join("score_reference.json");
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(reference).unwrap()).unwrap();
        let cases: Vec<Case> = serde_json::from_value(r["knn"].clone()).unwrap();
        assert_eq!(cases.len(), 3);
        let path = Path::new(dir).join("knn_bank_small.npy");
        for c in &cases {
            let bank = KnnBank::load(&path, None, c.k).unwrap();
            assert_eq!((bank.len(), bank.dim()), (40, 8));
            for (q, want) in c.queries.iter().zip(&c.scores) {
                let got = f64::from(bank.score(q));
                assert!(
                    (got - want).abs() < 2e-4,
                    "k={}: {got} vs sklearn {want}",
                    c.k
                );
            }
        }
        let e = KnnBank::load(&path, None, 41).unwrap_err().to_string();
        assert!(e.contains("allowed 1..=40"), "{e}");
        let e = KnnBank::load(&path, Some(&"0".repeat(64)), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("camtrapd bank"), "{e}");
    }

    #[test]
    fn written_banks_read_back() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("b.npy");
        let rows = vec![vec![3.0, 4.0], vec![0.0, 1.0], vec![1.0, 0.0]];
        let sha = write_npy(&p, &rows).unwrap();
        assert_eq!(sha, crate::model::sha256_file(&p).unwrap());
        let b = KnnBank::load(&p, Some(&sha), 1).unwrap();
        // The nearest to (1, 0) is itself: distance 0.
        assert_eq!(b.score(&[2.0, 0.0]), 0.0);
        // (0.6, 0.8) vs (0, 1): |(0.6, -0.2)| = 0.632456
        let b2 = KnnBank::load(&p, None, 2).unwrap();
        assert!((b2.score(&[0.6, 0.8]) + 0.632_456).abs() < 1e-5);
        assert_eq!(b.score(&[1.0]), -2.0);
        std::fs::write(&p, b"not numpy").unwrap();
        assert!(KnnBank::load(&p, None, 1)
            .unwrap_err()
            .to_string()
            .contains("magic"));
        assert!(write_npy(&p, &[]).is_err());
        let m = KnnBank::from_rows(&rows, 9);
        assert_eq!((m.len(), m.k()), (3, 3));
    }
}
