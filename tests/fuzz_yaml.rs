//! Fuzzing the YAML loader (`src/yaml.rs`, `src/load.rs`) with proptest, on stable (see
//! `fuzz_expr.rs` for why not `cargo fuzz`).
//!
//! CI runs a short session. A long one:
//! `SIPFORM_FUZZ_CASES=5000 cargo test --release --test fuzz_yaml`.
//!
//! Properties: never panics (syntax, schema, serde, non-UTF-8 bytes through `read_document`,
//! the whole `validate` of a project holding the input as a tool file); every error's position
//! is inside the input (line 1..=lines+1, column ≥ 1); every indexed node is inside the input;
//! a parsed document printed back as YAML parses to the same value.

use std::path::Path;

use proptest::prelude::*;
use sipform::front::diagnostics::{Diagnostic, Origin};
use sipform::front::load;
use sipform::front::render::RenderEnv;
use sipform::front::schema::Kind;
use sipform::front::yaml;
use sipform::model::spec::{Project, Restaurant, ToolSpec};

fn cases(default: u32) -> u32 {
    std::env::var("SIPFORM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).expect("seed file")
}

fn seeds() -> Vec<String> {
    [
        "tools/check_order_status.yaml",
        "tools/check_availability.yaml",
        "tools/confirm_order.yaml",
        "tools/transfer_call.yaml",
        "restaurants/pizzeria-napoli.yaml",
        "restaurants/le-bistrot-du-port.yaml",
        "sipform.yaml",
    ]
    .iter()
    .map(|p| repo_file(p))
    .collect()
}

const TOKENS: &[&str] = &[
    "{{",
    "}}",
    ":",
    ": ",
    "\t",
    "\n",
    "  ",
    "- ",
    "&a ",
    "*a",
    "&a [1, *a]",
    "<<: *a\n",
    "? ",
    "!!binary ",
    "!!str ",
    "!tag ",
    "---\n",
    "...\n",
    "#",
    "'",
    "\"",
    "|\n",
    ">-\n",
    "[",
    "]",
    "{",
    "}",
    ",",
    "%YAML 1.2\n",
    "99999999999999999999999999",
    "-1e309",
    ".nan",
    "0x1F",
    "~",
    "null",
    "\u{0}",
    "\u{feff}",
    "\r",
    "é",
    "日本",
    "\\",
    "=",
    "={{$ai.x}}",
    "sortOrder: ",
];

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, usize),
    Delete(usize, usize),
    FlipByte(usize, u8),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0..TOKENS.len()).prop_map(|(p, t)| Mutation::Insert(p, t)),
        2 => (any::<usize>(), 1usize..20).prop_map(|(p, n)| Mutation::Delete(p, n)),
        2 => (any::<usize>(), 1u8..=255).prop_map(|(p, b)| Mutation::FlipByte(p, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), 1usize..80).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
    ]
}

/// Byte-level mutations: the result may not be UTF-8 (that is a case too).
fn mutate(seed: &str, muts: &[Mutation]) -> Vec<u8> {
    let mut b = seed.as_bytes().to_vec();
    for m in muts {
        let n = b.len();
        match *m {
            Mutation::Insert(p, t) => {
                let p = p % (n + 1);
                b.splice(p..p, TOKENS[t].bytes());
            }
            Mutation::Delete(p, k) if n > 0 => {
                let p = p % n;
                b.drain(p..(p + k).min(n));
            }
            Mutation::FlipByte(p, x) if n > 0 => b[p % n] ^= x,
            Mutation::Truncate(p) => b.truncate(p % (n + 1)),
            Mutation::Duplicate(p, k) if n > 0 => {
                let p = p % n;
                let e = (p + k).min(n);
                let part = b[p..e].to_vec();
                b.splice(e..e, part);
            }
            _ => {}
        }
    }
    b
}

fn line_count(text: &str) -> usize {
    yaml_lines(text).len()
}

/// The input's lines as YAML counts them (`\r\n`, `\r` and `\n` end a line).
fn yaml_lines(text: &str) -> Vec<usize> {
    text.replace("\r\n", "\n")
        .split(['\r', '\n'])
        .map(|l| l.chars().count())
        .collect()
}

fn assert_in_input(text: &str, line: usize, column: usize, what: &str) {
    let lines = line_count(text);
    assert!(
        line >= 1 && line <= lines + 1 && column >= 1,
        "{what}: position {line}:{column} outside the input ({lines} lines): {text:?}"
    );
    // The column is on that line (or just past its end, where a parser stops).
    let widths = yaml_lines(text);
    if let Some(w) = widths.get(line - 1) {
        assert!(
            column <= w + 2,
            "{what}: column {column} beyond line {line} ({w} characters): {text:?}"
        );
    }
}

fn assert_diag_in_input(text: &str, d: &Diagnostic) {
    match &d.origin {
        Origin::File { line, column, .. } => assert_in_input(text, *line, *column, &d.to_string()),
        Origin::Row { .. } => panic!("a file diagnostic with a row origin: {d}"),
    }
    assert!(!d.message.is_empty(), "empty message: {d:?}");
}

/// Every property of the text layer, for one input.
fn check_text(text: &str) {
    let path = Path::new("fuzz.yaml");
    // The fast path every file takes (no position index) gives the same value or error.
    assert_eq!(
        yaml::parse_value(text),
        yaml::parse(text).map(|(v, _)| v),
        "{text:?}"
    );
    match yaml::parse(text) {
        Err(e) => assert_in_input(text, e.line, e.column, &e.to_string()),
        Ok((value, _)) => {
            // Print back and parse again: the same value.
            if !value.is_null() {
                if let Ok(printed) = serde_saphyr::to_string(&value) {
                    let (again, _) = yaml::parse(&printed).unwrap_or_else(|e| {
                        panic!("{text:?} printed as {printed:?} does not parse: {e}")
                    });
                    assert_eq!(value, again, "{text:?} printed as {printed:?}");
                }
            }
        }
    }
    let doc = match load::parse_document(path, text) {
        Ok(d) => d,
        Err(d) => return assert_diag_in_input(text, &d),
    };
    for pointer in [
        "",
        "/name",
        "/http/url",
        "/parameters/properties",
        "/a/b/0/c",
    ] {
        let (line, column) = doc.index.locate(pointer);
        assert_in_input(text, line, column, pointer);
    }
    for diags in [
        load::typed::<ToolSpec>(&doc, Kind::Tool).err(),
        load::typed::<Restaurant>(&doc, Kind::Restaurant).err(),
        load::typed::<Project>(&doc, Kind::Project).err(),
    ]
    .into_iter()
    .flatten()
    {
        for d in diags.iter() {
            assert_diag_in_input(text, d);
        }
    }
}

/// The bytes through `read_document` (the UTF-8 check), then the text layer.
fn check_bytes(bytes: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fuzz.yaml");
    std::fs::write(&path, bytes).expect("write");
    match std::str::from_utf8(bytes) {
        Ok(text) => check_text(text),
        Err(_) => {
            let d = load::read_document(&path).expect_err("non-UTF-8 is refused");
            let lossy = String::from_utf8_lossy(bytes);
            assert_diag_in_input(&lossy, &d);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(s in any::<String>()) {
        check_text(&s);
    }

    #[test]
    fn yaml_alphabet(s in "[a-z:\\-\\[\\]{}&*!|>#'\" \t\n,?0-9.]{0,120}") {
        check_text(&s);
    }

    #[test]
    fn mutated_project_files(
        seed in 0..7usize,
        muts in proptest::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds();
        check_bytes(&mutate(&seeds[seed], &muts));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300) / 10 + 1, ..ProptestConfig::default() })]

    /// The whole validate, with a mutated tool file in a real project: no panic, and every
    /// diagnostic about that file is inside it.
    #[test]
    fn validate_with_a_mutated_tool(muts in proptest::collection::vec(mutation(), 1..6)) {
        let seed = repo_file("tools/check_order_status.yaml");
        let bytes = mutate(&seed, &muts);
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        for sub in ["tools", "templates", "restaurants"] {
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
            for e in std::fs::read_dir(repo.join(sub)).expect("read").flatten() {
                std::fs::copy(e.path(), root.join(sub).join(e.file_name())).expect("copy");
            }
        }
        std::fs::copy(repo.join("sipform.yaml"), root.join("sipform.yaml")).expect("copy");
        let tool = root.join("tools/check_order_status.yaml");
        std::fs::write(&tool, &bytes).expect("write");
        let project = load::load_project_file(root).expect("project");
        let env = RenderEnv::from_env(&project);
        if let Err(diags) = sipform::front::validate::check(root, &env) {
            let lossy = String::from_utf8_lossy(&bytes);
            for d in diags.iter() {
                if let Origin::File { path, .. } = &d.origin {
                    if path == &tool {
                        assert_diag_in_input(&lossy, d);
                    }
                }
            }
        }
    }
}

/// Inputs worth keeping: edge cases and whatever a long run found.
#[test]
fn regressions() {
    for text in [
        "",
        "\n",
        "#",
        "---",
        "---\n---\n",
        "...",
        "a: 1\n...\n",
        "&a [*a]",
        "*a",
        "a: *b",
        "? [a]\n: 1",
        "{a: 1, a: 2}",
        "a:\n\t- 1",
        "\u{feff}a: 1",
        "a: 1\r\nb: 2\r\n",
        "a: !!binary AAA",
        "- - - - - -",
        "[[[[[[[[[[",
        "a: \"\\u\"",
        "'",
        "\"",
        "|",
        ">",
        "a: 99999999999999999999999999",
        "a: -1e309",
        "%YAML 1.2\n---\na: 1",
    ] {
        check_text(text);
    }
    // Found by the fuzzer: a lone CR before a non-UTF-8 byte put the error on the wrong line.
    check_bytes(b"\r\0# c\nname: x\npath: restauran\xf4s\n");
    check_bytes(b"a: 1\rb: 2\r\nc: \xff\n");
}
