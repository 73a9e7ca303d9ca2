//! The Ed25519 key that signs checkpoints, and public key files.
//!
//! The runtime generates its signing key on first use and keeps it at
//! `<data-dir>/keys/audit-signing.key`, created with mode 0600 so that only
//! its owner can read it. The file holds the 32-byte secret seed in hex on
//! one line. The public key is written beside it as `audit-signing.pub` and
//! printed by `warden audit public-key`; its format is one line,
//! `ed25519 <64 hex digits>`, which an auditor stores where the host cannot
//! rewrite it and later hands to `warden audit verify --public-key`.
//!
//! A key is named in checkpoints by its [`PublicKey::key_id`]: the first 8 bytes of the
//! sha256 of the public key, so that a verifier can say "signed by key X,
//! expected key Y" instead of just "bad signature".

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// File name of the private key under `<data-dir>/keys/`.
pub const SIGNING_KEY_FILE: &str = "audit-signing.key";
/// File name of the public key under `<data-dir>/keys/`.
pub const PUBLIC_KEY_FILE: &str = "audit-signing.pub";
/// First word of a public key file.
const PUBLIC_KEY_TAG: &str = "ed25519";

/// A key file could not be read, written or understood.
#[derive(Debug, Error)]
pub enum KeyError {
    /// An I/O operation on a key file failed.
    #[error("key file {path}: cannot {action}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a key in the expected format.
    #[error("key file {path} is not a warden audit key: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The private key file can be read by others.
    #[error("key file {path} is readable by other users (mode {mode:o}); run `chmod 600` on it")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The operating system gave no randomness for a new key.
    #[error("cannot generate an audit signing key: no randomness from the OS ({0})")]
    Random(String),
}

/// The directory holding the key pair.
pub fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

/// The checkpoint signer: the runtime's Ed25519 key.
pub struct Signer {
    key: SigningKey,
    public: PublicKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Signer")
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads the signing key under `data_dir`, generating and storing a new
    /// one (mode 0600) when there is none.
    ///
    /// # Errors
    ///
    /// Fails when the key file cannot be read or written, is malformed, or is
    /// readable by other users.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, KeyError> {
        let dir = keys_dir(data_dir);
        let path = dir.join(SIGNING_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                check_private_mode(&path)?;
                let mut seed = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| KeyError::Malformed {
                    path: path.clone(),
                    reason: "expected 64 hex digits".into(),
                })?;
                let signer = Self::from_seed(&seed);
                signer.write_public(&dir)?;
                Ok(signer)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(&dir, &path),
            Err(source) => Err(KeyError::Io {
                path,
                action: "read",
                source,
            }),
        }
    }

    /// A signer from a 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let public = PublicKey(key.verifying_key());
        Self { key, public }
    }

    fn create(dir: &Path, path: &Path) -> Result<Self, KeyError> {
        let io = |action, source| KeyError::Io {
            path: path.to_owned(),
            action,
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;

        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            // Created 0600 in one step, so that the secret is never
            // readable by others, not even between a create and a chmod.
            options.mode(0o600);
        }
        let mut file = match options.open(path) {
            Ok(file) => file,
            // Another process created it first: use that key, never two.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Self::load_or_create(dir.parent().unwrap_or(dir));
            }
            Err(e) => return Err(io("create", e)),
        };
        file.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io("write", e))?;
        let signer = Self::from_seed(&seed);
        signer.write_public(dir)?;
        tracing::info!(key_id = %signer.public.key_id(), "generated audit signing key");
        Ok(signer)
    }

    fn write_public(&self, dir: &Path) -> Result<(), KeyError> {
        let path = dir.join(PUBLIC_KEY_FILE);
        let text = self.public.to_file_text();
        if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
            return Ok(());
        }
        std::fs::write(&path, text).map_err(|source| KeyError::Io {
            path,
            action: "write",
            source,
        })
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

#[cfg(unix)]
fn check_private_mode(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|source| KeyError::Io {
            path: path.to_owned(),
            action: "read metadata of",
            source,
        })?
        .permissions()
        .mode();
    // A key others could read is a key others could sign with: refuse it
    // rather than sign checkpoints anyone may have forged.
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

/// An Ed25519 public key that checks checkpoint signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The key's short id: hex of the first 8 bytes of sha256 of the key.
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// The one-line form written to public key files.
    pub fn to_file_text(&self) -> String {
        format!("{PUBLIC_KEY_TAG} {}\n", self.to_hex())
    }

    /// Parses the one-line form, `ed25519 <64 hex digits>`.
    ///
    /// # Errors
    ///
    /// Returns what is wrong with `text`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut words = text.split_whitespace();
        let (Some(tag), Some(key), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "expected one line `{PUBLIC_KEY_TAG} <64 hex digits>`"
            ));
        };
        if tag != PUBLIC_KEY_TAG {
            return Err(format!("expected `{PUBLIC_KEY_TAG}`, found {tag:?}"));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(key, &mut bytes)
            .map_err(|_| "the key is not 64 hex digits".to_owned())?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| "the key is not a valid Ed25519 point".to_owned())
    }

    /// Reads a public key file.
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be read or does not hold a public key.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            action: "read",
            source,
        })?;
        Self::parse(&text).map_err(|reason| KeyError::Malformed {
            path: path.to_owned(),
            reason,
        })
    }

    /// The public key stored beside the signing key under `data_dir`.
    ///
    /// # Errors
    ///
    /// Fails when there is no such file or it is malformed.
    pub fn read_from_data_dir(data_dir: &Path) -> Result<Self, KeyError> {
        Self::read(&keys_dir(data_dir).join(PUBLIC_KEY_FILE))
    }

    /// Whether `signature` is this key's signature of `message`. Uses
    /// strict verification, which refuses the malleable and small-order
    /// forms that plain Ed25519 verification lets through.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_private_and_its_public_half_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(keys_dir(dir.path()).join(SIGNING_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Signer::load_or_create(dir.path()).unwrap();
        assert_eq!(signer.public_key(), again.public_key());
        let public = PublicKey::read_from_data_dir(dir.path()).unwrap();
        assert_eq!(&public, signer.public_key());

        let sig = signer.sign(b"hello");
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellO", &sig));
    }

    #[test]
    fn malformed_public_keys_are_refused_with_a_reason() {
        for text in ["", "ed25519", "rsa abcd", "ed25519 zz", "ed25519 00 extra"] {
            assert!(PublicKey::parse(text).is_err(), "{text:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_signing_key_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        Signer::load_or_create(dir.path()).unwrap();
        let path = keys_dir(dir.path()).join(SIGNING_KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Signer::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
