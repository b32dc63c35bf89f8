//! Small text helpers for error messages: byte offsets to line/column, and
//! "did you mean" suggestions.

/// 1-based (line, column) of byte offset `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// Up to `n` candidates that look like `wanted` (case-insensitive: the
/// candidate contains it, they share a whole word, or a word is spelt alike
/// by Jaro-Winkler similarity), for "did you mean" hints.
pub(crate) fn suggestions<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<&'a str> {
    let w = wanted.trim().to_lowercase();
    if w.is_empty() {
        return Vec::new();
    }
    let words: Vec<&str> = w.split_whitespace().collect();
    // Spelling slips ("elefant") are close in Jaro-Winkler similarity to a label or one of its words.
    let close =
        |a: &str, b: &str| a.len() >= 4 && b.len() >= 4 && strsim::jaro_winkler(a, b) >= 0.88;
    let mut out = Vec::new();
    for c in candidates {
        let l = c.to_lowercase();
        // The candidate contains what was typed, shares a whole word with it, or is spelt alike.
        if l.contains(&w)
            || l.split_whitespace().any(|p| words.contains(&p))
            || close(&l, &w)
            || l.split_whitespace()
                .any(|p| words.iter().any(|q| close(p, q)))
        {
            out.push(c);
            if out.len() == n {
                break;
            }
        }
    }
    out
}

/// `v` with 3 significant digits (`0.00398`, `0.500`, `-0.956`, `12.3`),
/// so that small thresholds do not print as `0.00`.
pub(crate) fn sig3(v: f32) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = f64::from(v).abs().log10().floor() as i32;
    let decimals = usize::try_from(2 - magnitude).unwrap_or(0);
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_significant_digits() {
        assert_eq!(sig3(0.003_981), "0.00398");
        assert_eq!(sig3(0.5), "0.500");
        assert_eq!(sig3(-0.956_4), "-0.956");
        assert_eq!(sig3(12.34), "12.3");
        assert_eq!(sig3(1234.0), "1234");
        assert_eq!(sig3(0.0), "0");
    }

    #[test]
    fn line_col_counts_from_one() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 11), (2, 6));
        // Columns count characters, not bytes; an offset inside a character rounds down.
        let u = "ä = \"ü\"\nx";
        assert_eq!(line_col(u, 5), (1, 5));
        assert_eq!(line_col(u, 1), (1, 1));
        assert_eq!(line_col(u, 10), (2, 1));
    }

    #[test]
    fn suggestions_find_substrings() {
        let labels = ["African elephant", "Indian elephant", "tusker", "zebra"];
        assert_eq!(
            suggestions("elephant", labels, 5),
            vec!["African elephant", "Indian elephant"]
        );
        assert_eq!(suggestions("Zebra", labels, 5), vec!["zebra"]);
        assert!(suggestions("giraffe", labels, 5).is_empty());
        assert_eq!(
            suggestions("elefant", labels, 5),
            vec!["African elephant", "Indian elephant"]
        );
        assert!(suggestions(" ", labels, 5).is_empty());
    }
}
