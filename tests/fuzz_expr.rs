//! Fuzzing the expression parser (`src/expr.rs`) with proptest: `cargo fuzz` needs a nightly
//! toolchain plus `cargo-fuzz`, which CI does not have; proptest runs on stable everywhere.
//!
//! CI runs a short session (the default case count). A long session:
//! `SIPFORM_FUZZ_CASES=200000 cargo test --release --test fuzz_expr`.
//!
//! Properties: never panics; an error's offset is inside the input and points at a `{{`;
//! references are in order, inside the input, and start with `{{` and end with `}}`;
//! printing the references back in canonical form and parsing again gives the same references;
//! base-URL substitution succeeds exactly when parsing does.

use proptest::prelude::*;
use sipform::front::expr::{self, Reference};

fn cases(default: u32) -> u32 {
    std::env::var("SIPFORM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Expressions the bundled project and the contract use: the seeds for mutation.
const SEEDS: &[&str] = &[
    "={{BASE_URL}}/api/orders/status?restaurantId={{config.restaurantId}}&phone={{$ai.customer_phone}}",
    "={{data.systemPrompt}}",
    "={{BASE_URL}}/api/calls",
    "=https://app.example.com/api/ai?restaurantId={{config.restaurantId}}&callerPhone={{callerPhone}}",
    "={{ ctx.order.items }}",
    "={{$res}}",
    "={{$res.body.status}}",
    "=prefix {{ $ai.party_size }} suffix",
    "literal, not an expression",
    "=",
    "={{",
    "=}}{{",
];

const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{",
    "}",
    "=",
    ".",
    "..",
    "$ai",
    "$res",
    "config",
    "BASE_URL",
    " ",
    "\t",
    "\n",
    "é",
    "日本",
    "\u{0}",
    "\u{200b}",
    "-",
    "_",
    "9999999999999999999999",
    "{{{",
    "}}}",
];

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, usize),
    Delete(usize, usize),
    Replace(usize, char),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(p, t)| Mutation::Insert(p, t)),
        (any::<usize>(), 1usize..6).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), any::<char>()).prop_map(|(p, c)| Mutation::Replace(p, c)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..12).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
    ]
}

/// Applies mutations on characters, so the result stays a `&str`.
fn mutate(seed: &str, muts: &[Mutation]) -> String {
    let mut c: Vec<char> = seed.chars().collect();
    for m in muts {
        let n = c.len();
        match *m {
            Mutation::Insert(p, t) => {
                let p = p % (n + 1);
                let ins: Vec<char> = TOKENS[t].chars().collect();
                c.splice(p..p, ins);
            }
            Mutation::Delete(p, k) if n > 0 => {
                let p = p % n;
                let e = (p + k).min(n);
                c.drain(p..e);
            }
            Mutation::Replace(p, ch) if n > 0 => {
                c[p % n] = ch;
            }
            Mutation::Truncate(p) => c.truncate(p % (n + 1)),
            Mutation::Duplicate(p, k) if n > 0 => {
                let p = p % n;
                let e = (p + k).min(n);
                let part: Vec<char> = c[p..e].to_vec();
                c.splice(e..e, part);
            }
            _ => {}
        }
    }
    c.into_iter().collect()
}

fn canonical(r: &Reference) -> String {
    let mut s = format!("{{{{{}", r.root.as_str());
    for seg in &r.segments {
        s.push('.');
        s.push_str(seg);
    }
    s.push_str("}}");
    s
}

fn key(refs: &[Reference]) -> Vec<(String, Vec<String>)> {
    refs.iter()
        .map(|r| (r.root.as_str().to_string(), r.segments.clone()))
        .collect()
}

/// Every property, for one input.
fn check(s: &str) {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let parsed = expr::parse(s);
    match &parsed {
        Ok(None) => assert!(
            !s.starts_with('='),
            "{s:?}: an expression read as a literal"
        ),
        Ok(Some(refs)) => {
            assert!(s.starts_with('='));
            let mut after = 1;
            for r in refs {
                assert!(r.offset >= after, "{s:?}: references overlap: {refs:?}");
                assert!(r.len >= 4 && r.offset + r.len <= n, "{s:?}: {r:?} outside");
                assert_eq!(chars[r.offset..r.offset + 2], ['{', '{'], "{s:?}: {r:?}");
                assert_eq!(chars[r.offset + r.len - 2..r.offset + r.len], ['}', '}']);
                after = r.offset + r.len;
            }
            // Print back: the literal text kept, each reference canonical; parse again.
            let mut printed = String::from("=");
            let mut i = 1;
            for r in refs {
                printed.extend(&chars[i..r.offset]);
                printed.push_str(&canonical(r));
                i = r.offset + r.len;
            }
            printed.extend(&chars[i..]);
            let again = expr::parse(&printed)
                .unwrap_or_else(|e| panic!("{s:?} printed as {printed:?} no longer parses: {e}"))
                .expect("still an expression");
            assert_eq!(key(refs), key(&again), "{s:?} → {printed:?}");
            // Only the references, no literal text: the minimal round trip.
            let bare: String = std::iter::once("=".to_string())
                .chain(refs.iter().map(canonical))
                .collect();
            let back = expr::parse(&bare)
                .expect("bare parses")
                .expect("expression");
            assert_eq!(key(refs), key(&back), "{s:?} → {bare:?}");
        }
        Err(e) => {
            assert!(s.starts_with('='));
            assert!(e.offset < n, "{s:?}: error offset {} beyond {n}", e.offset);
            assert_eq!(chars[e.offset..e.offset + 2], ['{', '{'], "{s:?}: {e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("at character {}", e.offset + 1)),
                "{msg}"
            );
        }
    }
    let sub = expr::substitute_base_url(s, "https://app.example.com");
    assert_eq!(sub.is_ok(), parsed.is_ok(), "{s:?}");
    if let (Ok(out), Ok(Some(refs))) = (&sub, &parsed) {
        if !refs.iter().any(|r| r.root == expr::Root::BaseUrl) {
            // The server drops the `=` and keeps every other character.
            assert_eq!(
                out,
                &s[1..],
                "{s:?}: nothing to substitute but the text changed"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2_000), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings(s in any::<String>()) {
        check(&s);
        check(&format!("={s}"));
    }

    #[test]
    fn expression_alphabet(s in "=[{}$a-zA-Z0-9_. \\-]{0,48}") {
        check(&s);
    }

    #[test]
    fn mutated_valid_expressions(
        seed in 0..SEEDS.len(),
        muts in proptest::collection::vec(mutation(), 0..8),
    ) {
        check(&mutate(SEEDS[seed], &muts));
    }
}

/// Inputs worth keeping: edge cases and whatever a long run found.
#[test]
fn regressions() {
    for s in [
        "=",
        "={",
        "={{",
        "={{}",
        "={{}}",
        "={{ }}",
        "=}}",
        "={{{{}}}}",
        "={{{config}}",
        "={{config}}}",
        "={{config.}}",
        "={{.config}}",
        "={{config..a}}",
        "={{\u{0}}}",
        "={{BASE_URL}}{{BASE_URL}}",
        "=é{{ctx.日本}}",
        "={{ctx.a}}{{",
        "= {{$ai.x}}",
        "={{$ai.x\n}}",
        "={{\tconfig\t}}",
        "={{config.a-b_c.9}}",
    ] {
        check(s);
    }
}
