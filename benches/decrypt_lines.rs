//! The cost of decrypting the platform's SIP passwords (`phone_lines.sip_password`): one
//! PBKDF2-HMAC-SHA256 derivation of 100,000 rounds per line, spread over the cores by
//! `crypto::decrypt_all`, then cached for the rest of the process.
//! `cargo bench --bench decrypt_lines -- [N]` (default 1000 lines).
//!
//! The stored values are well formed but sealed with no key at all, so each costs exactly its
//! derivation and then fails authentication: what is timed is the derivation.

use std::time::Instant;

use base64::Engine as _;
use sipform::crypto::{decrypt_all, MasterKey};

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let b64 = base64::engine::general_purpose::STANDARD;
    let stored = format!(
        "{}:{}:{}",
        b64.encode([1u8; 12]),
        b64.encode([2u8; 16]),
        b64.encode(b"ciphertext")
    );
    let lines: Vec<(String, String)> = (0..n)
        .map(|i| (format!("44444444-0000-4000-8000-{i:012}"), stored.clone()))
        .collect();
    let master = MasterKey::parse(&"ab".repeat(32)).expect("key");
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());

    let t = Instant::now();
    let one = decrypt_all(Some(&master), &lines[..1]);
    let single = t.elapsed();
    assert!(one[0].is_err());

    let t = Instant::now();
    let cold = decrypt_all(Some(&master), &lines);
    let cold_t = t.elapsed();
    assert_eq!(cold.len(), n);

    let t = Instant::now();
    let warm = decrypt_all(Some(&master), &lines);
    let warm_t = t.elapsed();
    assert_eq!(warm.len(), n);

    println!("decrypt_lines: {n} lines on {cores} cores");
    println!(
        "  one derivation          {:>9.1} ms",
        single.as_secs_f64() * 1e3
    );
    println!(
        "  {n} lines, cold         {:>9.1} ms ({:.1} ms per line per core)",
        cold_t.as_secs_f64() * 1e3,
        cold_t.as_secs_f64() * 1e3 * cores as f64 / n as f64
    );
    println!(
        "  {n} lines, cached       {:>9.1} ms",
        warm_t.as_secs_f64() * 1e3
    );
}
