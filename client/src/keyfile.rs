//! Signing key files: an Ed25519 seed as 64 hex digits in a file only its owner may read
//! (mode 0600), its public key beside it in `FILE.pub`; and the check every file holding a
//! secret (a token, a TLS key) must pass.

use std::path::{Path, PathBuf};

use evident_core::{PublicKey, SigningKey};

use crate::ClientError;

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The private key file (mode 0600).
    pub private_key: PathBuf,
    /// The public key file, `FILE.pub`.
    pub public_key_file: PathBuf,
    /// The public key.
    pub public_key: PublicKey,
}

/// Creates a new signing key in `out` (which must not exist; mode 0600) and its public key
/// in `out.pub`.
pub fn generate(out: &Path) -> Result<GeneratedKey, ClientError> {
    let pub_path = PathBuf::from(format!("{}.pub", out.display()));
    if pub_path.symlink_metadata().is_ok() {
        return Err(ClientError::Invalid(format!(
            "{} already exists: remove it, or choose another --out",
            pub_path.display()
        )));
    }
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    let key = SigningKey::from_bytes(&seed);
    let public = PublicKey::from_signing_key(&key);
    write_secret(out, &format!("{}\n", hex::encode(seed)))
        .map_err(|e| ClientError::input(format!("writing {}", out.display()), e))?;
    // A new file: never through a link or over a file planted at that name.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&pub_path)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, format!("{}\n", public.to_hex()).as_bytes())
        })
        .map_err(|e| ClientError::input(format!("writing {}", pub_path.display()), e))?;
    Ok(GeneratedKey {
        private_key: out.to_owned(),
        public_key_file: pub_path,
        public_key: public,
    })
}

/// Writes `text` to a new file `path` that only its owner may read (mode 0600 on Unix),
/// and syncs it. Fails if the file exists.
pub fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Reads a signing key file (64 hex digits, as [`generate`] writes it). As ssh does with
/// its keys, a file its group or others may read is refused (with `chmod 600 FILE`): a key
/// others could read is no longer only its holder's.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, ClientError> {
    use std::io::Read as _;
    let reading = |e| ClientError::input(format!("reading signing key {}", path.display()), e);
    // The mode of the file read, not of whatever the path names a moment later.
    let mut file = std::fs::File::open(path).map_err(reading)?;
    check_private_mode("signing key", path, &file.metadata().map_err(reading)?)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(reading)?;
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            ClientError::Invalid(format!(
                "{} is not a signing key: expected 64 hex digits (made by `evident keygen`)",
                path.display()
            ))
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads several signing key files, e.g. the administrators' keys that sign a registry
/// change together.
pub fn read_signing_keys(paths: &[PathBuf]) -> Result<Vec<SigningKey>, ClientError> {
    paths.iter().map(|p| read_signing_key(p)).collect()
}

/// A public key given as 64 hex digits or as a file holding them; `name` says which
/// argument it is, in errors.
pub fn read_public_key(name: &str, value: &str) -> Result<PublicKey, ClientError> {
    let text = if Path::new(value).is_file() {
        std::fs::read_to_string(value)
            .map_err(|e| ClientError::input(format!("{name}: reading {value}"), e))?
    } else {
        value.to_owned()
    };
    PublicKey::from_hex(text.trim()).map_err(|e| ClientError::input(format!("{name} {value:?}"), e))
}

/// A signer key given as 64 hex digits (Ed25519), a PEM `PUBLIC KEY` (ECDSA P-256 or P-384
/// as `cosign generate-key-pair` writes `cosign.pub`, or Ed25519), or a file holding either;
/// returned in the form registry changes take it.
pub fn read_signer_key(name: &str, value: &str) -> Result<String, ClientError> {
    let text = if Path::new(value).is_file() {
        std::fs::read_to_string(value)
            .map_err(|e| ClientError::input(format!("{name}: reading {value}"), e))?
    } else {
        value.to_owned()
    };
    let credential = evident_core::registry::parse_signer_key("public_key", &text)
        .map_err(|e| ClientError::input(format!("{name} {value:?}"), e))?;
    Ok(credential.key_text().expect("a parsed key has a key text"))
}

/// Checks that a file holding a secret (a token, a TLS key) is readable by its owner only;
/// `name` says which argument it is, in errors. Not checked off Unix.
pub fn check_private_file(name: &str, path: &Path) -> Result<(), ClientError> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| ClientError::input(format!("{name}: reading {}", path.display()), e))?;
    check_private_mode(name, path, &metadata)
}

/// [`check_private_file`] of a file already open, by its metadata.
fn check_private_mode(
    name: &str,
    path: &Path,
    metadata: &std::fs::Metadata,
) -> Result<(), ClientError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ClientError::Invalid(format!(
                "{name}: {} has mode {mode:o}; a secret must be readable by its owner only \
                 (chmod 600 {})",
                path.display(),
                path.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("evident-keyfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn keygen_never_writes_over_or_through_an_existing_public_key_file() {
        let dir = scratch("planted");
        let out = dir.join("ci.key");
        std::fs::write(dir.join("ci.key.pub"), "planted\n").unwrap();
        let error = generate(&out).unwrap_err().to_string();
        assert!(error.contains("ci.key.pub already exists"), "{error}");
        assert!(
            !out.exists(),
            "no private key is left without its public half"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("ci.key.pub")).unwrap(),
            "planted\n"
        );
    }

    #[test]
    fn a_generated_key_reads_back() {
        let dir = scratch("generate");
        let out = dir.join("ci.key");
        let made = generate(&out).unwrap();
        assert_eq!(made.public_key_file, dir.join("ci.key.pub"));
        let key = read_signing_key(&out).unwrap();
        assert_eq!(PublicKey::from_signing_key(&key), made.public_key);
        let public = read_public_key("--public-key", made.public_key_file.to_str().unwrap());
        assert_eq!(public.unwrap(), made.public_key);
        check_private_file("--key", &out).unwrap();
        // Never overwritten.
        assert!(generate(&out).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_key_files_are_refused() {
        let dir = scratch("bad");
        let path = dir.join("bad.key");
        write_secret(&path, "not hex\n").unwrap();
        let error = read_signing_key(&path).unwrap_err().to_string();
        assert!(
            error.ends_with(
                "is not a signing key: expected 64 hex digits (made by `evident keygen`)"
            )
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let error = check_private_file("--token", &path)
                .unwrap_err()
                .to_string();
            assert!(error.contains("has mode 644"), "{error}");
        }
        assert!(read_public_key("--public-key", "abc").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_signing_key_others_may_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = scratch("mode");
        let path = dir.join("ci.key");
        generate(&path).unwrap();
        for mode in [0o640, 0o604, 0o644, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = read_signing_key(&path).unwrap_err().to_string();
            assert!(
                error.contains(&format!("has mode {mode:o}"))
                    && error.ends_with(&format!("(chmod 600 {})", path.display())),
                "{error}"
            );
            let error = read_signing_keys(std::slice::from_ref(&path)).unwrap_err();
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        read_signing_key(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
