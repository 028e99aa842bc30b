//! Typed routes: a route template (what logs and errors name, never an id) and the concrete
//! path, built by encoding every segment. An id is data, never path syntax: `/` or `?` in an id
//! stay inside their segment (`%2F`, `%3F`), so a hostile id cannot reach another route.
//!
//! Encoding cannot protect a segment that is only dots: URL parsers (the WHATWG rules the HTTP
//! client follows) read `%2E%2E` as `..` and collapse it, so `/api/agents/A/tools/%2E%2E` is
//! sent as `/api/agents/A/`. A route with an empty, `.` or `..` segment is therefore refused:
//! it is built, but the client never sends it ([`Route::refused`]).

/// One endpoint with its concrete path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    template: &'static str,
    path: String,
    /// Why this route must not be sent (a segment no encoding keeps in place).
    refused: Option<String>,
}

impl Route {
    /// Fills the `:name` segments of `template`, in order, with `segments`, each
    /// percent-encoded. A missing segment leaves the placeholder (a bug, caught by tests).
    pub fn new(template: &'static str, segments: &[&str]) -> Route {
        let mut path = String::with_capacity(template.len() + 40);
        let mut refused = None;
        let mut next = segments.iter();
        for (i, part) in template.split('/').enumerate() {
            if i > 0 {
                path.push('/');
            }
            match (part.strip_prefix(':'), part.is_empty()) {
                (Some(name), false) => match next.next() {
                    Some(s) => {
                        if matches!(*s, "" | "." | "..") {
                            refused.get_or_insert_with(|| {
                                format!(
                                    "its :{name} segment would be {s:?}, which URL normalisation removes; an id is never empty, '.' or '..'"
                                )
                            });
                        }
                        encode_into(&mut path, s)
                    }
                    None => path.push_str(part),
                },
                _ => path.push_str(part),
            }
        }
        Route {
            template,
            path,
            refused,
        }
    }

    /// Why the route must not be sent, if it must not: a segment that is empty, `.` or `..`
    /// would change which route the request reaches.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// Adds `?key=value` (or `&key=value`), the value encoded.
    pub fn query(mut self, key: &str, value: &str) -> Route {
        self.path
            .push(if self.path.contains('?') { '&' } else { '?' });
        self.path.push_str(key);
        self.path.push('=');
        encode_into(&mut self.path, value);
        self
    }

    /// What logs and errors name: the template, without ids.
    pub fn template(&self) -> &'static str {
        self.template
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Percent-encodes everything but letters, digits, `-`, `_` and `~` (`.` included, though that
/// alone does not protect a dot-only segment: see the module comment).
fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded_dots_included() {
        let r = Route::new("/api/agents/:id/tools/:toolId", &["a b/c", ".."]);
        assert_eq!(r.path(), "/api/agents/a%20b%2Fc/tools/%2E%2E");
        assert_eq!(r.template(), "/api/agents/:id/tools/:toolId");
        let r = Route::new("/api/agents/:id", &["3f2c-11"]);
        assert_eq!(r.path(), "/api/agents/3f2c-11");
        assert!(r.refused().is_none());
    }

    #[test]
    fn dot_only_and_empty_segments_are_refused() {
        for s in ["..", ".", ""] {
            let r = Route::new("/api/agents/:id/tools/:toolId", &["a", s]);
            let why = r.refused().expect("refused");
            assert!(why.contains(":toolId"), "{why}");
        }
        for s in ["...", "a..", "../x"] {
            assert!(
                Route::new("/api/agents/:id", &[s]).refused().is_none(),
                "{s}"
            );
        }
    }

    #[test]
    fn queries_are_encoded() {
        let r = Route::new("/api/agents", &[]).query("accountId", "a&b=c");
        assert_eq!(r.path(), "/api/agents?accountId=a%26b%3Dc");
    }
}
