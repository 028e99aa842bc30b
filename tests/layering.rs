//! Imports go one way: the library's modules form layers, and no module or file uses one above
//! it or one that uses it back.
//!
//! Reads `crates/sipform/src/**/*.rs` as text and builds the dependency graph from the paths
//! the code names: `use crate::…`, `use super::…`, `use self::…` (with `{…}` groups), and any
//! `crate::…`, `super::…`, `self::…` path in the code (comments and string literals left out;
//! `super::` resolved through inline `mod x { … }` blocks). A path `crate::a::…` seen in a file
//! under module `b` is an arrow `b -> a` between the top-level modules; a path that stays inside
//! one module but leaves a file is an arrow between that module's children (its files and
//! folders): `inventory/phone_lines.rs` naming `super::table::…` is `phone_lines -> table` in
//! `inventory/`. A path into a module's `mod.rs` (its face: `super::Thing`) is no arrow between
//! files. A re-export (`pub use`) is followed no further than the path written.
//!
//! It fails on (a) a cycle between top-level modules, or between the files of one module,
//! naming it; (b) an arrow between top-level modules against [`LAYERS`]; (c) a top-level
//! module missing from [`LAYERS`] (a new module must take its place in the table).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// The library's layers, bottom up (as in `docs/architecture.md`). A module may use the
/// modules of the layers below its own, never one of its own layer or above.
const LAYERS: &[&[&str]] = &[
    &["model", "escape"],
    &["fsio", "db", "notify"],
    &["compare"],
    &["plan"],
    &["state"],
    &["front"],
    &["config", "crypto"],
    &["contract"],
    &["inventory", "revision"],
    &["remote"],
    &["resources"],
    &["refresh"],
    &["diff"],
    &["apply"],
    &["ops"],
    &["output", "controller"],
];

/// Violations the tree has today, being removed on other branches (issue 22). This list must
/// become empty: the test fails on any violation not listed here AND on any listed one that is
/// gone, so the one who removes a violation also removes its line (and, with the last, the
/// list stays empty for good).
const KNOWN_VIOLATIONS: &[&str] = &[];

#[test]
fn the_library_is_layered_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/sipform/src");
    let files = read_tree(&src);
    assert!(
        files.len() > 20,
        "read only {} files under {}",
        files.len(),
        src.display()
    );
    let graph = Graph::build(&files);
    if std::env::var_os("LAYERING_PRINT").is_some() {
        // `LAYERING_PRINT=1 cargo test --test layering -- --nocapture`: every arrow.
        for (scope, arrows) in &graph.scopes {
            for ((from, to), seen) in arrows {
                println!(
                    "{}{from} -> {to}    ({seen})",
                    scope.iter().map(|s| format!("{s}/")).collect::<String>()
                );
            }
        }
    }
    // The parser found the graph (a regression that finds no path would pass vacuously).
    let top = graph.scopes.get(&Vec::new()).map_or(0, BTreeMap::len);
    assert!(top > 40, "only {top} arrows between top-level modules");
    // The table names real modules, each once.
    let tops = graph.top_level_modules();
    let mut placed = BTreeSet::new();
    for m in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(placed.insert(*m), "{m} is twice in LAYERS");
        assert!(tops.contains(*m), "LAYERS names {m}, which is not a module");
    }
    let found = graph.violations(LAYERS);
    let known: BTreeSet<String> = KNOWN_VIOLATIONS.iter().map(|s| s.to_string()).collect();
    let new: Vec<String> = found
        .iter()
        .filter(|(v, _)| !known.contains(*v))
        .map(|(v, why)| format!("  {v}\n      {why}"))
        .collect();
    let gone: Vec<&String> = known.iter().filter(|v| !found.contains_key(*v)).collect();
    assert!(
        new.is_empty(),
        "imports against the layering (see LAYERS in tests/layering.rs and docs/architecture.md):\n{}",
        new.join("\n")
    );
    assert!(
        gone.is_empty(),
        "fixed, so remove from KNOWN_VIOLATIONS in tests/layering.rs: {gone:?}"
    );
}

// --- reading the tree ----------------------------------------------------------------------

/// A source file: its module path (`["inventory", "table"]`; `mod.rs` is its folder's
/// module, `lib.rs` the crate root `[]`), its path for messages, its text.
struct SourceFile {
    module: Vec<String>,
    shown: String,
    text: String,
}

fn read_tree(root: &Path) -> Vec<SourceFile> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for e in entries {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            if p.extension().and_then(|x| x.to_str()) != Some("rs") {
                continue;
            }
            let rel = p.strip_prefix(root).expect("under root");
            let shown = rel.to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{shown}: {e}"));
            out.push(SourceFile {
                module: module_of(&shown),
                shown,
                text,
            });
        }
    }
    out.sort_by(|a, b| a.shown.cmp(&b.shown));
    out
}

/// `inventory/table.rs` → `[inventory, table]`; `state/db/mod.rs` → `[state, db]`;
/// `lib.rs` → `[]`.
fn module_of(rel: &str) -> Vec<String> {
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod")) {
        parts.pop();
    }
    if parts == ["lib"] {
        parts.clear();
    }
    parts
}

// --- tokens --------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Open,
    Close,
    Comma,
    Star,
    Semi,
    Other,
}

/// The tokens that matter for paths, with their line; comments, strings and char literals
/// are dropped.
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    // Skips from `i` (just after an opening `"`) past the closing `"` and `hashes` `#`s.
    let skip_string = |mut i: usize, hashes: usize, raw: bool, line: &mut usize| -> usize {
        while i < c.len() {
            match c[i] {
                '\\' if !raw => {
                    if at(i + 1) == '\n' {
                        *line += 1;
                    }
                    i += 2;
                }
                '"' if (1..=hashes).all(|k| at(i + k) == '#') => return i + 1 + hashes,
                ch => {
                    if ch == '\n' {
                        *line += 1;
                    }
                    i += 1;
                }
            }
        }
        i
    };
    while i < c.len() {
        let ch = c[i];
        match ch {
            '\n' => {
                line += 1;
                i += 1;
            }
            _ if ch.is_whitespace() => i += 1,
            '/' if at(i + 1) == '/' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if c[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => i = skip_string(i + 1, 0, false, &mut line),
            '\'' => {
                if at(i + 1) == '\\' {
                    // An escaped char literal: up to its closing quote.
                    i += 2;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == '\'' {
                    i += 3;
                } else {
                    // A lifetime or a label: its name follows as an identifier.
                    i += 1;
                }
            }
            ':' if at(i + 1) == ':' => {
                out.push((Tok::Path, line));
                i += 2;
            }
            '{' | '}' | ',' | '*' | ';' => {
                let t = match ch {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    '*' => Tok::Star,
                    _ => Tok::Semi,
                };
                out.push((t, line));
                i += 1;
            }
            _ if ch.is_ascii_digit() => {
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                out.push((Tok::Other, line));
            }
            _ if ch.is_alphabetic() || ch == '_' => {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                // Raw and byte strings, byte chars, raw identifiers.
                let mut hashes = 0;
                while at(i + hashes) == '#' {
                    hashes += 1;
                }
                match word.as_str() {
                    "r" | "br" | "cr" if at(i + hashes) == '"' => {
                        i = skip_string(i + hashes + 1, hashes, true, &mut line);
                    }
                    "b" | "c" if at(i) == '"' => i = skip_string(i + 1, 0, false, &mut line),
                    "b" if at(i) == '\'' => {
                        i += 1;
                        while i < c.len() && c[i] != '\'' {
                            i += if c[i] == '\\' { 2 } else { 1 };
                        }
                        i += 1;
                    }
                    "r" if hashes == 1 && (at(i + 1).is_alphabetic() || at(i + 1) == '_') => {
                        let s = i + 1;
                        i = s;
                        while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                            i += 1;
                        }
                        out.push((Tok::Ident(c[s..i].iter().collect()), line));
                    }
                    _ => out.push((Tok::Ident(word), line)),
                }
            }
            _ => {
                out.push((Tok::Other, line));
                i += 1;
            }
        }
    }
    out
}

// --- paths ---------------------------------------------------------------------------------

/// A path the code names, as written (`["super", "table", "Row"]`), with the module it is
/// written in (the file's, plus any inline `mod` around it) and its line.
#[derive(Debug, Clone, PartialEq)]
struct Named {
    path: Vec<String>,
    inside: Vec<String>,
    line: usize,
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// Every `use` path and every `crate::`/`super::`/`self::` path in `src`, a file of `module`.
fn named_paths(src: &str, module: &[String]) -> Vec<Named> {
    let toks = tokens(src);
    let mut out = Vec::new();
    // Inline modules open at this point: (name, the brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let inside = |inline: &[(String, usize)]| -> Vec<String> {
        let mut m = module.to_vec();
        m.extend(inline.iter().map(|(n, _)| n.clone()));
        m
    };
    let mut i = 0;
    while i < toks.len() {
        let (t, line) = &toks[i];
        match t {
            Tok::Open => depth += 1,
            Tok::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(w) if w == "mod" => {
                if let (Some(name), Some((Tok::Open, _))) =
                    (ident(toks.get(i + 1)), toks.get(i + 2))
                {
                    inline.push((name.to_string(), depth + 1));
                }
            }
            Tok::Ident(w) if w == "use" => {
                let here = inside(&inline);
                let mut paths = Vec::new();
                let end = use_tree(&toks, i + 1, Vec::new(), &mut paths);
                for path in paths {
                    out.push(Named {
                        path,
                        inside: here.clone(),
                        line: *line,
                    });
                }
                i = end.max(i + 1);
                continue;
            }
            Tok::Ident(w)
                if matches!(w.as_str(), "crate" | "super" | "self")
                    && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Path)
                    && !matches!(toks.get(i.wrapping_sub(1)).map(|t| &t.0), Some(Tok::Path))
                    && ident(toks.get(i.wrapping_sub(1))) != Some("in") =>
            {
                let mut path = vec![w.clone()];
                let mut j = i + 1;
                while toks.get(j).map(|t| &t.0) == Some(&Tok::Path) {
                    match ident(toks.get(j + 1)) {
                        Some(s) => {
                            path.push(s.to_string());
                            j += 2;
                        }
                        None => break,
                    }
                }
                out.push(Named {
                    path,
                    inside: inside(&inline),
                    line: *line,
                });
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Parses a use tree from `i` under `prefix`, pushing each leaf path; returns the index after
/// it. A leading `::` (an external crate) yields nothing.
fn use_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    if prefix.is_empty() && toks.get(i).map(|t| &t.0) == Some(&Tok::Path) {
        while i < toks.len() && toks[i].0 != Tok::Semi {
            i += 1;
        }
        return i + 1;
    }
    let mut path = prefix;
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                i += 1;
                if toks.get(i).map(|t| &t.0) == Some(&Tok::Path) {
                    i += 1;
                    continue;
                }
                if ident(toks.get(i)) == Some("as") {
                    i += 2;
                }
                out.push(path);
                break;
            }
            Some(Tok::Open) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        None => return i,
                        Some(Tok::Close) => {
                            i += 1;
                            break;
                        }
                        Some(Tok::Comma) => i += 1,
                        Some(_) => {
                            let next = use_tree(toks, i, path.clone(), out);
                            if next == i {
                                i += 1;
                            } else {
                                i = next;
                            }
                        }
                    }
                }
                break;
            }
            Some(Tok::Star) => {
                out.push(path);
                i += 1;
                break;
            }
            _ => break,
        }
    }
    if toks.get(i).map(|t| &t.0) == Some(&Tok::Semi) {
        i += 1;
    }
    i
}

/// The absolute module path a named path points into (`crate::` stripped, `super`/`self`
/// resolved against the module it is written in), or `None` for another crate's path.
/// `known` decides a bare first segment: a child module of where it is written.
fn resolve(n: &Named, known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut segs = n.path.iter().peekable();
    let mut base: Vec<String> = match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segs.next();
            Vec::new()
        }
        Some("super") | Some("self") => n.inside.clone(),
        Some(first) => {
            let mut child = n.inside.clone();
            child.push(first.to_string());
            if !known.contains(&child) {
                return None;
            }
            n.inside.clone()
        }
        None => return None,
    };
    let mut leading = true;
    for s in segs {
        match s.as_str() {
            "super" if leading => {
                base.pop()?;
            }
            "self" => {}
            _ => {
                leading = false;
                base.push(s.clone());
            }
        }
    }
    Some(base)
}

// --- the graph -----------------------------------------------------------------------------

/// Arrows by scope: `[]` holds the arrows between top-level modules, `["inventory"]` those
/// between `inventory`'s children. Each arrow keeps where it was first seen.
struct Graph {
    scopes: BTreeMap<Vec<String>, BTreeMap<(String, String), String>>,
    modules: BTreeSet<Vec<String>>,
}

impl Graph {
    fn build(files: &[SourceFile]) -> Graph {
        let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
        let mut scopes: BTreeMap<Vec<String>, BTreeMap<(String, String), String>> = BTreeMap::new();
        for f in files {
            for n in named_paths(&f.text, &f.module) {
                let Some(target) = resolve(&n, &modules) else {
                    continue;
                };
                let from = &f.module;
                let k = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
                if k >= from.len() || k >= target.len() || !modules.contains(&target[..=k]) {
                    continue;
                }
                scopes
                    .entry(from[..k].to_vec())
                    .or_default()
                    .entry((from[k].clone(), target[k].clone()))
                    .or_insert_with(|| {
                        let written: Vec<&str> = n
                            .path
                            .iter()
                            .enumerate()
                            .filter(|(i, s)| *i == 0 || *s != "self")
                            .map(|(_, s)| s.as_str())
                            .collect();
                        format!("{}:{}: {}", f.shown, n.line, written.join("::"))
                    });
            }
        }
        Graph { scopes, modules }
    }

    fn top_level_modules(&self) -> BTreeSet<&str> {
        self.modules
            .iter()
            .filter(|m| m.len() == 1)
            .map(|m| m[0].as_str())
            .collect()
    }

    /// Every violation, named, with the evidence.
    fn violations(&self, layers: &[&[&str]]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (scope, arrows) in &self.scopes {
            let name = if scope.is_empty() {
                "crate/".to_string()
            } else {
                format!("{}/", scope.join("/"))
            };
            for (cycle, members) in cycles(arrows) {
                let evidence: Vec<&str> = cycle
                    .windows(2)
                    .filter_map(|w| arrows.get(&(w[0].clone(), w[1].clone())))
                    .map(String::as_str)
                    .collect();
                let mut v = format!("cycle in {name}: {}", cycle.join(" -> "));
                if members.len() + 1 > cycle.len() {
                    v.push_str(&format!(" (strongly connected: {})", members.join(", ")));
                }
                out.insert(v, evidence.join("; "));
            }
        }
        let layer_of = |m: &str| layers.iter().position(|l| l.contains(&m));
        for m in self.top_level_modules() {
            if layer_of(m).is_none() {
                out.insert(
                    format!("module not in the layer table: {m}"),
                    "add it to LAYERS in tests/layering.rs".into(),
                );
            }
        }
        for ((from, to), seen) in self.scopes.get(&Vec::new()).into_iter().flatten() {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to)) {
                if a <= b {
                    out.insert(
                        format!("arrow against the layers: {from} -> {to}"),
                        format!("layer {a} uses layer {b}: {seen}"),
                    );
                }
            }
        }
        out
    }
}

/// Each cycle of the graph, one per strongly connected component: the shortest cycle through
/// its first member (`a -> b -> a`) and all its members.
fn cycles(arrows: &BTreeMap<(String, String), String>) -> Vec<(Vec<String>, Vec<String>)> {
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (a, b) in arrows.keys() {
        next.entry(a).or_default().insert(b);
        next.entry(b).or_default();
    }
    let reach = |from: &str| -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(n) = todo.pop() {
            for m in &next[n] {
                if seen.insert(*m) {
                    todo.push(*m);
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&str, BTreeSet<&str>> = next.keys().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in next.keys() {
        if done.contains(n) || !reaches[n].contains(n) {
            continue;
        }
        let members: Vec<&str> = next
            .keys()
            .filter(|m| reaches[n].contains(*m) && reaches[*m].contains(n))
            .copied()
            .collect();
        done.extend(members.iter().copied());
        // The shortest way from n back to n (breadth first, neighbours in order).
        let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([*n]);
        'search: while let Some(x) = queue.pop_front() {
            for y in &next[x] {
                if *y == *n {
                    prev.insert(n, x);
                    break 'search;
                }
                if !prev.contains_key(y) {
                    prev.insert(y, x);
                    queue.push_back(y);
                }
            }
        }
        let mut cycle = vec![n.to_string()];
        let mut at = prev[n];
        while at != *n {
            cycle.push(at.to_string());
            at = prev[at];
        }
        cycle.push(n.to_string());
        cycle.reverse();
        out.push((cycle, members.iter().map(|s| s.to_string()).collect()));
    }
    out
}

// --- the parser's own tests ----------------------------------------------------------------

#[cfg(test)]
mod parser {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            module: module_of(path),
            shown: path.to_string(),
            text: text.to_string(),
        }
    }

    fn arrows(files: &[SourceFile], scope: &[&str]) -> Vec<String> {
        let scope: Vec<String> = scope.iter().map(|s| s.to_string()).collect();
        Graph::build(files)
            .scopes
            .get(&scope)
            .map(|a| a.keys().map(|(x, y)| format!("{x} -> {y}")).collect())
            .unwrap_or_default()
    }

    fn violations(files: &[SourceFile], layers: &[&[&str]]) -> Vec<String> {
        Graph::build(files).violations(layers).into_keys().collect()
    }

    #[test]
    fn use_trees_crate_paths_and_super_make_arrows() {
        let files = [
            file("lib.rs", "pub mod a; pub mod b; pub mod c; pub mod d;"),
            file(
                "a.rs",
                "use crate::{b::{self, X}, c::Y as Z};\nfn f() { crate::d::g(); }",
            ),
            file("b.rs", "use std::fmt; use ::serde::Serialize;"),
            file("c.rs", ""),
            file("d/mod.rs", "mod e; mod f; pub use e::Thing;"),
            file("d/e.rs", "use super::f::Row; use super::Face;"),
            file("d/f.rs", "fn g() -> super::super::c::Y { todo!() }"),
        ];
        assert_eq!(
            arrows(&files, &[]),
            ["a -> b", "a -> c", "a -> d", "d -> c"]
        );
        assert_eq!(arrows(&files, &["d"]), ["e -> f"]);
    }

    #[test]
    fn comments_strings_and_visibility_are_not_arrows() {
        let files = [
            file("lib.rs", ""),
            file("a.rs", "// use crate::b;\n/* crate::b::x /* nested */ crate::b */\n/// [`crate::b::X`]\nconst S: &str = \"crate::b::x\";\nconst R: &str = r#\"use crate::b;\"#;\nconst C: char = '\"';\npub(in crate::b) fn f<'a>(x: &'a str) {}"),
            file("b.rs", ""),
        ];
        assert!(arrows(&files, &[]).is_empty(), "{:?}", arrows(&files, &[]));
    }

    #[test]
    fn super_inside_an_inline_module_is_its_file() {
        let files = [
            file("lib.rs", ""),
            file("m/mod.rs", "mod x; mod y;"),
            file("m/x.rs", "#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::y::Y;\n}\nfn h() { super::Face::new(); }"),
            file("m/y.rs", ""),
        ];
        assert_eq!(arrows(&files, &["m"]), ["x -> y"]);
    }

    #[test]
    fn a_cycle_between_modules_is_named() {
        let files = [
            file("lib.rs", ""),
            file("a.rs", "use crate::b::B;"),
            file("b.rs", "pub fn f() { crate::c::g() }"),
            file("c.rs", "use crate::{a::A};"),
            file("d.rs", "use crate::a::A;"),
        ];
        let found = violations(&files, &[&["a"], &["b"], &["c"], &["d"]]);
        assert!(
            found.contains(&"cycle in crate/: a -> b -> c -> a".to_string()),
            "{found:?}"
        );
        assert!(found.contains(&"arrow against the layers: a -> b".to_string()));
        assert!(found.contains(&"arrow against the layers: b -> c".to_string()));
        assert_eq!(
            found.len(),
            3,
            "c -> a and d -> a go down the layers: {found:?}"
        );
    }

    #[test]
    fn a_cycle_between_files_of_one_module_is_named() {
        let files = [
            file("lib.rs", ""),
            file("inventory/mod.rs", "mod phone_lines; mod table;"),
            file("inventory/phone_lines.rs", "use super::table::Row;"),
            file(
                "inventory/table.rs",
                "fn f() { crate::inventory::phone_lines::read() }",
            ),
        ];
        assert_eq!(
            violations(&files, &[&["inventory"]]),
            ["cycle in inventory/: phone_lines -> table -> phone_lines"]
        );
    }

    #[test]
    fn same_layer_and_unplaced_modules_are_violations() {
        let files = [
            file("lib.rs", ""),
            file("a.rs", "use crate::b::B;"),
            file("b.rs", ""),
            file("new.rs", ""),
        ];
        assert_eq!(
            violations(&files, &[&["a", "b"]]),
            [
                "arrow against the layers: a -> b",
                "module not in the layer table: new"
            ]
        );
        assert!(violations(&files, &[&["b"], &["a"], &["new"]]).is_empty());
    }
}
