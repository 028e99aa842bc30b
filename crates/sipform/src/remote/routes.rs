//! Typed routes: a route template (what logs and errors name, never an id) and the concrete
//! path, built by encoding every segment. An id is data, never path syntax: `..`, `/` or `?`
//! in an id stay inside their segment (`%2E%2E`), so a hostile id cannot reach another route.

/// One endpoint with its concrete path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    template: &'static str,
    path: String,
}

impl Route {
    /// Fills the `:name` segments of `template`, in order, with `segments`, each
    /// percent-encoded. A missing segment leaves the placeholder (a bug, caught by tests).
    pub fn new(template: &'static str, segments: &[&str]) -> Route {
        let mut path = String::with_capacity(template.len() + 40);
        let mut next = segments.iter();
        for (i, part) in template.split('/').enumerate() {
            if i > 0 {
                path.push('/');
            }
            match (part.strip_prefix(':'), part.is_empty()) {
                (Some(_), false) => match next.next() {
                    Some(s) => encode_into(&mut path, s),
                    None => path.push_str(part),
                },
                _ => path.push_str(part),
            }
        }
        Route { template, path }
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

/// Percent-encodes everything but letters, digits, `-`, `_` and `~`. Unlike RFC 3986's
/// unreserved set, `.` is encoded too: a segment `.` or `..` would otherwise be collapsed by
/// URL normalisation and change the route.
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
    }

    #[test]
    fn queries_are_encoded() {
        let r = Route::new("/api/agents", &[]).query("accountId", "a&b=c");
        assert_eq!(r.path(), "/api/agents?accountId=a%26b%3Dc");
    }
}
