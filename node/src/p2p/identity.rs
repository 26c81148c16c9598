//! The node's libp2p identity: an ed25519 keypair in `<data_dir>/identity.key`, created on first
//! start with mode 0600. The file holds the key in libp2p's protobuf encoding (the form Kubo's
//! `PrivKey` config field also uses, base64-encoded there). The key is never logged; only the
//! peer ID derived from it is.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use libp2p::identity::Keypair;
use zeroize::Zeroizing;

/// Name of the key file inside the data dir.
pub(crate) const IDENTITY_FILE: &str = "identity.key";

/// Largest key file we read (an RSA-4096 key in protobuf is about 2.4 KB).
const MAX_KEY_FILE: u64 = 16 * 1024;

/// Loads the keypair from the data dir, creating a new ed25519 one if there is none.
pub(crate) fn load_or_create(data_dir: &Path) -> Result<Keypair> {
    let path = data_dir.join(IDENTITY_FILE);
    match std::fs::metadata(&path) {
        Ok(meta) => {
            if meta.len() > MAX_KEY_FILE {
                bail!(
                    "{} is {} bytes, too large for a key: move it away to create a new identity (a new peer ID)",
                    path.display(),
                    meta.len()
                );
            }
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "the identity key is readable by other users; chmod 600 it"
                );
            }
            let bytes = Zeroizing::new(
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            );
            Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not a valid libp2p private key ({e}): restore it, or move it away to create a new identity (a new peer ID)",
                    path.display()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes a new key atomically: a 0600 temporary file, synced, then renamed into place.
fn create(path: &Path) -> Result<Keypair> {
    let keypair = Keypair::generate_ed25519();
    let bytes = Zeroizing::new(
        keypair
            .to_protobuf_encoding()
            .context("encoding the new identity key")?,
    );
    let tmp = path.with_extension("key.tmp");
    // A leftover from a crash mid-write holds no identity anyone has seen.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", tmp.display())),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("creating {}", path.display()))?;
    if let Some(dir) = path.parent() {
        // The rename is durable once the directory is synced.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    tracing::info!(peer_id = %keypair.public().to_peer_id(), "created a new identity");
    Ok(keypair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let path = dir.path().join(IDENTITY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(first.public().try_into_ed25519().is_ok());
        let second = load_or_create(dir.path()).unwrap();
        assert_eq!(first.public(), second.public());
        assert!(!path.with_extension("key.tmp").exists());
    }

    #[test]
    fn garbage_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(IDENTITY_FILE);
        std::fs::write(&path, b"not a key").unwrap();
        let err = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a valid libp2p private key"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"not a key");
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_create(dir.path()).unwrap();
        let secret = key.clone().try_into_ed25519().unwrap().secret();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex_of(secret.as_ref())), "{shown}");
        assert!(
            !shown.contains(&format!("{:?}", secret.as_ref())),
            "{shown}"
        );
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
