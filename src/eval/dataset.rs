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

/// Whether a folder or `kind` name means "no animal": names starting with
/// `nothing`, `empty`, `blank` or `background` (`empty_frames/`,
/// `blank-night/`, also after leading underscores: `_nothing/`), and
/// `none`, `no_animal` (any case).
pub fn is_empty_name(name: &str) -> bool {
    let n = name.trim().trim_start_matches('_').to_ascii_lowercase();
    ["nothing", "empty", "blank", "background"]
        .iter()
        .any(|p| n.starts_with(p))
        || matches!(n.as_str(), "none" | "no_animal" | "no animal")
}

/// Which names count as empty frames, in words, for messages.
pub const EMPTY_NAMES: &str = "nothing*, empty*, blank*, background*, none, no_animal";

/// Labels that `name` (a folder name or manifest label that is not a label)
/// was probably meant as: the same name in another case, with `_`/`-` for
/// spaces, or in the plural (`Elephants` for `elephant`); else up to three
/// labels spelt alike (see `crate::text::suggestions`).
pub fn did_you_mean(name: &str, labels: &[String]) -> Vec<String> {
    let norm = |s: &str| s.trim().to_lowercase().replace(['_', '-'], " ");
    let n = norm(name);
    let forms = [Some(n.as_str()), n.strip_suffix('s'), n.strip_suffix("es")];
    let same: Vec<String> = labels
        .iter()
        .filter(|l| {
            let l = norm(l);
            forms.contains(&Some(l.as_str()))
        })
        .cloned()
        .collect();
    if !same.is_empty() {
        return same;
    }
    crate::text::suggestions(&n, labels.iter().map(String::as_str), 3)
        .into_iter()
        .map(String::from)
        .collect()
}

/// How one folder (folder layout) or one label of a manifest was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The folder name, or the manifest's label.
    pub name: String,
    /// What its images count as.
    pub category: Category,
    /// How many images.
    pub images: usize,
    /// Labels it was probably meant as (only for unknowns named like a label).
    pub did_you_mean: Vec<String>,
}

/// A data set as read: its items and how each folder or label was read.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// The images, sorted by path.
    pub items: Vec<Item>,
    /// Per folder (folder layout) or manifest label, in name order.
    pub groups: Vec<Group>,
    /// Manifest paths that do not exist (left out with `allow_missing`).
    pub missing: Vec<PathBuf>,
    /// Whether the data set is a manifest CSV (else a folder per label).
    pub manifest: bool,
}

impl Dataset {
    /// A compact table of how each folder or label was read, then which
    /// names count as empty frames (for the terminal).
    pub fn summary(&self, path: &Path) -> String {
        let what = if self.manifest { "LABEL" } else { "FOLDER" };
        let name = |g: &Group| {
            if self.manifest {
                g.name.clone()
            } else {
                format!("{}/", g.name)
            }
        };
        let width = self
            .groups
            .iter()
            .map(|g| name(g).chars().count())
            .max()
            .unwrap_or(0)
            .clamp(what.len(), 40);
        let mut s = format!(
            "{} read as {}:\n  {what:<width$}  {:<24} {:>6}\n",
            path.display(),
            if self.manifest {
                "a manifest (label column, kind column where given)"
            } else {
                "a folder per label"
            },
            "COUNTS AS",
            "IMAGES"
        );
        for g in &self.groups {
            let as_ = match g.category {
                Category::Known => format!("label {:?}", g.name),
                Category::Empty => "empty frames".into(),
                Category::Unknown => "unknown animals".into(),
            };
            let hint = if g.did_you_mean.is_empty() {
                String::new()
            } else {
                format!("  did you mean {}?", quoted(&g.did_you_mean))
            };
            s.push_str(&format!(
                "  {:<width$}  {as_:<24} {:>6}{hint}\n",
                name(g),
                g.images
            ));
        }
        s.push_str(&format!(
            "  (empty frames: {} named {EMPTY_NAMES}; unknown animals: every other {} that is not a label or label group)\n",
            if self.manifest { "labels or kinds" } else { "folders" },
            if self.manifest { "label" } else { "folder" },
        ));
        s
    }

    /// One warning per folder or label that is probably a misspelt label.
    pub fn warnings(&self) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| !g.did_you_mean.is_empty())
            .map(|g| {
                if self.manifest {
                    format!(
                        "label {:?} is not a label of the model or a label group, so its {} image{} count as unknown animals; did you mean {}? Fix the label column (or set kind=unknown if they are unknown animals)",
                        g.name,
                        g.images,
                        plural(g.images),
                        quoted(&g.did_you_mean)
                    )
                } else {
                    format!(
                        "folder {:?} is not a label of the model or a label group, so its {} image{} count as unknown animals; did you mean {}? Rename the folder to the label as `camtrapd labels` (or [decision.label_groups]) spells it",
                        format!("{}/", g.name),
                        g.images,
                        plural(g.images),
                        quoted(&g.did_you_mean)
                    )
                }
            })
            .collect()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `"a", "b"` for messages.
pub fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
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
    /// Manifest paths that do not exist.
    #[error("manifest {manifest}: {count} of {rows} image paths do not exist (paths are relative to the manifest's folder): {}{}; fix the paths, or pass --allow-missing to leave them out", first.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "), if *count > first.len() { format!(" and {} more", count - first.len()) } else { String::new() })]
    Missing {
        /// The CSV file.
        manifest: PathBuf,
        /// How many are missing.
        count: usize,
        /// How many rows the manifest has.
        rows: usize,
        /// The first few (at most 5).
        first: Vec<PathBuf>,
    },
    /// Listing a label folder failed.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
}

/// The label names a data set holds, for training a head on it (`camtrapd
/// train`), sorted: in a folder layout, every sub-folder with images that is
/// not an empty-frame name ([`is_empty_name`]) nor in `negatives`; in a
/// manifest, the labels of rows with `kind=known` (without a `kind` column:
/// every label that is not an empty-frame name nor in `negatives`).
///
/// # Errors
/// [`DatasetError`] for a missing or malformed data set.
pub fn label_names(path: &Path, negatives: &[String]) -> Result<Vec<String>, DatasetError> {
    let negative = |l: &str| is_empty_name(l) || negatives.iter().any(|n| n == l);
    let mut labels = std::collections::BTreeSet::new();
    if path.is_dir() {
        let ds = read(path, &[], false)?;
        labels.extend(
            ds.groups
                .into_iter()
                .map(|g| g.name)
                .filter(|n| !negative(n)),
        );
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        && path.is_file()
    {
        let err = |message: String| DatasetError::Manifest {
            path: path.to_path_buf(),
            message,
        };
        let mut reader = csv::Reader::from_path(path).map_err(|e| err(e.to_string()))?;
        let headers = reader.headers().map_err(|e| err(e.to_string()))?.clone();
        let col = |name: &str| headers.iter().position(|h| h.trim() == name);
        let Some(label_col) = col("label") else {
            return Err(err("needs the columns `path` and `label`".into()));
        };
        let kind_col = col("kind");
        for row in reader.records() {
            let row = row.map_err(|e| err(e.to_string()))?;
            let label = row.get(label_col).unwrap_or("").trim();
            let known = match kind_col {
                Some(k) => row.get(k).unwrap_or("").trim() == "known",
                None => !negative(label),
            };
            if known && !label.is_empty() && !negatives.iter().any(|n| n == label) {
                labels.insert(label.to_string());
            }
        }
    } else {
        return Err(DatasetError::NotADataset(path.to_path_buf()));
    }
    Ok(labels.into_iter().collect())
}

/// The label names of several data sets together ([`label_names`] of
/// each, merged and sorted): `camtrapd train --data A --data B`.
///
/// # Errors
/// As [`label_names`], for the first data set that fails.
pub fn label_names_of(
    paths: &[PathBuf],
    negatives: &[String],
) -> Result<Vec<String>, DatasetError> {
    let mut labels = std::collections::BTreeSet::new();
    for p in paths {
        labels.extend(label_names(p, negatives)?);
    }
    Ok(labels.into_iter().collect())
}

/// Reads several data sets as one ([`read`] of each): the items of all,
/// sorted by path, and the groups merged by name (a folder `llama/` in two
/// data sets is one group whose count is the sum). One data set is read as
/// [`read`] reads it.
///
/// # Errors
/// As [`read`], for the first data set that fails.
pub fn read_all(
    paths: &[PathBuf],
    known_labels: &[String],
    allow_missing: bool,
) -> Result<Dataset, DatasetError> {
    let mut all = Dataset::default();
    for p in paths {
        let ds = read(p, known_labels, allow_missing)?;
        all.manifest |= ds.manifest;
        all.items.extend(ds.items);
        all.missing.extend(ds.missing);
        for g in ds.groups {
            match all.groups.iter_mut().find(|h| h.name == g.name) {
                Some(h) => h.images += g.images,
                None => all.groups.push(g),
            }
        }
    }
    all.groups.sort_by(|a, b| a.name.cmp(&b.name));
    all.items.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(all)
}

/// Reads a data set (folder layout or manifest CSV, see the module docs).
/// `known_labels` decides which labels are known; every other label is
/// unknown. Items are sorted by path. Manifest paths that do not exist are
/// an error.
///
/// # Errors
/// [`DatasetError`] for a missing or malformed data set.
pub fn load(path: &Path, known_labels: &[String]) -> Result<Vec<Item>, DatasetError> {
    read(path, known_labels, false).map(|d| d.items)
}

/// Reads a data set and how each folder or label was read; with
/// `allow_missing`, manifest paths that do not exist are left out (and
/// listed in [`Dataset::missing`]) instead of failing.
///
/// # Errors
/// [`DatasetError`] for a missing or malformed data set, a `kind=known` row
/// whose label is not a label, or missing paths.
pub fn read(
    path: &Path,
    known_labels: &[String],
    allow_missing: bool,
) -> Result<Dataset, DatasetError> {
    let known = |l: &str| known_labels.iter().any(|k| k == l);
    let mut groups: Vec<Group> = Vec::new();
    let mut ds = if path.is_dir() {
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
            groups.push(Group {
                name: label.clone(),
                category,
                images: files.len(),
                did_you_mean: if category == Category::Unknown {
                    did_you_mean(&label, known_labels)
                } else {
                    Vec::new()
                },
            });
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
        Dataset {
            items,
            groups,
            missing: Vec::new(),
            manifest: false,
        }
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        && path.is_file()
    {
        read_manifest(path, known_labels, allow_missing)?
    } else {
        return Err(DatasetError::NotADataset(path.to_path_buf()));
    };
    ds.items.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(ds)
}

fn read_manifest(
    path: &Path,
    known_labels: &[String],
    allow_missing: bool,
) -> Result<Dataset, DatasetError> {
    let known = |l: &str| known_labels.iter().any(|k| k == l);
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
    let mut missing = Vec::new();
    // (label, category) -> (images, whether the row had no kind)
    let mut groups: std::collections::BTreeMap<(String, Category), (usize, bool)> =
        std::collections::BTreeMap::new();
    // kind=known rows whose label is not a label: label -> (first line, rows)
    let mut bad_known: std::collections::BTreeMap<String, (usize, usize)> =
        std::collections::BTreeMap::new();
    let mut rows = 0;
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| err(e.to_string()))?;
        rows += 1;
        let field = |c: usize| row.get(c).unwrap_or("").trim().to_string();
        let label = field(label_col);
        let rel = field(path_col);
        if rel.is_empty() || label.is_empty() {
            return Err(err(format!("line {}: empty path or label", i + 2)));
        }
        // An explicit kind column wins; without it, the label decides.
        let kind = kind_col.map(field).unwrap_or_default();
        if kind == "known" && !known(&label) {
            bad_known.entry(label.clone()).or_insert((i + 2, 0)).1 += 1;
        }
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
        let full = base.join(&rel);
        if !full.is_file() {
            missing.push(full);
            continue;
        }
        let g = groups
            .entry((label.clone(), category))
            .or_insert((0, false));
        g.0 += 1;
        g.1 |= kind.is_empty();
        let lighting = light_col
            .map(field)
            .unwrap_or_default()
            .split('(')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        items.push(Item {
            path: full,
            label,
            known: is_known,
            split: split_col.map(field).unwrap_or_default(),
            category,
            lighting,
        });
    }
    if !bad_known.is_empty() {
        let list: Vec<String> = bad_known
            .iter()
            .take(5)
            .map(|(l, (line, n))| {
                let dym = did_you_mean(l, known_labels);
                format!(
                    "{l:?} (line {line}{}){}",
                    if *n > 1 {
                        format!(" and {} more rows", n - 1)
                    } else {
                        String::new()
                    },
                    if dym.is_empty() {
                        String::new()
                    } else {
                        format!(": did you mean {}?", quoted(&dym))
                    }
                )
            })
            .collect();
        let labels = if known_labels.len() <= 20 {
            format!("the labels are {}", quoted(known_labels))
        } else {
            "`camtrapd labels` lists them".to_string()
        };
        return Err(err(format!(
            "kind=known, but the label is not a label of the model or a label group: {}{}; write the label as the model or [decision.label_groups] spells it ({labels}), or set kind=unknown",
            list.join("; "),
            if bad_known.len() > 5 {
                format!("; and {} more labels", bad_known.len() - 5)
            } else {
                String::new()
            }
        )));
    }
    if !missing.is_empty() && !allow_missing {
        return Err(DatasetError::Missing {
            manifest: path.to_path_buf(),
            count: missing.len(),
            rows,
            first: missing.iter().take(5).cloned().collect(),
        });
    }
    let groups = groups
        .into_iter()
        .map(|((name, category), (images, no_kind))| Group {
            did_you_mean: if category == Category::Unknown && no_kind {
                did_you_mean(&name, known_labels)
            } else {
                Vec::new()
            },
            name,
            category,
            images,
        })
        .collect();
    Ok(Dataset {
        items,
        groups,
        missing,
        manifest: true,
    })
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

    /// The full zoo12 data set, or `None` (the test is skipped, saying so).
    fn zoo12(needs: &str) -> Option<PathBuf> {
        crate::test_data::full_data(needs).map(|d| d.join("zoo12"))
    }

    #[test]
    fn zoo12_manifest_splits_and_kinds() {
        let Some(zoo12) = zoo12("zoo12/manifest.csv") else {
            return;
        };
        let items = load(&zoo12.join("manifest.csv"), &zoo12_labels()).unwrap();
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
        let Some(zoo12) = zoo12("camera_trap/manifest.csv") else {
            return;
        };
        let p = zoo12.join("../camera_trap/manifest.csv");
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
        let Some(zoo12) = zoo12("the 884 photos of zoo12/known") else {
            return;
        };
        let items = load(
            &zoo12.join("known"),
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
    fn several_data_sets_merge_their_folders_by_name() {
        let t = tempfile::tempdir().unwrap();
        let photos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/photos");
        // The user's photos (2 llama, 1 emu) and a sorted review folder
        // (1 llama, 1 empty frame).
        for (dir, label, src, n) in [
            ("mine", "llama", "llama", 2),
            ("mine", "emu", "emu", 1),
            ("sorted", "llama", "llama", 1),
            ("sorted", "nothing_empty", "nothing", 1),
        ] {
            let d = t.path().join(dir).join(label);
            std::fs::create_dir_all(&d).unwrap();
            let mut files: Vec<PathBuf> = std::fs::read_dir(photos.join(src))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            for f in files.iter().rev().take(n) {
                std::fs::copy(
                    f,
                    d.join(format!(
                        "{dir}-{}",
                        f.file_name().unwrap().to_string_lossy()
                    )),
                )
                .unwrap();
            }
        }
        let paths = [t.path().join("mine"), t.path().join("sorted")];
        let labels = label_names_of(&paths, &[]).unwrap();
        assert_eq!(labels, ["emu", "llama"]);
        let ds = read_all(&paths, &labels, false).unwrap();
        let groups: Vec<(&str, Category, usize)> = ds
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.category, g.images))
            .collect();
        assert_eq!(
            groups,
            [
                ("emu", Category::Known, 1),
                ("llama", Category::Known, 3),
                ("nothing_empty", Category::Empty, 1)
            ]
        );
        assert_eq!(ds.items.len(), 5);
        assert!(!ds.manifest);
        assert!(ds.items.windows(2).all(|w| w[0].path < w[1].path));
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

    #[test]
    fn names_close_to_a_label_and_empty_names() {
        let labels = zoo12_labels();
        assert_eq!(did_you_mean("Elephants", &labels), vec!["elephant"]);
        assert_eq!(did_you_mean("Elephant", &labels), vec!["elephant"]);
        assert_eq!(did_you_mean("rhinoes", &labels), vec!["rhino"]);
        assert_eq!(did_you_mean("lama", &labels), vec!["llama"]);
        assert_eq!(did_you_mean("leoaprd", &labels), vec!["leopard"]);
        assert!(did_you_mean("other_animals", &labels).is_empty());
        assert!(did_you_mean("dalmatian", &labels).is_empty());
        let groups = vec!["African elephant".to_string(), "tusker".to_string()];
        assert_eq!(
            did_you_mean("african_elephants", &groups),
            vec!["African elephant"]
        );
        for n in [
            "nothing",
            "Empty_frames",
            "blank-night",
            "background",
            "none",
        ] {
            assert!(is_empty_name(n), "{n}");
        }
        for n in ["other_animals", "unknown", "nothingness_is_not"] {
            assert_eq!(is_empty_name(n), n.starts_with("nothing"), "{n}");
        }
    }
}
