//! Loading vectors.

use std::path::{Path, PathBuf};

use evident_core::{Hash, PublicKey};
use serde_json::Value;

/// `core/tests/vectors/<rel>`.
pub fn vectors_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(rel)
}

/// Every `*.json` file under `dir`, recursively, sorted, with its parsed JSON.
pub fn json_files(rel: &str) -> Vec<(String, Value)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("vector folder is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    let root = vectors_dir(rel);
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    paths.sort();
    assert!(!paths.is_empty(), "no vectors under {}", root.display());
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("vector is readable");
            let name = p
                .strip_prefix(&root)
                .expect("under root")
                .display()
                .to_string();
            (name, serde_json::from_str(&text).expect("vector is JSON"))
        })
        .collect()
}

pub fn json_file(rel: &str) -> Value {
    let text = std::fs::read_to_string(vectors_dir(rel)).expect("vector is readable");
    serde_json::from_str(&text).expect("vector is JSON")
}

pub fn keys(vector: &Value) -> Vec<PublicKey> {
    vector["public_keys_hex"]
        .as_array()
        .expect("public_keys_hex")
        .iter()
        .map(|k| PublicKey::from_hex(k.as_str().expect("hex string")).expect("valid key"))
        .collect()
}

/// A vector's base64 hash field. The transparency-dev vectors also hold byte strings that
/// are not 32 bytes (`""`, `"WrongLeaf"`): a [`Hash`] cannot hold them, so for Evident such
/// an input is refused before any verifier runs.
pub fn vector_hash(b64: &str) -> Result<Hash, evident_core::hash::HashError> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("vector hash is base64");
    Hash::from_slice(&bytes)
}

/// A root of a consistency vector. Some vectors use placeholder roots (`"don't care 2"`)
/// where the outcome depends only on whether the two roots are equal; a placeholder stands
/// in as `SHA-256(0xEE ‖ bytes)`, which keeps equal placeholders equal and different ones
/// different, and equals no real root of the vectors.
pub fn vector_root(b64: &str) -> Hash {
    use base64::Engine as _;
    vector_hash(b64).unwrap_or_else(|_| {
        let mut marked = vec![0xEE];
        marked.extend(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64"),
        );
        Hash::sha256(&marked)
    })
}
