//! The platform's encrypted SIP passwords (`phone_lines.sip_password`), decrypted exactly as
//! the platform encrypts them, with RustCrypto's maintained crates (`aes-gcm`, `pbkdf2`, `sha2`)
//! rather than hand-written primitives.
//!
//! The platform's scheme: AES-256-GCM with a 12-byte random IV; the key is
//! PBKDF2-HMAC-SHA256(password = the 32 bytes hex-decoded from `ENCRYPTION_KEY`, salt = the
//! phone line's `id` as UTF-8, 100,000 iterations, 32 bytes); the column holds
//! `iv:authTag:ciphertext`, each standard base64. A value without exactly two `:` is a legacy
//! plaintext password, used as it is.
//!
//! Cost: one PBKDF2 derivation per line (~30-50 ms), so [`decrypt_all`] derives on every core
//! and [`derived_key`] remembers each line's key for the rest of the process (keyed by the
//! line id and a hash of the master key, so a rotated `ENCRYPTION_KEY` derives again).
//!
//! The vault ([`remember`], [`recall`]): a plan never carries a password, only a marker naming
//! the line (`{"fromPlatform": "<line id>"}`); apply finds the value here, put there when the
//! inventory was read in the same process. Nothing here prints a key or a password: errors
//! name the line, never a value.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, RwLock};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::model::secret::Secret;

/// The environment variable holding the platform's master key (64 hex characters).
pub(crate) const KEY_ENV: &str = "ENCRYPTION_KEY";
/// The platform's PBKDF2 iteration count.
pub(crate) const ITERATIONS: u32 = 100_000;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// A stored value longer than this is refused unread (a column is tenant data).
const MAX_STORED: usize = 4096;

/// Why a password cannot be decrypted. Never holds a key or a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("`{KEY_ENV}` is not set: the platform's SIP passwords cannot be decrypted")]
    MissingKey,
    #[error("`{KEY_ENV}` is not 64 hexadecimal characters (32 bytes)")]
    BadKey,
    #[error("the stored password is not `iv:authTag:ciphertext` in base64 ({0})")]
    Malformed(&'static str),
    #[error("the stored password does not decrypt with this `{KEY_ENV}` (wrong key, or the value was altered)")]
    WrongKey,
    #[error("the decrypted password is not UTF-8 text")]
    NotText,
}

/// The platform's master key, read from the environment.
#[derive(Clone)]
pub struct MasterKey {
    bytes: Secret<[u8; 32]>,
    /// Tells master keys apart in the cache without keeping another copy of the key.
    id: [u8; 32],
}

impl MasterKey {
    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn parse(hex_text: &str) -> Result<MasterKey, CryptoError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_text.trim(), &mut bytes).map_err(|_| CryptoError::BadKey)?;
        let id = Sha256::digest(bytes).into();
        Ok(MasterKey {
            bytes: Secret::new(bytes),
            id,
        })
    }

    /// `ENCRYPTION_KEY` from the environment.
    pub fn from_env() -> Result<MasterKey, CryptoError> {
        match std::env::var(KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => MasterKey::parse(&v),
            _ => Err(CryptoError::MissingKey),
        }
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(sensitive)")
    }
}

/// Whether `stored` is in the encrypted form (exactly two `:`), rather than legacy plaintext.
pub(crate) fn is_encrypted(stored: &str) -> bool {
    stored.bytes().filter(|b| *b == b':').count() == 2
}

type Cache = Mutex<HashMap<([u8; 32], String), Secret<[u8; 32]>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The AES key of line `line_id`: PBKDF2-HMAC-SHA256 of the master key, salted with the id;
/// derived once per process and line.
pub(crate) fn derived_key(master: &MasterKey, line_id: &str) -> Secret<[u8; 32]> {
    let slot = (master.id, line_id.to_string());
    if let Some(k) = cache().lock().ok().and_then(|c| c.get(&slot).cloned()) {
        return k;
    }
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(
        master.bytes.expose(),
        line_id.as_bytes(),
        ITERATIONS,
        &mut out,
    );
    let key = Secret::new(out);
    if let Ok(mut c) = cache().lock() {
        c.insert(slot, key.clone());
    }
    key
}

/// The password of line `line_id` from its stored form: decrypted, or as it is when legacy
/// plaintext. `master` is needed only for an encrypted value.
pub fn decrypt(
    master: Option<&MasterKey>,
    line_id: &str,
    stored: &str,
) -> Result<Secret<String>, CryptoError> {
    if !is_encrypted(stored) {
        return Ok(Secret::new(stored.to_string()));
    }
    if stored.len() > MAX_STORED {
        return Err(CryptoError::Malformed("too long"));
    }
    let master = master.ok_or(CryptoError::MissingKey)?;
    let mut parts = stored.split(':');
    let mut part = |what: &'static str| {
        STANDARD
            .decode(parts.next().unwrap_or("").trim())
            .map_err(|_| CryptoError::Malformed(what))
    };
    let (iv, tag, mut sealed) = (part("iv")?, part("authTag")?, part("ciphertext")?);
    if iv.len() != IV_LEN {
        return Err(CryptoError::Malformed("the iv is not 12 bytes"));
    }
    if tag.len() != TAG_LEN {
        return Err(CryptoError::Malformed("the authTag is not 16 bytes"));
    }
    let key = derived_key(master, line_id);
    let cipher = Aes256Gcm::new(key.expose().into());
    // aes-gcm expects the tag after the ciphertext, as Node's getAuthTag() returns it apart.
    sealed.extend_from_slice(&tag);
    let plain = cipher
        .decrypt(Nonce::from_slice(&iv), sealed.as_slice())
        .map_err(|_| CryptoError::WrongKey)?;
    String::from_utf8(plain)
        .map(Secret::new)
        .map_err(|_| CryptoError::NotText)
}

/// [`decrypt`] for many lines (`(line id, stored)`), the derivations spread over the cores:
/// 1,000 lines cost 1,000 PBKDF2 runs once per process. Results in input order.
pub fn decrypt_all(
    master: Option<&MasterKey>,
    lines: &[(String, String)],
) -> Vec<Result<Secret<String>, CryptoError>> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(lines.len().max(1));
    if workers <= 1 {
        return lines.iter().map(|(id, s)| decrypt(master, id, s)).collect();
    }
    let chunk = lines.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = lines
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(id, s)| decrypt(master, id, s))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(CryptoError::NotText); chunk])
            })
            .collect()
    })
}

type Vault = RwLock<HashMap<String, Secret<String>>>;

fn vault() -> &'static Vault {
    static VAULT: OnceLock<Vault> = OnceLock::new();
    VAULT.get_or_init(Default::default)
}

/// Keeps line `line_id`'s decrypted password for this process, for apply to send.
pub fn remember(line_id: &str, password: Secret<String>) {
    if let Ok(mut v) = vault().write() {
        v.insert(line_id.to_string(), password);
    }
}

/// The password [`remember`]ed for line `line_id`.
pub(crate) fn recall(line_id: &str) -> Option<Secret<String>> {
    vault().read().ok()?.get(line_id).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    /// Encrypts as the platform does (Node: createCipheriv('aes-256-gcm', key, iv)).
    fn platform_encrypt(master: &MasterKey, line_id: &str, password: &str) -> String {
        let key = derived_key(master, line_id);
        let cipher = Aes256Gcm::new(key.expose().into());
        let iv = [7u8; 12];
        let mut sealed = cipher
            .encrypt(Nonce::from_slice(&iv), password.as_bytes())
            .unwrap();
        let tag = sealed.split_off(sealed.len() - TAG_LEN);
        format!(
            "{}:{}:{}",
            STANDARD.encode(iv),
            STANDARD.encode(tag),
            STANDARD.encode(sealed)
        )
    }

    #[test]
    fn round_trip_legacy_and_wrong_key() {
        let m = MasterKey::parse(KEY).unwrap();
        let stored = platform_encrypt(&m, "line-1", "s3cr3t-pw");
        assert_eq!(
            decrypt(Some(&m), "line-1", &stored).unwrap().expose(),
            "s3cr3t-pw"
        );
        // The salt is the line id: another line's key does not open it.
        assert_eq!(
            decrypt(Some(&m), "line-2", &stored).unwrap_err(),
            CryptoError::WrongKey
        );
        let other = MasterKey::parse(&KEY.replace('0', "1")).unwrap();
        assert_eq!(
            decrypt(Some(&other), "line-1", &stored).unwrap_err(),
            CryptoError::WrongKey
        );
        assert_eq!(
            decrypt(None, "line-1", &stored).unwrap_err(),
            CryptoError::MissingKey
        );
        // Legacy plaintext: not exactly two colons.
        assert_eq!(decrypt(None, "l", "plain").unwrap().expose(), "plain");
        assert_eq!(decrypt(None, "l", "a:b:c:d").unwrap().expose(), "a:b:c:d");
        assert!(matches!(
            decrypt(Some(&m), "l", "x:y:z"),
            Err(CryptoError::Malformed(_))
        ));
        let all = decrypt_all(
            Some(&m),
            &[
                ("line-1".into(), stored.clone()),
                ("line-2".into(), stored),
                ("line-3".into(), "legacy".into()),
            ],
        );
        assert_eq!(all[0].as_ref().unwrap().expose(), "s3cr3t-pw");
        assert!(all[1].is_err());
        assert_eq!(all[2].as_ref().unwrap().expose(), "legacy");
    }

    #[test]
    fn keys_are_checked_and_never_printed() {
        assert_eq!(MasterKey::parse("abc").unwrap_err(), CryptoError::BadKey);
        assert_eq!(
            MasterKey::parse(&"g".repeat(64)).unwrap_err(),
            CryptoError::BadKey
        );
        let m = MasterKey::parse(KEY).unwrap();
        assert!(!format!("{m:?}").contains("0011"));
        for e in [
            CryptoError::BadKey,
            CryptoError::WrongKey,
            CryptoError::MissingKey,
        ] {
            assert!(!e.to_string().contains(KEY));
        }
    }
}
