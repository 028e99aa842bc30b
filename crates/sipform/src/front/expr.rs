//! sip-agent-server expressions: a string starting with `=` whose `{{path}}` segments the server
//! replaces at call time. Parsed here so validate can check every root and reference offline.

use std::fmt;

/// The roots the contract defines (see the API contract's Expressions table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Root {
    BaseUrl,
    Config,
    CallerPhone,
    Data,
    Ai,
    Ctx,
    Res,
}

impl Root {
    pub const ALL: [Root; 7] = [
        Root::BaseUrl,
        Root::Config,
        Root::CallerPhone,
        Root::Data,
        Root::Ai,
        Root::Ctx,
        Root::Res,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Root::BaseUrl => "BASE_URL",
            Root::Config => "config",
            Root::CallerPhone => "callerPhone",
            Root::Data => "data",
            Root::Ai => "$ai",
            Root::Ctx => "ctx",
            Root::Res => "$res",
        }
    }

    fn parse(s: &str) -> Option<Root> {
        Root::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `{{path}}` of an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub root: Root,
    /// The dotted segments after the root (`ctx.a.b` → `["a", "b"]`).
    pub segments: Vec<String>,
    /// Character offset of the `{{` in the whole string (the `=` is offset 0).
    pub offset: usize,
    /// Character length of the whole `{{ … }}`.
    pub len: usize,
}

/// Why an expression does not parse; `offset` counts characters from the start of the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (at character {})", offset + 1)]
pub struct ExprError {
    pub offset: usize,
    pub kind: ExprErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprErrorKind {
    #[error("`{{{{` is never closed by `}}}}`")]
    Unclosed,
    #[error("empty path in `{{{{}}}}`")]
    EmptyPath,
    #[error("bad path segment `{0}` (letters, digits, `_` and `-` only)")]
    BadSegment(String),
    #[error("unknown root `{0}` (roots: BASE_URL, config, callerPhone, data, $ai, ctx, $res)")]
    UnknownRoot(String),
}

/// Whether a string is an expression rather than a literal.
pub(crate) fn is_expression(s: &str) -> bool {
    s.starts_with('=')
}

/// The references of an expression; `Ok(None)` for a literal.
pub fn parse(s: &str) -> Result<Option<Vec<Reference>>, ExprError> {
    if !is_expression(s) {
        return Ok(None);
    }
    let chars: Vec<char> = s.chars().collect();
    let mut refs = Vec::new();
    let mut i = 1;
    while i + 1 < chars.len() {
        if chars[i] == '{' && chars[i + 1] == '{' {
            let start = i;
            let mut j = i + 2;
            let mut end = None;
            while j + 1 < chars.len() {
                if chars[j] == '}' && chars[j + 1] == '}' {
                    end = Some(j);
                    break;
                }
                j += 1;
            }
            let end = end.ok_or(ExprError {
                offset: start,
                kind: ExprErrorKind::Unclosed,
            })?;
            let inner: String = chars[start + 2..end].iter().collect();
            refs.push(parse_path(inner.trim(), start, end + 2 - start)?);
            i = end + 2;
        } else {
            i += 1;
        }
    }
    Ok(Some(refs))
}

fn parse_path(path: &str, offset: usize, len: usize) -> Result<Reference, ExprError> {
    let err = |kind| ExprError { offset, kind };
    if path.is_empty() {
        return Err(err(ExprErrorKind::EmptyPath));
    }
    let mut parts = path.split('.');
    let root_s = parts.next().unwrap_or_default();
    let root = Root::parse(root_s).ok_or_else(|| err(ExprErrorKind::UnknownRoot(root_s.into())))?;
    let mut segments = Vec::new();
    for seg in parts {
        let ok = !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(err(ExprErrorKind::BadSegment(seg.into())));
        }
        segments.push(seg.to_string());
    }
    Ok(Reference {
        root,
        segments,
        offset,
        len,
    })
}

/// Replaces every `{{BASE_URL}}` by `base` and drops the leading `=`: what a URL becomes on the
/// server for an agent whose apiBaseUrl is `base`. A literal is returned as is.
pub fn substitute_base_url(s: &str, base: &str) -> Result<String, ExprError> {
    let Some(refs) = parse(s)? else {
        return Ok(s.to_string());
    };
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 1;
    for r in &refs {
        out.extend(&chars[i..r.offset]);
        if r.root == Root::BaseUrl {
            out.push_str(base);
        } else {
            out.extend(&chars[r.offset..r.offset + r.len]);
        }
        i = r.offset + r.len;
    }
    out.extend(&chars[i..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_is_not_an_expression() {
        assert_eq!(parse("confirmed").unwrap(), None);
        assert_eq!(parse("{{config.x}}").unwrap(), None);
    }

    #[test]
    fn parses_roots_and_segments() {
        let r = parse("={{BASE_URL}}/x?id={{ config.restaurantId }}&p={{$ai.customer_phone}}")
            .unwrap()
            .unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].root, Root::BaseUrl);
        assert_eq!(r[1].root, Root::Config);
        assert_eq!(r[1].segments, vec!["restaurantId"]);
        assert_eq!(r[2].root, Root::Ai);
        assert_eq!(r[2].offset, 47);
        let r = parse("={{$res}}").unwrap().unwrap();
        assert_eq!(r[0].root, Root::Res);
        assert!(r[0].segments.is_empty());
    }

    #[test]
    fn errors_say_where() {
        let e = parse("=abc{{ctx.a").unwrap_err();
        assert_eq!(e.kind, ExprErrorKind::Unclosed);
        assert_eq!(e.offset, 4);
        assert_eq!(parse("={{ }}").unwrap_err().kind, ExprErrorKind::EmptyPath);
        assert_eq!(
            parse("={{ctx..a}}").unwrap_err().kind,
            ExprErrorKind::BadSegment(String::new())
        );
        assert_eq!(
            parse("={{foo.a}}").unwrap_err().kind,
            ExprErrorKind::UnknownRoot("foo".into())
        );
        assert!(parse("={{ctx.a b}}").is_err());
    }

    #[test]
    fn base_url_substitution() {
        assert_eq!(
            substitute_base_url(
                "={{BASE_URL}}/api/x?r={{config.restaurantId}}",
                "https://a.b"
            )
            .unwrap(),
            "https://a.b/api/x?r={{config.restaurantId}}"
        );
        assert_eq!(
            substitute_base_url("/api/x", "https://a.b").unwrap(),
            "/api/x"
        );
    }
}
