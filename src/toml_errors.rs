//! TOML deserialisation whose errors name the field by its dotted path
//! (`source.fps`, `sinks[0].pretty`) and point at its line and column, also
//! inside internally tagged tables (`kind = "..."`), where serde buffers the
//! table and toml's own position would only point at the table header.

/// A TOML document that failed to deserialise: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TomlError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the offending field (`source.fps`), empty for syntax errors.
    pub field: String,
    /// What is wrong, with what is allowed where serde says so.
    pub message: String,
}

impl std::fmt::Display for TomlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        } else {
            write!(
                f,
                "line {}, column {}: `{}`: {}",
                self.line, self.column, self.field, self.message
            )
        }
    }
}

/// Deserialises TOML, reporting the dotted path of the failing field and its
/// line/column even inside internally tagged enums (where serde buffers the
/// table and toml's own span would only point at the table header).
pub(crate) fn toml_from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    toml_from_str_tagged(text, &|_, _, _| None)
}

/// Checks one variant table of an internally tagged enum (`kind = "..."`):
/// given the path of the table, its `kind` and a deserializer for the table
/// without `kind`, deserialises the variant's config type, or returns `None`
/// for an unknown path or kind.
pub(crate) type VariantCheck<'a> = dyn Fn(
        &str,
        &str,
        toml::de::ValueDeserializer<'_>,
    ) -> Option<Result<(), serde_path_to_error::Error<toml::de::Error>>>
    + 'a;

/// As [`toml_from_str`]; when the failing field is a table of an internally
/// tagged enum, `check` re-deserialises that table's variant to find the
/// field inside it (serde buffers such tables and loses their positions).
pub(crate) fn toml_from_str_tagged<T: serde::de::DeserializeOwned>(
    text: &str,
    check: &VariantCheck<'_>,
) -> Result<T, TomlError> {
    let at = |span: Option<std::ops::Range<usize>>| {
        span.map_or((1, 1), |s| crate::text::line_col(text, s.start))
    };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        let (line, column) = at(e.span());
        let mut message = e.message().trim().to_string();
        if message == "duplicate key" {
            if let Some(key) = e.span().and_then(|s| text.get(s)) {
                message = format!(
                    "duplicate key `{}`: a key may appear once per table; delete one of them",
                    key.trim()
                );
            }
        }
        TomlError {
            line,
            column,
            field: String::new(),
            message,
        }
    })?;
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let path: Vec<String> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } if !key.starts_with("$__serde") => {
                    Some(key.clone())
                }
                serde_path_to_error::Segment::Seq { index } => Some(format!("[{index}]")),
                _ => None,
            })
            .collect();
        let (path, inner) = match variant_error(text, path.clone(), check) {
            Some(found) => found,
            None => (path, e.into_inner()),
        };
        let message = did_you_mean(&plain_types(inner.message().trim()));
        // An unknown field's path ends at the unknown key itself: point at the key.
        let span =
            span_of(text, &path, message.starts_with("unknown field")).or_else(|| inner.span());
        let (line, column) = at(span);
        let field = path.iter().fold(String::new(), |mut acc, p| {
            if !acc.is_empty() && !p.starts_with('[') {
                acc.push('.');
            }
            acc.push_str(p);
            acc
        });
        TomlError {
            line,
            column,
            field,
            message,
        }
    })
}

/// Byte span of the value (or key) at `path` in a TOML document.
fn span_of(text: &str, path: &[String], key: bool) -> Option<std::ops::Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    // The table the next key is looked up in (None after a scalar or array).
    let mut table = Some(doc.get_ref());
    let mut span = None;
    let mut value: Option<&toml::Spanned<DeValue<'_>>> = None;
    for seg in path {
        if let Some(idx) = seg.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            let i: usize = idx.parse().ok()?;
            let DeValue::Array(a) = value?.get_ref() else {
                return None;
            };
            let v = a.get(i)?;
            span = Some(v.span());
            value = Some(v);
            table = match v.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
            continue;
        }
        let (k, v) = table?.iter().find(|(k, _)| k.get_ref() == seg)?;
        // Point at the value for scalars, at the key for tables.
        span = Some(if key || matches!(v.get_ref(), DeValue::Table(_)) {
            k.span()
        } else {
            v.span()
        });
        value = Some(v);
        table = match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    span
}

/// For an error at `path` naming a table with a `kind` key, runs `check` on
/// that table to get the error's path inside it.
fn variant_error(
    text: &str,
    path: Vec<String>,
    check: &VariantCheck<'_>,
) -> Option<(Vec<String>, toml::de::Error)> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut value: Option<toml::Spanned<DeValue<'_>>> = None;
    let mut table = doc.into_inner();
    for seg in &path {
        let v = if let Some(idx) = seg.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            let i: usize = idx.parse().ok()?;
            match value?.into_inner() {
                DeValue::Array(a) => a.into_iter().nth(i)?,
                _ => return None,
            }
        } else {
            let key = table.keys().find(|k| k.get_ref() == seg)?.clone();
            table.remove(&key)?
        };
        if let DeValue::Table(t) = v.get_ref() {
            table = t.clone();
        }
        value = Some(v);
    }
    let v = value?;
    let span = v.span();
    let DeValue::Table(mut t) = v.into_inner() else {
        return None;
    };
    let kind_key = t.keys().find(|k| k.get_ref() == "kind")?.clone();
    let kind = match t.remove(&kind_key)?.into_inner() {
        DeValue::String(s) => s.into_owned(),
        _ => return None,
    };
    let root = path.iter().find(|p| !p.starts_with('['))?.clone();
    let de = toml::de::ValueDeserializer::from(toml::Spanned::new(span, DeValue::Table(t)));
    let e = check(&root, &kind, de)?.err()?;
    let mut full = path;
    full.extend(e.path().iter().filter_map(|s| match s {
        serde_path_to_error::Segment::Map { key } if !key.starts_with("$__serde") => {
            Some(key.clone())
        }
        serde_path_to_error::Segment::Seq { index } => Some(format!("[{index}]")),
        _ => None,
    }));
    Some((full, e.into_inner()))
}

/// 1-based (line, column) of the value at a dotted `field` path (e.g.
/// `decision.top_k`, `sinks[0].kind`) in a TOML document, if it is there.
pub(crate) fn position(text: &str, field: &str) -> Option<(usize, usize)> {
    let mut path = Vec::new();
    for part in field.split('.') {
        match part.find('[') {
            Some(i) => {
                path.push(part[..i].to_string());
                path.push(part[i..].to_string());
            }
            None => path.push(part.to_string()),
        }
    }
    span_of(text, &path, false).map(|s| crate::text::line_col(text, s.start))
}

/// Rewrites serde's Rust type names in "expected ..." messages into what a
/// TOML writer types, e.g. "expected u16" → "expected a whole number from 0
/// to 65535 (no quotes)".
fn plain_types(message: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        (
            "expected u8",
            "expected a whole number from 0 to 255 (no quotes)",
        ),
        (
            "expected u16",
            "expected a whole number from 0 to 65535 (no quotes)",
        ),
        (
            "expected u32",
            "expected a whole number, 0 or more (no quotes)",
        ),
        (
            "expected u64",
            "expected a whole number, 0 or more (no quotes)",
        ),
        (
            "expected usize",
            "expected a whole number, 0 or more (no quotes)",
        ),
        ("expected i64", "expected a whole number (no quotes)"),
        ("expected f32", "expected a number such as 1.0 (no quotes)"),
        ("expected f64", "expected a number such as 1.0 (no quotes)"),
        ("expected a boolean", "expected true or false (no quotes)"),
        (
            "expected a sequence",
            "expected a list such as [\"a\", \"b\"]",
        ),
        ("expected a string", "expected a string in double quotes"),
    ];
    for (rust, plain) in NAMES {
        if let Some(head) = message.strip_suffix(rust) {
            return format!("{head}{plain}");
        }
    }
    message.to_string()
}

/// Adds "did you mean `host`?" to serde's "unknown field `hots`, expected
/// one of `host`, ..." (and "unknown variant") when one allowed name is
/// spelt alike (Jaro-Winkler similarity ≥ 0.8).
fn did_you_mean(message: &str) -> String {
    let quoted = |s: &str| -> Vec<String> {
        s.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let Some(rest) = message
        .strip_prefix("unknown field ")
        .or_else(|| message.strip_prefix("unknown variant "))
    else {
        return message.to_string();
    };
    let Some((got, allowed)) = rest.split_once(", expected") else {
        return message.to_string();
    };
    let Some(got) = quoted(got).into_iter().next() else {
        return message.to_string();
    };
    let best = quoted(allowed)
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&got.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(s, _)| *s >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, c)) => format!("{message}; did you mean `{c}`?"),
        None => message.to_string(),
    }
}
