//! Signed results for the shared cache, as Nix's binary caches do it: whoever pushes signs
//! each result with an ed25519 key, and a project that lists `[cache] trusted_keys` accepts
//! from the remote only results signed by one of them.
//!
//! What is signed is the result, not the manifest file: the key (which binds the stage's
//! components, verified on fetch) and every output's name, file, object hash, content hash and
//! size. Two honest machines computing the same key sign the same message, so either one's
//! signature vouches for the manifest that won the create-if-absent race. Keys are written
//! `ed25519:HEX` (public, 32 bytes) and `ed25519-secret:HEX` (the 32-byte seed).

use std::fmt::Write as _;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::manifest::Manifest;

const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "ed25519-secret:";

/// A key that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{text}` is not valid: {why} (expected `{prefix}` and 64 hex digits; `pipeline keygen` makes a pair)")]
pub struct KeyError {
    /// Which key.
    pub what: &'static str,
    /// The text as given, shortened.
    pub text: String,
    /// Why.
    pub why: String,
    /// The prefix expected.
    pub prefix: &'static str,
}

fn parse_hex32(text: &str, prefix: &'static str, what: &'static str) -> Result<[u8; 32], KeyError> {
    let shown: String = text.chars().take(24).collect();
    let err = |why: &str| KeyError {
        what,
        text: if text.len() > 24 {
            format!("{shown}...")
        } else {
            shown.clone()
        },
        why: why.to_owned(),
        prefix,
    };
    let hex = text
        .trim()
        .strip_prefix(prefix)
        .ok_or_else(|| err("wrong prefix"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err("not 64 hex digits"));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| err("not hex"))?;
    }
    Ok(out)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// A public key that results may be signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey(VerifyingKey);

impl TrustedKey {
    /// Reads `ed25519:HEX`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = parse_hex32(text, PUBLIC_PREFIX, "trusted key")?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| KeyError {
                what: "trusted key",
                text: text.chars().take(24).collect(),
                why: "not a point on the curve".into(),
                prefix: PUBLIC_PREFIX,
            })
    }

    /// The key's id in the remote layout: its hex digits.
    pub fn id(&self) -> String {
        to_hex(self.0.as_bytes())
    }

    /// Whether `signature` (hex) signs `manifest` with this key.
    pub fn verifies(&self, manifest: &Manifest, signature: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(signature) else {
            return false;
        };
        let text = text.trim();
        if text.len() != 128 {
            return false;
        }
        let mut bytes = [0u8; 64];
        for (i, byte) in bytes.iter_mut().enumerate() {
            match u8::from_str_radix(text.get(2 * i..2 * i + 2).unwrap_or("zz"), 16) {
                Ok(b) => *byte = b,
                Err(_) => return false,
            }
        }
        self.0
            .verify(&signed_message(manifest), &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

impl std::fmt::Display for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", self.id())
    }
}

/// The key this machine signs its pushes with (`PIPELINE_SIGNING_KEY`).
pub struct SigningIdentity(SigningKey);

impl SigningIdentity {
    /// Reads `ed25519-secret:HEX`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        parse_hex32(text, SECRET_PREFIX, "PIPELINE_SIGNING_KEY")
            .map(|seed| Self(SigningKey::from_bytes(&seed)))
    }

    /// A new random key pair.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The public half.
    pub fn public(&self) -> TrustedKey {
        TrustedKey(self.0.verifying_key())
    }

    /// The secret half, as `PIPELINE_SIGNING_KEY` takes it.
    pub fn secret_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", to_hex(&self.0.to_bytes()))
    }

    /// The signature of `manifest`, as hex.
    pub fn sign(&self, manifest: &Manifest) -> String {
        to_hex(&self.0.sign(&signed_message(manifest)).to_bytes())
    }
}

/// What a signature covers (see the module docs).
fn signed_message(manifest: &Manifest) -> Vec<u8> {
    let mut text = format!("pipeline result signature v1\n{}\n", manifest.key);
    for (name, r) in &manifest.outputs {
        let _ = writeln!(
            text,
            "{name}\t{}\t{}\t{}\t{}",
            r.file, r.object, r.content, r.size
        );
    }
    text.into_bytes()
}
