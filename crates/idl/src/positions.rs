//! Where types and fields are declared in `.avdl` text.
//!
//! The IDL compiler returns JSON without source spans, so this index finds
//! declarations by scanning the text: `record Name` (also `enum`, `fixed`,
//! `error`) starts a type, and inside its braces a field is its name followed
//! by `=` or `;`. Comments and string literals are blanked out first so names
//! in docs and annotations (CEL expressions, patterns) are not mistaken for
//! declarations.

use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;

/// A place in a source file; line and column are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Declarations found, keyed `Type` or `Type.field` (short names).
#[derive(Debug, Clone, Default)]
pub struct Index {
    entries: Vec<(String, Position)>,
}

impl Index {
    pub fn find(&self, location: &str) -> Option<&Position> {
        self.entries.iter().find(|(k, _)| k == location).map(|(_, p)| p)
    }

    pub(crate) fn index_file(&mut self, file: &Path, text: &str) {
        let blank = blank_comments_and_strings(text);
        let type_re = Regex::new(r"\b(record|error|enum|fixed)\s+([A-Za-z_][A-Za-z0-9_]*)").expect("static regex");
        let field_re = Regex::new(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=|;)").expect("static regex");
        for cap in type_re.captures_iter(&blank) {
            let (Some(kind), Some(name)) = (cap.get(1), cap.get(2)) else {
                continue;
            };
            self.entries
                .push((name.as_str().to_string(), position(file, text, name.start())));
            if kind.as_str() != "record" && kind.as_str() != "error" {
                continue;
            }
            let Some(open) = blank[name.end()..].find('{').map(|i| i + name.end()) else {
                continue;
            };
            let close = matching_brace(&blank, open).unwrap_or(blank.len());
            let body = &blank[open + 1..close];
            let mut depth = 0i32;
            let mut last = 0;
            for m in field_re.captures_iter(body) {
                let Some(ident) = m.get(1) else { continue };
                // Skip anything inside nested braces or parentheses (union {..}, @prop(..)).
                depth += nesting(&body[last..ident.start()]);
                last = ident.start();
                let prev = body[..ident.start()].chars().next_back();
                if depth == 0 && prev != Some('.') {
                    let key = format!("{}.{}", name.as_str(), ident.as_str());
                    if self.find(&key).is_none() {
                        self.entries.push((key, position(file, text, open + 1 + ident.start())));
                    }
                }
            }
        }
    }
}

fn nesting(s: &str) -> i32 {
    s.chars()
        .map(|c| match c {
            '{' | '(' | '[' => 1,
            '}' | ')' | ']' => -1,
            _ => 0,
        })
        .sum()
}

fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in s[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

fn position(file: &Path, text: &str, offset: usize) -> Position {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |i| before[i + 1..].chars().count())
        + 1;
    Position {
        file: file.to_path_buf(),
        line,
        column,
    }
}

/// Replaces comments and string literals with spaces, keeping byte offsets
/// and newlines.
fn blank_comments_and_strings(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let end = if rest.starts_with(b"//") {
            rest.iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| i + p)
        } else if rest.starts_with(b"/*") {
            rest[2..]
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(bytes.len(), |p| i + 2 + p + 2)
        } else if rest[0] == b'"' || rest[0] == b'`' {
            let quote = rest[0];
            let mut j = 1;
            while j < rest.len() && rest[j] != quote {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            (i + j + 1).min(bytes.len())
        } else {
            i += 1;
            continue;
        };
        for b in &mut out[i..end] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
        i = end;
    }
    // Only ASCII bytes were replaced by ASCII spaces inside whole tokens, but a
    // multi-byte character in a comment is blanked byte by byte: still valid.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_types_and_fields_but_not_names_in_strings() {
        let text = "protocol P {\n  /** record Fake */\n  @rules([{\"expr\": \"message.a == 1;\"}])\n  record R {\n    union { null, int } @range({\"min\": 0}) a = null;\n    string b;\n  }\n}\n";
        let mut idx = Index::default();
        idx.index_file(Path::new("p.avdl"), text);
        assert_eq!(idx.find("R").map(|p| (p.line, p.column)), Some((4, 10)));
        assert_eq!(idx.find("R.a").map(|p| (p.line, p.column)), Some((5, 44)));
        assert_eq!(idx.find("R.b").map(|p| (p.line, p.column)), Some((6, 12)));
        assert!(idx.find("Fake").is_none());
    }
}
