//! Second opinions for a trained head: does the rest of what the backbone
//! sees agree with the label the head picked?
//!
//! A linear head trained on a few hundred photos is confident far outside
//! them: a cougar photo it never saw scores high for "leopard", a heron for
//! "ibis". Two views of the same backbone that the head throws away catch
//! many of these look-alikes:
//!
//! * **ImageNet agreement.** The backbone still has its own 1000-class
//!   ImageNet output. A label's training photos give a typical ImageNet
//!   profile (the mean of their softmax at temperature `T`); a frame that
//!   the head calls "leopard" but that the backbone sees as a cheetah or a
//!   jaguar has a profile unlike the leopards'. The agreement is the
//!   Bhattacharyya coefficient `BC_l = Σ_c √(p_c · q_lc)` between the
//!   frame's ImageNet softmax `p` and label `l`'s profile `q_l` (1 =
//!   identical, 0 = nothing in common), used as `ln(BC_l + ε)`.
//! * **Nearest photo of the label.** `kNN_l = max_m cos(x, b_m)` over label
//!   `l`'s training embeddings `b_m` (k = 1 nearest neighbour, cosine
//!   similarity of L2-normalised embeddings, in −1..1): how close the frame
//!   is to any photo the label was taught with (Sun et al. 2022, "Out-of-
//!   Distribution Detection with Deep Nearest Neighbors", per label).
//!
//! The bundle's per-label logit combines them with the head's logit `z_l`:
//!
//! `s_l = a · z_l + ln(BC_l + ε) + b · kNN_l + c`
//!
//! and `sigmoid(s_l)` is its 0..1 score; the top label is the highest
//! `s_l`. The weights `a`, `b` and `T` are fixed
//! ([`EvidenceParams::default`]), chosen on the zoo12 species-out and
//! label-out protocols (docs/open-set.md); the offset `c` only moves the
//! scores to read like probabilities. Nothing here needs "nothing"
//! photos: the head uses them, the second opinions only the labels'
//! photos. The whole computation is ONNX nodes appended to the bundle's
//! graph ([`super::export`]), so the daemon runs it unchanged.

use crate::decision::score::softmax_at;

/// `ε` in `ln(BC + ε)`: keeps the log finite when nothing agrees.
pub const BC_EPSILON: f32 = 1e-6;

/// The fixed weights of the combination (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvidenceParams {
    /// `a`: weight of the head's logit.
    pub head_weight: f32,
    /// `b`: weight of the nearest-photo cosine similarity.
    pub knn_weight: f32,
    /// `T`: temperature of the backbone's ImageNet softmax.
    pub temperature: f32,
    /// `c`: offset. `camtrapd train` sets it so that 85% of the labels'
    /// calibration photos score above 0.5 for their own label (scores then
    /// read like probabilities); a constant shift changes no decision.
    pub offset: f32,
}

impl Default for EvidenceParams {
    fn default() -> EvidenceParams {
        EvidenceParams {
            head_weight: 0.125,
            knn_weight: 10.0,
            temperature: 0.5,
            offset: -8.0,
        }
    }
}

/// The fitted second opinions for N labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The weights.
    pub params: EvidenceParams,
    /// Number of labels N.
    pub labels: usize,
    /// Backbone ImageNet classes C.
    pub classes: usize,
    /// `[N, C]` row-major: `√q_l`, the square root of label `l`'s mean
    /// ImageNet softmax (at temperature T) over its training photos.
    pub sqrt_profile: Vec<f32>,
    /// Embedding width D.
    pub dim: usize,
    /// `[M, D]` row-major: the labels' training embeddings, L2-normalised.
    pub bank: Vec<f32>,
    /// `[M]`: the label of each bank row.
    pub bank_labels: Vec<usize>,
}

/// Errors of fitting.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// A label without training photos, or mismatched widths.
    #[error("{0}")]
    Data(String),
}

/// Scales `v` to unit L2 norm in place (a zero vector stays zero).
fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if n > 0.0 {
        for x in v {
            *x = (f64::from(*x) / n) as f32;
        }
    }
}

impl Evidence {
    /// Fits the profiles and the bank from the labels' training photos:
    /// `photos` yields (label index, embedding `[D]`, backbone ImageNet
    /// logits `[C]`) for every labelled training photo.
    ///
    /// # Errors
    /// [`EvidenceError::Data`] when a label has no photo or widths differ.
    pub fn fit<'a>(
        labels: usize,
        params: EvidenceParams,
        photos: impl Iterator<Item = (usize, &'a [f32], &'a [f32])>,
    ) -> Result<Evidence, EvidenceError> {
        let (mut dim, mut classes) = (0, 0);
        let mut sums: Vec<Vec<f64>> = vec![Vec::new(); labels];
        let mut counts = vec![0usize; labels];
        let (mut bank, mut bank_labels) = (Vec::new(), Vec::new());
        let mut p = Vec::new();
        for (l, emb, logits) in photos {
            if dim == 0 {
                (dim, classes) = (emb.len(), logits.len());
            }
            if emb.len() != dim || logits.len() != classes || l >= labels {
                return Err(EvidenceError::Data(format!(
                    "a photo's embedding is {} wide and its ImageNet logits {} (expected {dim} and {classes}), label #{l} of {labels}",
                    emb.len(),
                    logits.len()
                )));
            }
            softmax_at(logits, params.temperature, &mut p);
            let s = &mut sums[l];
            if s.is_empty() {
                s.resize(classes, 0.0);
            }
            for (a, &v) in s.iter_mut().zip(&p) {
                *a += f64::from(v);
            }
            counts[l] += 1;
            let start = bank.len();
            bank.extend_from_slice(emb);
            normalise(&mut bank[start..]);
            bank_labels.push(l);
        }
        if let Some(l) = counts.iter().position(|&c| c == 0) {
            return Err(EvidenceError::Data(format!(
                "label #{l} has no training photo for its ImageNet profile and nearest-photo bank"
            )));
        }
        let mut sqrt_profile = Vec::with_capacity(labels * classes);
        for (s, &n) in sums.iter().zip(&counts) {
            sqrt_profile.extend(s.iter().map(|v| (v / n as f64).sqrt() as f32));
        }
        Ok(Evidence {
            params,
            labels,
            classes,
            sqrt_profile,
            dim,
            bank,
            bank_labels,
        })
    }

    /// The combined per-label logits `s` `[N]` for one frame: the head's
    /// logits `z` `[N]` (only the first N are used), its embedding `[D]` and
    /// the backbone's ImageNet logits `[C]`, accumulated in f64 (see the
    /// module docs). `out` is overwritten.
    pub fn combine(&self, z: &[f32], embedding: &[f32], imagenet: &[f32], out: &mut Vec<f32>) {
        let pr = &self.params;
        let mut p = Vec::with_capacity(self.classes);
        softmax_at(imagenet, pr.temperature, &mut p);
        let sqrt_p: Vec<f64> = p.iter().map(|v| f64::from(*v).sqrt()).collect();
        let mut x: Vec<f32> = embedding.to_vec();
        normalise(&mut x);
        let mut best = vec![f64::NEG_INFINITY; self.labels];
        for (row, &l) in self
            .bank
            .chunks_exact(self.dim.max(1))
            .zip(&self.bank_labels)
        {
            let cos: f64 = row
                .iter()
                .zip(&x)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            if cos > best[l] {
                best[l] = cos;
            }
        }
        out.clear();
        for (l, (q, near)) in self
            .sqrt_profile
            .chunks_exact(self.classes.max(1))
            .zip(&best)
            .enumerate()
        {
            let bc: f64 = q.iter().zip(&sqrt_p).map(|(a, b)| f64::from(*a) * b).sum();
            let s = f64::from(pr.head_weight) * f64::from(z.get(l).copied().unwrap_or(0.0))
                + (bc + f64::from(BC_EPSILON)).ln()
                + f64::from(pr.knn_weight) * near
                + f64::from(pr.offset);
            out.push(s as f32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_follows_the_definition() {
        // Two labels, 3 ImageNet classes, 2-d embeddings.
        let params = EvidenceParams {
            head_weight: 0.5,
            knn_weight: 2.0,
            temperature: 1.0,
            offset: -1.0,
        };
        let photos: Vec<(usize, Vec<f32>, Vec<f32>)> = vec![
            (0, vec![1.0, 0.0], vec![10.0, 0.0, 0.0]),
            (0, vec![2.0, 2.0], vec![0.0, 10.0, 0.0]),
            (1, vec![0.0, 3.0], vec![0.0, 0.0, 10.0]),
        ];
        let e = Evidence::fit(
            2,
            params,
            photos
                .iter()
                .map(|(l, a, b)| (*l, a.as_slice(), b.as_slice())),
        )
        .unwrap();
        assert_eq!(e.bank_labels, vec![0, 0, 1]);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((e.bank[2] - h).abs() < 1e-6 && (e.bank[3] - h).abs() < 1e-6);
        // A frame that the backbone sees exactly as class 0, embedded along x.
        let mut out = Vec::new();
        e.combine(&[2.0, -2.0], &[5.0, 0.0], &[100.0, 0.0, 0.0], &mut out);
        let sm = |z: &[f64]| -> Vec<f64> {
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
            let t: f64 = e.iter().sum();
            e.into_iter().map(|v| v / t).collect()
        };
        let (a, b, c) = (
            sm(&[10.0, 0.0, 0.0]),
            sm(&[0.0, 10.0, 0.0]),
            sm(&[0.0, 0.0, 10.0]),
        );
        let p = sm(&[100.0, 0.0, 0.0]);
        let bc = |q: &[f64]| -> f64 { p.iter().zip(q).map(|(p, q)| (p * q).sqrt()).sum() };
        let q0: Vec<f64> = a.iter().zip(&b).map(|(a, b)| (a + b) / 2.0).collect();
        // Label 0: nearest photo is (1, 0): cos 1. Label 1: (0, 1): cos 0.
        let want0 = 0.5 * 2.0 + (bc(&q0) + 1e-6).ln() + 2.0 * 1.0 - 1.0;
        let want1 = 0.5 * -2.0 + (bc(&c) + 1e-6).ln() + 2.0 * 0.0 - 1.0;
        assert!(
            (f64::from(out[0]) - want0).abs() < 1e-4,
            "{out:?} vs {want0}"
        );
        assert!(
            (f64::from(out[1]) - want1).abs() < 1e-3,
            "{out:?} vs {want1}"
        );
        assert!(Evidence::fit(
            3,
            params,
            photos
                .iter()
                .map(|(l, a, b)| (*l, a.as_slice(), b.as_slice()))
        )
        .is_err());
    }
}
