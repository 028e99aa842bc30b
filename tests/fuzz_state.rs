//! Fuzzing the two JSON documents sipform reads back: the state file (`parse_state`) and a
//! saved plan (`read_plan`). Mutated real documents (byte flips, truncations, inserted tokens):
//! never a panic, and every refusal names the file. Short in CI; `SIPFORM_FUZZ_CASES` for more.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use sipform::plan::file::read_plan;
use sipform::state::file::parse_state;

fn cases(default: u32) -> u32 {
    std::env::var("SIPFORM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A real state file and a real saved plan (with changes), made once by the binary.
fn seeds() -> &'static (String, String) {
    static SEEDS: OnceLock<(String, String)> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let project = common::project_copy();
            let dir = project.path();
            let emu = common::emulator().await;
            let url = emu.base_url();
            let first = "3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01";
            let o = common::sipform(dir, &url, &["apply", "--auto-approve", "--target", first]);
            common::expect_code(&o, 0);
            let o = common::sipform(dir, &url, &["plan", "--out", "plan.json"]);
            common::expect_code(&o, 0);
            let state = std::fs::read_to_string(dir.join("sipform.state.json")).expect("state");
            let plan = std::fs::read_to_string(dir.join("plan.json")).expect("plan");
            emu.shutdown().await;
            (state, plan)
        })
    })
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "null",
    "true",
    "-1",
    "1e999",
    "18446744073709551616",
    "\"formatVersion\": 2,",
    "\"version\": 99,",
    "\"x\": 1,",
    "\u{0}",
    "é",
    " ",
    "\n",
];

fn mutate(seed: &str, muts: &[(u8, usize, usize)]) -> Vec<u8> {
    let mut b = seed.as_bytes().to_vec();
    for &(op, p, x) in muts {
        let n = b.len();
        match op % 4 {
            0 => {
                let p = p % (n + 1);
                b.splice(p..p, TOKENS[x % TOKENS.len()].bytes());
            }
            1 if n > 0 => {
                let p = p % n;
                b.drain(p..(p + 1 + x % 16).min(n));
            }
            2 if n > 0 => b[p % n] ^= (x % 255 + 1) as u8,
            3 => b.truncate(p % (n + 1)),
            _ => {}
        }
    }
    b
}

fn check_state(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Err(e) = parse_state(&text, "fuzz.state.json") {
        let msg = e.to_string();
        assert!(
            msg.contains("fuzz.state.json"),
            "the refusal does not name the file: {msg}"
        );
    }
}

fn check_plan(bytes: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plan.json");
    std::fs::write(&path, bytes).expect("write");
    if let Err(e) = read_plan(Path::new(&path)) {
        let msg = e.to_string();
        assert!(
            msg.contains("plan.json"),
            "the refusal does not name the file: {msg}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    #[test]
    fn mutated_state_files(muts in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..6)) {
        check_state(&mutate(&seeds().0, &muts));
    }

    #[test]
    fn mutated_saved_plans(muts in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..6)) {
        check_plan(&mutate(&seeds().1, &muts));
    }

    #[test]
    fn arbitrary_state_text(s in any::<String>()) {
        check_state(s.as_bytes());
    }
}

#[test]
fn the_seeds_themselves_are_accepted() {
    let (state, plan) = seeds();
    parse_state(state, "s").expect("a real state parses");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plan.json"), plan).expect("write");
    read_plan(&dir.path().join("plan.json")).expect("a real plan parses");
}
