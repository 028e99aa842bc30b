//! YAML text → `serde_json::Value` plus an index of where every node was written.
//!
//! serde-saphyr gives the value (and refuses duplicate keys, with a line); granit-parser, the
//! parser serde-saphyr itself runs on, replays the same text's events so each JSON pointer maps
//! to a `(line, column)`. Schema errors come back as JSON pointers; the index turns them into
//! `file:line:column`.

use std::collections::HashMap;

use granit_parser::{Event, Parser};
use serde_json::Value;

/// A YAML problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct YamlError {
    /// 1-based; 0 when unknown.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
    pub message: String,
}

/// JSON pointer → 1-based `(line, column)` of the node (for a mapping entry, of its key, which is
/// where a reader looks for a field).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PositionIndex {
    map: HashMap<String, (usize, usize)>,
}

impl PositionIndex {
    /// Position of the node at `pointer`, or of its nearest ancestor written in the file.
    pub fn locate(&self, pointer: &str) -> (usize, usize) {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.map.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return (1, 1),
            }
        }
    }

    /// Exact lookup, no fallback to an ancestor.
    pub fn get(&self, pointer: &str) -> Option<(usize, usize)> {
        self.map.get(pointer).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Escapes one JSON pointer token (RFC 6901).
pub(crate) fn escape_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// `/http/bodyTemplate/0/x` → `http.bodyTemplate[0].x`: what a reader of the file calls a field.
pub(crate) fn pointer_to_field(pointer: &str) -> String {
    let mut out = String::new();
    for tok in pointer.split('/').skip(1) {
        let tok = tok.replace("~1", "/").replace("~0", "~");
        if !tok.is_empty() && tok.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&tok);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&tok);
        }
    }
    out
}

/// Parses one YAML document. An empty document (nothing but comments) is `Value::Null`.
pub fn parse(text: &str) -> Result<(Value, PositionIndex), YamlError> {
    let index = index_positions(text)?;
    if index.is_empty() {
        return Ok((Value::Null, index));
    }
    let value: Value = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((0, 0));
        YamlError {
            line,
            column,
            message: first_line(&e.to_string()),
        }
    })?;
    Ok((value, index))
}

/// [`parse`] without the position index, for text whose errors are placed otherwise (a
/// rendered spec names the template): building the index cost as much as the parse itself.
/// Anything unusual (an error, a second document marker) goes through [`parse`], so the
/// result and the error are the same.
pub fn parse_value(text: &str) -> Result<Value, YamlError> {
    if !text.contains("---") {
        if let Ok(v) = serde_saphyr::from_str::<Value>(text) {
            return Ok(v);
        }
    }
    parse(text).map(|(v, _)| v)
}

/// serde-saphyr renders a snippet after the message; the first line is the message itself.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("invalid YAML").trim();
    // Drop a trailing " at line X, column Y": the diagnostic prints the position itself.
    match line.find(" at line ") {
        Some(i) => line[..i].to_string(),
        None => line.to_string(),
    }
}

enum Frame {
    Map {
        pointer: String,
        key: Option<String>,
    },
    Seq {
        pointer: String,
        next: usize,
    },
}

/// Replays the parser's events, tracking the JSON pointer of each node.
fn index_positions(text: &str) -> Result<PositionIndex, YamlError> {
    let mut index = PositionIndex::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut documents = 0usize;
    for ev in Parser::new_from_str(text) {
        let (event, span) = ev.map_err(|e| YamlError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        let pos = (span.start.line(), span.start.col() + 1);
        match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError {
                        line: pos.0,
                        column: pos.1,
                        message: "more than one YAML document in the file; write one".into(),
                    });
                }
            }
            Event::Scalar(s, ..) => {
                if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                    if key.is_none() {
                        *key = Some(s.into_owned());
                        record_key(&stack, pos, &mut index);
                        continue;
                    }
                }
                let _ = node_pointer(&mut stack, pos, &mut index);
            }
            Event::Alias(..) => {
                let _ = node_pointer(&mut stack, pos, &mut index);
            }
            Event::MappingStart(..) => {
                let p = node_pointer(&mut stack, pos, &mut index);
                stack.push(Frame::Map {
                    pointer: p,
                    key: None,
                });
            }
            Event::SequenceStart(..) => {
                let p = node_pointer(&mut stack, pos, &mut index);
                stack.push(Frame::Seq {
                    pointer: p,
                    next: 0,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    Ok(index)
}

/// Records the position of a mapping key as the position of its entry.
fn record_key(stack: &[Frame], pos: (usize, usize), index: &mut PositionIndex) {
    if let Some(Frame::Map {
        pointer,
        key: Some(k),
    }) = stack.last()
    {
        let p = format!("{pointer}/{}", escape_token(k));
        index.map.entry(p).or_insert(pos);
    }
}

/// A value node: computes its pointer from the enclosing frame and advances that frame.
fn node_pointer(stack: &mut [Frame], pos: (usize, usize), index: &mut PositionIndex) -> String {
    let p = match stack.last_mut() {
        None => String::new(),
        Some(Frame::Map { pointer, key }) => match key.take() {
            // The entry's position is the key's, already recorded.
            Some(k) => return format!("{pointer}/{}", escape_token(&k)),
            // A complex (non-scalar) key: not representable in JSON; serde-saphyr reports it.
            None => format!("{pointer}/?"),
        },
        Some(Frame::Seq { pointer, next }) => {
            let p = format!("{pointer}/{next}");
            *next += 1;
            p
        }
    };
    index.map.entry(p.clone()).or_insert(pos);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_items() {
        let text = "# c\nname: x\nhttp:\n  method: GET\n  list:\n    - a\n    - b: 1\n";
        let (v, idx) = parse(text).unwrap();
        assert_eq!(v["http"]["method"], "GET");
        assert_eq!(idx.get("/name"), Some((2, 1)));
        assert_eq!(idx.get("/http/method"), Some((4, 3)));
        assert_eq!(idx.get("/http/list/0"), Some((6, 7)));
        assert_eq!(idx.get("/http/list/1/b"), Some((7, 7)));
        assert_eq!(idx.locate("/http/list/1/b/zz"), (7, 7));
    }

    #[test]
    fn flow_mappings_are_indexed() {
        let (_, idx) = parse("a: {b: 1, c: [x, y]}\n").unwrap();
        assert_eq!(idx.get("/a/c/1"), Some((1, 18)));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
    }

    #[test]
    fn duplicate_key_is_an_error_with_line() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.line, 3, "{e:?}");
        assert!(e.message.to_lowercase().contains("duplicate"), "{e:?}");
    }

    #[test]
    fn two_documents_are_refused() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.line, 2, "{e:?}");
    }

    #[test]
    fn empty_is_null() {
        assert_eq!(parse("# only a comment\n").unwrap().0, Value::Null);
        assert_eq!(parse("").unwrap().0, Value::Null);
    }

    #[test]
    fn field_paths_read_like_code() {
        assert_eq!(pointer_to_field("/http/items/0/x"), "http.items[0].x");
        assert_eq!(pointer_to_field(""), "");
        assert_eq!(pointer_to_field("/a~1b"), "a/b");
    }
}
