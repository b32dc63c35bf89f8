//! Training a head on the device (`camtrapd train`): the user's folders of
//! labelled images and of "nothing" images (empty habitat, other animals)
//! become a new model bundle that knows what to ignore.
//!
//! source (a data set: folders or a manifest, read by
//! [`crate::eval::dataset`]) → embeddings (the backbone's `embedding`
//! output, cached by content hash in [`crate::eval::outputs`]) → [`head`]
//! (a linear head trained with the sigmoid, softmax-nothing or entropic
//! loss) → [`export`] (one ONNX graph = backbone + head) → a bundle that
//! `calibrate` and `eval` then finish and measure.
//!
//! This module holds the data plumbing: which images train, which are held
//! out for early stopping, and the split manifest written for data sets
//! without a `split` column.

pub mod evidence;
pub mod export;
pub mod folds;
pub mod head;

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::eval::dataset::{Category, Item};

pub use head::{Examples, Head, Loss, TrainConfig, TrainReport};

/// A group of items for stratified splitting: a label, or the negatives.
fn group_key(item: &Item) -> String {
    match item.category {
        Category::Known => format!("known/{}", item.label),
        _ => format!("negative/{}", item.label),
    }
}

/// Groups item indices by [`group_key`], in name order, each in item order.
fn groups<'a>(items: impl Iterator<Item = (usize, &'a Item)>) -> Vec<Vec<usize>> {
    let mut map: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, item) in items {
        map.entry(group_key(item)).or_default().push(i);
    }
    map.into_values().collect()
}

/// Gives every item a split (`train`, `calib`, `test`) for a data set
/// without a `split` column: per label folder (and per negative folder), a
/// seeded shuffle, then `calib` and `test` shares of it (rounded, at least
/// one image each when the folder has three or more), the rest `train`.
pub fn assign_splits(items: &mut [Item], seed: u64, calib: f64, test: f64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for mut g in groups(items.iter().enumerate()) {
        rng.shuffle(&mut g);
        let n = g.len();
        let take = |share: f64| -> usize {
            let k = (share * n as f64).round() as usize;
            if n >= 3 {
                k.max(1)
            } else {
                k
            }
        };
        let (nc, nt) = (take(calib), take(test));
        for (j, &i) in g.iter().enumerate() {
            items[i].split = if j < nc {
                "calib"
            } else if j < nc + nt {
                "test"
            } else {
                "train"
            }
            .to_string();
        }
    }
}

/// Splits training items into those that train and those held out for
/// early stopping: per label (and per negative folder) a seeded shuffle,
/// `fraction` of it held out (rounded; at least one when the group has
/// four or more images). Returns (train, held out) indices into `items`,
/// each sorted.
pub fn hold_out(items: &[&Item], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x005e_ed0f_ea51);
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for mut g in groups(items.iter().copied().enumerate()) {
        rng.shuffle(&mut g);
        let n = g.len();
        let mut k = (fraction * n as f64).round() as usize;
        if n >= 4 && fraction > 0.0 {
            k = k.max(1);
        }
        held.extend_from_slice(&g[..k.min(n)]);
        train.extend_from_slice(&g[k.min(n)..]);
    }
    train.sort_unstable();
    held.sort_unstable();
    (train, held)
}

/// Writes a manifest CSV (`path,label,kind,split`, absolute paths) of
/// `items`, so that `calibrate` and `eval` see the same splits as training;
/// returns its hex SHA-256.
///
/// # Errors
/// The I/O or CSV error.
pub fn write_split_manifest(path: &Path, items: &[Item]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(["path", "label", "kind", "split"])?;
    for i in items {
        let full = std::path::absolute(&i.path)?;
        let kind = match i.category {
            Category::Known => "known",
            Category::Empty => "nothing",
            Category::Unknown => "unknown",
        };
        w.write_record([
            full.to_string_lossy().as_ref(),
            i.label.as_str(),
            kind,
            i.split.as_str(),
        ])?;
    }
    w.flush()?;
    drop(w);
    Ok(sha256_hex(&std::fs::read(path)?))
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(label: &str, category: Category, n: usize) -> Item {
        Item {
            path: format!("/x/{label}/{n}.jpg").into(),
            label: label.into(),
            known: category == Category::Known,
            split: String::new(),
            category,
            lighting: String::new(),
        }
    }

    #[test]
    fn splits_are_stratified_and_seeded() {
        let mut items: Vec<Item> = (0..20)
            .map(|n| item("elephant", Category::Known, n))
            .chain((0..40).map(|n| item("nothing", Category::Empty, n)))
            .collect();
        assign_splits(&mut items, 1, 0.15, 0.15);
        let count = |label: &str, split: &str| {
            items
                .iter()
                .filter(|i| i.label == label && i.split == split)
                .count()
        };
        assert_eq!(
            (
                count("elephant", "calib"),
                count("elephant", "test"),
                count("elephant", "train")
            ),
            (3, 3, 14)
        );
        assert_eq!(
            (
                count("nothing", "calib"),
                count("nothing", "test"),
                count("nothing", "train")
            ),
            (6, 6, 28)
        );
        let mut again = items.clone();
        assign_splits(&mut again, 1, 0.15, 0.15);
        assert_eq!(items, again);
        assign_splits(&mut again, 2, 0.15, 0.15);
        assert_ne!(items, again);

        let refs: Vec<&Item> = items.iter().filter(|i| i.split == "train").collect();
        let (t, h) = hold_out(&refs, 0.15, 1);
        assert_eq!((t.len(), h.len()), (42 - 2 - 4, 2 + 4));
        assert!(h.iter().all(|i| !t.contains(i)));
        assert_eq!(hold_out(&refs, 0.15, 1), (t, h));
    }
}
