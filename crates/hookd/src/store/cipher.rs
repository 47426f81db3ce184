//! Endpoint secrets at rest: sealed with XChaCha20-Poly1305 under the main secret.
//!
//! Each sealed value is bound to its row by associated data (the application and endpoint
//! ids), so a ciphertext copied into another row does not open. Sealed text is `v1.` followed by
//! the base64 of a random 24-byte nonce and the ciphertext.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

const VERSION: &str = "v1.";
const NONCE_BYTES: usize = 24;
/// The shortest main secret accepted: it is the root of every endpoint secret's protection.
pub const MIN_MAIN_SECRET_LEN: usize = 32;

/// Why a sealed secret could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    #[error("the sealed secret is malformed")]
    Malformed,
    #[error("the sealed secret does not open with this main secret for this row")]
    WrongKeyOrRow,
}

/// Seals and opens endpoint secrets.
pub struct SecretCipher {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretCipher(redacted)")
    }
}

impl SecretCipher {
    /// A cipher keyed by the main secret (any string of at least 32 characters; the key is its
    /// SHA-256 under a fixed context, so operators may use any random text).
    pub fn from_main_secret(main_secret: &str) -> Result<Self, String> {
        if main_secret.len() < MIN_MAIN_SECRET_LEN {
            return Err(format!(
                "HOOKD_MAIN_SECRET must be at least {MIN_MAIN_SECRET_LEN} characters long"
            ));
        }
        let mut hasher = Sha256::new();
        hasher.update(b"hookd endpoint secrets v1\0");
        hasher.update(main_secret.as_bytes());
        let key = hasher.finalize();
        Ok(Self {
            aead: XChaCha20Poly1305::new(&key),
        })
    }

    /// The main secret kept in a key file beside a SQLite database, created on first use.
    pub fn from_key_file(path: &Path) -> Result<Self, String> {
        if !path.exists() {
            let mut random = [0u8; 32];
            OsRng.fill_bytes(&mut random);
            write_private(path, &BASE64.encode(random))
                .map_err(|e| format!("cannot create the key file {}: {e}", path.display()))?;
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
        Self::from_main_secret(text.trim())
    }

    /// Seals `plaintext` for the row named by `row`.
    pub fn seal(&self, plaintext: &str, row: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: row.as_bytes(),
        };
        // Encryption fails only for inputs past the cipher's limits (gigabytes).
        let sealed = self
            .aead
            .encrypt(&nonce, payload)
            .expect("a secret is far below the cipher's size limit");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{VERSION}{}", BASE64.encode(bytes))
    }

    /// Whether `stored` is in the sealed form (the first SQLite releases kept secrets in clear).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(VERSION)
    }

    /// Opens what [`seal`](Self::seal) made for the same row.
    pub fn open(&self, sealed: &str, row: &str) -> Result<String, CipherError> {
        let encoded = sealed.strip_prefix(VERSION).ok_or(CipherError::Malformed)?;
        let bytes = BASE64.decode(encoded).map_err(|_| CipherError::Malformed)?;
        if bytes.len() <= NONCE_BYTES {
            return Err(CipherError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: row.as_bytes(),
        };
        let plain = self
            .aead
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| CipherError::WrongKeyOrRow)?;
        String::from_utf8(plain).map_err(|_| CipherError::Malformed)
    }
}

/// The associated data binding an endpoint's secrets to its row.
pub fn endpoint_row(app_id: &str, endpoint_id: &str) -> String {
    format!("endpoint:{app_id}:{endpoint_id}")
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> SecretCipher {
        SecretCipher::from_main_secret("an example main secret of enough length").expect("cipher")
    }

    #[test]
    fn seals_and_opens_for_the_same_row() {
        let c = cipher();
        let sealed = c.seal("whsec_abc", "endpoint:app_1:ep_1");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(
            c.open(&sealed, "endpoint:app_1:ep_1").as_deref(),
            Ok("whsec_abc")
        );
    }

    #[test]
    fn a_ciphertext_does_not_open_in_another_row_or_under_another_key() {
        let c = cipher();
        let sealed = c.seal("whsec_abc", "endpoint:app_1:ep_1");
        assert_eq!(
            c.open(&sealed, "endpoint:app_1:ep_2"),
            Err(CipherError::WrongKeyOrRow)
        );
        let other = SecretCipher::from_main_secret("another main secret, also long enough")
            .expect("cipher");
        assert_eq!(
            other.open(&sealed, "endpoint:app_1:ep_1"),
            Err(CipherError::WrongKeyOrRow)
        );
        assert_eq!(
            c.open("whsec_abc", "endpoint:app_1:ep_1"),
            Err(CipherError::Malformed)
        );
    }

    #[test]
    fn short_main_secrets_are_refused() {
        assert!(SecretCipher::from_main_secret("short").is_err());
    }

    #[test]
    fn key_files_are_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hookd.db.key");
        let first = SecretCipher::from_key_file(&path).expect("created");
        let sealed = first.seal("whsec_x", "r");
        let second = SecretCipher::from_key_file(&path).expect("reused");
        assert_eq!(second.open(&sealed, "r").as_deref(), Ok("whsec_x"));
    }
}
