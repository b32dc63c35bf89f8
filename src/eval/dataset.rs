//! Labelled evaluation data in the layouts users already have:
//!
//! * a folder with one sub-folder per label (`elephant/`, `llama/`, ...);
//!   sub-folders whose name is not one of the labels (`nothing/`,
//!   `other_animals/`, `empty/`) hold unknowns;
//! * a manifest CSV with at least the columns `path` (relative to the CSV's
//!   folder) and `label`, optionally `split` (`train` | `calib` | `test`) and
//!   `kind` (`known` | `nothing` | `empty` | `unknown` | `non_animal`) and
//!   `day_night` (e.g. `night_ir(grey)`), as `../shared/data/zoo12/manifest.csv`.
//!
//! Unknown images are further split into *empty* frames (no animal: folders
//! or `kind`s named `nothing`, `empty`, `blank`, `background`, `none`) and
//! other unknowns (animals that are not labels, people, vehicles), because
//! false accepts of the two are reported separately.

use std::path::{Path, PathBuf};

use crate::source::files::list_images;

/// What an image shows, relative to the model's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// One of the labels.
    Known,
    /// No animal at all (empty habitat, background).
    Empty,
    /// Something else: an animal that is not a label, a person, a vehicle.
    Unknown,
}

impl Category {
    /// `known`, `empty` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Known => "known",
            Category::Empty => "empty",
            Category::Unknown => "unknown",
        }
    }
}

/// Whether a folder or `kind` name means "no animal".
pub fn is_empty_name(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "nothing" | "empty" | "blank" | "background" | "none" | "no_animal"
    )
}

/// One labelled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The image file.
    pub path: PathBuf,
    /// Its label as written in the data set (folder name or `label` column).
    pub label: String,
    /// Whether the label is one the model should report (else: unknown).
    pub known: bool,
    /// `train`, `calib`, `test`, or empty when the layout has no splits.
    pub split: String,
    /// Known, empty or unknown.
    pub category: Category,
    /// Lighting from the manifest's `day_night` column, up to any `(`
    /// (`day`, `night_ir`, ...); empty when not given.
    pub lighting: String,
}

/// Errors reading a data set.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The path is neither a folder nor a CSV file.
    #[error("{0}: not a folder of label folders nor a manifest .csv")]
    NotADataset(PathBuf),
    /// The manifest cannot be read or parsed.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// The CSV file.
        path: PathBuf,
        /// What is wrong, with the line where known.
        message: String,
    },
    /// Listing a label folder failed.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
}

/// Reads a data set (folder layout or manifest CSV, see the module docs).
/// `known_labels` decides which labels are known; every other label is
/// unknown. Items are sorted by path.
///
/// # Errors
/// [`DatasetError`] for a missing or malformed data set.
pub fn load(path: &Path, known_labels: &[String]) -> Result<Vec<Item>, DatasetError> {
    let known = |l: &str| known_labels.iter().any(|k| k == l);
    let mut items = if path.is_dir() {
        let mut items = Vec::new();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|_| DatasetError::NotADataset(path.to_path_buf()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let label = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let files = match list_images(&dir) {
                Ok(f) => f,
                Err(crate::source::SourceError::NoImages(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let category = if known(&label) {
                Category::Known
            } else if is_empty_name(&label) {
                Category::Empty
            } else {
                Category::Unknown
            };
            for f in files {
                items.push(Item {
                    path: f,
                    known: known(&label),
                    label: label.clone(),
                    split: String::new(),
                    category,
                    lighting: String::new(),
                });
            }
        }
        items
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        && path.is_file()
    {
        read_manifest(path, &known)?
    } else {
        return Err(DatasetError::NotADataset(path.to_path_buf()));
    };
    items.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(items)
}

fn read_manifest(path: &Path, known: &dyn Fn(&str) -> bool) -> Result<Vec<Item>, DatasetError> {
    let err = |message: String| DatasetError::Manifest {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| err(e.to_string()))?;
    let headers = reader.headers().map_err(|e| err(e.to_string()))?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(path_col), Some(label_col)) = (col("path"), col("label")) else {
        return Err(err(format!(
            "needs the columns `path` and `label` (it has: {})",
            headers.iter().collect::<Vec<_>>().join(", ")
        )));
    };
    let (split_col, kind_col, light_col) = (col("split"), col("kind"), col("day_night"));
    let base = path.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| err(e.to_string()))?;
        let field = |c: usize| row.get(c).unwrap_or("").trim().to_string();
        let label = field(label_col);
        let rel = field(path_col);
        if rel.is_empty() || label.is_empty() {
            return Err(err(format!("line {}: empty path or label", i + 2)));
        }
        // An explicit kind column wins; without it, the label decides.
        let kind = kind_col.map(field).unwrap_or_default();
        let is_known = match kind.as_str() {
            "known" | "" => known(&label),
            _ => false,
        };
        let category = if is_known {
            Category::Known
        } else if is_empty_name(&kind) || is_empty_name(&label) {
            Category::Empty
        } else {
            Category::Unknown
        };
        let lighting = light_col
            .map(field)
            .unwrap_or_default()
            .split('(')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        items.push(Item {
            path: base.join(rel),
            label,
            known: is_known,
            split: split_col.map(field).unwrap_or_default(),
            category,
            lighting,
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoo12_labels() -> Vec<String> {
        [
            "beaver",
            "cougar",
            "crocodile",
            "elephant",
            "emu",
            "flamingo",
            "hedgehog",
            "ibis",
            "kangaroo",
            "leopard",
            "llama",
            "rhino",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn zoo12() -> PathBuf {
        let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/zoo12"));
        assert!(p.is_dir(), "test data missing: {}", p.display());
        p
    }

    #[test]
    fn zoo12_manifest_splits_and_kinds() {
        let items = load(&zoo12().join("manifest.csv"), &zoo12_labels()).unwrap();
        assert_eq!(items.len(), 1655);
        let count = |known: bool, split: &str| {
            items
                .iter()
                .filter(|i| i.known == known && i.split == split)
                .count()
        };
        assert_eq!(
            (
                count(true, "train"),
                count(true, "calib"),
                count(true, "test")
            ),
            (452, 241, 191)
        );
        // Unknown = other animals + "nothing" (background clutter).
        assert_eq!(
            (
                count(false, "train"),
                count(false, "calib"),
                count(false, "test")
            ),
            (250, 249, 272)
        );
        assert!(items.iter().all(|i| i.path.is_file()));
        let empty = items
            .iter()
            .filter(|i| i.category == Category::Empty)
            .count();
        assert_eq!(empty, 468);
    }

    #[test]
    fn camera_trap_manifest_kinds_and_lighting() {
        let p = zoo12().join("../camera_trap/manifest.csv");
        let items = load(&p, &zoo12_labels()).unwrap();
        assert_eq!(items.len(), 30);
        let count = |c: Category| items.iter().filter(|i| i.category == c).count();
        assert_eq!(
            (
                count(Category::Known),
                count(Category::Empty),
                count(Category::Unknown)
            ),
            (0, 3, 27)
        );
        assert_eq!(
            items.iter().filter(|i| i.lighting == "night_ir").count(),
            15
        );
    }

    #[test]
    fn folder_layout_marks_unlisted_folders_unknown() {
        let items = load(
            &zoo12().join("known"),
            &["elephant".to_string(), "llama".to_string()],
        )
        .unwrap();
        assert_eq!(items.len(), 884);
        assert_eq!(items.iter().filter(|i| i.known).count(), 64 + 78);
        assert!(items
            .iter()
            .filter(|i| i.known)
            .all(|i| i.label == "elephant" || i.label == "llama"));
    }

    #[test]
    fn bad_inputs_are_named() {
        let t = tempfile::tempdir().unwrap();
        let csv = t.path().join("m.csv");
        std::fs::write(&csv, "file,class\na.jpg,cat\n").unwrap();
        let e = load(&csv, &[]).unwrap_err().to_string();
        assert!(
            e.contains("needs the columns `path` and `label`") && e.contains("file, class"),
            "{e}"
        );
        std::fs::write(&csv, "path,label\na.jpg,\n").unwrap();
        assert!(load(&csv, &[])
            .unwrap_err()
            .to_string()
            .contains("line 2: empty path or label"));
        assert!(matches!(
            load(&t.path().join("x.txt"), &[]),
            Err(DatasetError::NotADataset(_))
        ));
    }
}
