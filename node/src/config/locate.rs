//! Where things are in the config file: key paths such as `instance[1].vrid`, the
//! byte span a path points at in the spanned TOML document, the path a byte span
//! falls in, and byte offset to `line:column`.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted key path into the document, printed as `instance[1].vips[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Seg>);

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// This path extended by a table key.
    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        KeyPath(segs)
    }

    /// This path extended by an array index.
    pub fn idx(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// True if `prefix` is this path or one of its ancestors.
    pub fn starts_with(&self, prefix: &KeyPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    pub fn segs(&self) -> &[Seg] {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The parsed document with every key and value's byte span, kept beside the typed
/// config so that validation can point at the text.
pub struct Document<'i> {
    root: Spanned<DeValue<'i>>,
}

impl<'i> Document<'i> {
    pub fn new(table: Spanned<DeTable<'i>>) -> Self {
        let span = table.span();
        Document {
            root: Spanned::new(span, DeValue::Table(table.into_inner())),
        }
    }

    /// The span of the value at `path`, or, when the file leaves it out (a default),
    /// of the nearest enclosing table or array that is written, so that every
    /// diagnostic has a real place. For a table opened by a `[header]` that is the
    /// header; for the root it is the start of the file.
    pub fn span_of(&self, path: &KeyPath) -> Range<usize> {
        let mut here = &self.root;
        for seg in path.segs() {
            match step(here, seg) {
                Some(next) => here = next,
                None => break,
            }
        }
        here.span()
    }

    /// The deepest key path whose key or value covers `span` (used to name the key
    /// behind an error the toml crate reports with only a span).
    pub fn path_at(&self, span: &Range<usize>) -> KeyPath {
        search(&self.root, span, KeyPath::root()).unwrap_or_default()
    }
}

fn step<'a, 'i>(value: &'a Spanned<DeValue<'i>>, seg: &Seg) -> Option<&'a Spanned<DeValue<'i>>> {
    match (value.get_ref(), seg) {
        (DeValue::Table(t), Seg::Key(k)) => t.get(k.as_str()),
        (DeValue::Array(a), Seg::Index(i)) => a.get(*i),
        _ => None,
    }
}

fn covers(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start < outer.end && outer.start <= inner.start && inner.end <= outer.end
}

/// Children first, so the deepest match wins. Tables opened by a header have the
/// header as their span, not their body, so every child is visited rather than only
/// those whose parent's span covers the target.
fn search(value: &Spanned<DeValue<'_>>, span: &Range<usize>, path: KeyPath) -> Option<KeyPath> {
    match value.get_ref() {
        DeValue::Table(t) => {
            for (k, v) in t.iter() {
                let here = path.key(k.get_ref());
                if let Some(found) = search(v, span, here.clone()) {
                    return Some(found);
                }
                if covers(&k.span(), span) {
                    return Some(here);
                }
            }
        }
        DeValue::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                if let Some(found) = search(v, span, path.idx(i)) {
                    return Some(found);
                }
            }
        }
        _ => {}
    }
    covers(&value.span(), span).then_some(path)
}

/// Byte offset to 1-based line and column; columns count characters, as editors do.
pub struct LineIndex<'i> {
    text: &'i str,
    starts: Vec<usize>,
}

impl<'i> LineIndex<'i> {
    pub fn new(text: &'i str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = match self.text.get(start..offset) {
            Some(prefix) => prefix.chars().count(),
            // Not on a character boundary (should not happen): count bytes instead.
            None => offset - start,
        };
        (line, column + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "node = \"x\"\n\n[[instance]]\nname = \"a\"\nvrid = 5\n\n[[instance]]\nname = \"b\"\nvips = [\"10.0.0.3/24\", \"10.0.0.4/24\"]\n[arbiter]\nquorum = 1\n";

    fn doc() -> Document<'static> {
        Document::new(DeTable::parse(TEXT).unwrap())
    }

    fn at(span: Range<usize>) -> (usize, usize) {
        LineIndex::new(TEXT).line_col(span.start)
    }

    #[test]
    fn paths_print_like_toml_keys() {
        let p = KeyPath::root().key("instance").idx(1).key("vips").idx(0);
        assert_eq!(p.to_string(), "instance[1].vips[0]");
        assert_eq!(KeyPath::root().key("a b").to_string(), "\"a b\"");
    }

    #[test]
    fn spans_point_at_values_or_the_enclosing_header() {
        let d = doc();
        let inst = KeyPath::root().key("instance");
        assert_eq!(at(d.span_of(&inst.idx(0).key("vrid"))), (5, 8));
        assert_eq!(at(d.span_of(&inst.idx(1).key("vips").idx(1))), (9, 24));
        // Missing key: the `[[instance]]` header of that element.
        assert_eq!(at(d.span_of(&inst.idx(1).key("vrid"))), (7, 1));
        assert_eq!(
            at(d.span_of(&KeyPath::root().key("arbiter").key("peers"))),
            (10, 1)
        );
        // Missing top-level key: start of file.
        assert_eq!(at(d.span_of(&KeyPath::root().key("state_dir"))), (1, 1));
    }

    #[test]
    fn span_to_path_finds_the_deepest_key() {
        let d = doc();
        let vrid_value = d.span_of(&KeyPath::root().key("instance").idx(0).key("vrid"));
        assert_eq!(d.path_at(&vrid_value).to_string(), "instance[0].vrid");
        let q = TEXT.find("quorum").unwrap();
        assert_eq!(d.path_at(&(q..q + 6)).to_string(), "arbiter.quorum");
    }

    #[test]
    fn columns_count_characters() {
        let idx = LineIndex::new("a\nµµx\n");
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(2), (2, 1));
        assert_eq!(idx.line_col(6), (2, 3));
        assert_eq!(idx.line_col(100), (3, 1));
    }
}
