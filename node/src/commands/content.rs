//! `cat`, `get` and `ls`.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use serde::Deserialize;

use crate::cli::{CatArgs, GetArgs, LsArgs};
use crate::client::Client;
use crate::output::copy_to_stdout;
use crate::output::outln;

pub(crate) async fn cat(client: &Client, args: CatArgs) -> Result<()> {
    let mut query = vec![("arg", args.path), ("offset", args.offset.to_string())];
    if let Some(len) = args.length {
        query.push(("length", len.to_string()));
    }
    let res = client.call("cat", &query, None).await?;
    copy_to_stdout(Client::bytes(res)).await
}

pub(crate) async fn get(client: &Client, args: GetArgs) -> Result<()> {
    let default_name = args
        .path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(&args.path)
        .to_owned();
    let output = args.output.unwrap_or_else(|| PathBuf::from(default_name));
    let res = client
        .call("get", &[("arg", args.path.clone())], None)
        .await?;
    let reader = tokio_util::io::StreamReader::new(
        Client::bytes(res).map_err(|e| std::io::Error::other(format!("{e:#}"))),
    );
    let target = output.clone();
    tokio::task::spawn_blocking(move || {
        let reader = tokio_util::io::SyncIoBridge::new(reader);
        extract(reader, &target)
    })
    .await
    .context("extraction task failed")??;
    eprintln!("Saving file(s) to {}", output.display());
    Ok(())
}

/// Unpacks the tar the API sends: its first path component (the CID or name) becomes
/// `output`, which must not exist yet. Nothing is written outside `output`: entry paths must be
/// plain relative names, everything is created anew (never opened if it exists), and nothing is
/// written through a symlink.
fn extract(reader: impl std::io::Read, output: &Path) -> Result<()> {
    if std::fs::symlink_metadata(output).is_ok() {
        bail!("{} already exists", output.display());
    }
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        let raw = entry.path().context("entry path")?.into_owned();
        let mut parts = raw.components();
        parts.next();
        let mut dest = output.to_owned();
        for part in parts {
            match part {
                Component::Normal(p) => dest.push(p),
                _ => bail!("refusing archive entry {}: not a plain path", raw.display()),
            }
        }
        check_no_symlink_between(output, &dest)?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir(&dest)
                .with_context(|| format!("creating {}", dest.display()))?,
            tar::EntryType::Regular => {
                let mut file = std::fs::File::create_new(&dest)
                    .with_context(|| format!("creating {}", dest.display()))?;
                std::io::copy(&mut entry, &mut file)
                    .with_context(|| format!("writing {}", dest.display()))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .context("symlink target")?
                    .context("symlink without a target")?;
                std::os::unix::fs::symlink(&target, &dest)
                    .with_context(|| format!("creating symlink {}", dest.display()))?;
            }
            other => bail!("unexpected archive entry type {other:?}"),
        }
    }
    Ok(())
}

/// Fails if any existing path between `root` (exclusive) and `dest` (exclusive) is a symlink.
fn check_no_symlink_between(root: &Path, dest: &Path) -> Result<()> {
    let Ok(rest) = dest.strip_prefix(root) else {
        bail!("{} is outside {}", dest.display(), root.display());
    };
    let mut at = root.to_owned();
    let parents: Vec<_> = rest.components().collect();
    for part in parents.iter().take(parents.len().saturating_sub(1)) {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            bail!("refusing to write through symlink {}", at.display());
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct LsAnswer {
    #[serde(rename = "Objects")]
    objects: Vec<LsObject>,
}

#[derive(Debug, Deserialize)]
struct LsObject {
    #[serde(rename = "Hash")]
    hash: String,
    #[serde(rename = "Links")]
    links: Vec<LsLink>,
}

#[derive(Debug, Deserialize)]
struct LsLink {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Hash")]
    hash: String,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Type")]
    kind: u8,
}

pub(crate) async fn ls(client: &Client, args: LsArgs) -> Result<()> {
    let many = args.paths.len() > 1;
    let query: Vec<_> = args.paths.into_iter().map(|p| ("arg", p)).collect();
    let answer: LsAnswer = client.json("ls", &query).await?;
    for (i, object) in answer.objects.iter().enumerate() {
        if many {
            if i > 0 {
                outln!()?;
            }
            outln!("{}:", object.hash)?;
        }
        for link in &object.links {
            let slash = if link.kind == 1 { "/" } else { "" };
            outln!("{} {} {}{slash}", link.hash, link.size, link.name)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            // Write the raw name so that hostile paths reach the extractor unchanged.
            let name = h.as_old_mut();
            name.name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn extracts_under_the_output_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let data = tar_of(&[
            ("Qmroot/", tar::EntryType::Directory, b"", None),
            ("Qmroot/a.txt", tar::EntryType::Regular, b"hi", None),
            ("Qmroot/l", tar::EntryType::Symlink, b"", Some("a.txt")),
        ]);
        extract(data.as_slice(), &out).unwrap();
        assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"hi");
        assert_eq!(
            std::fs::read_link(out.join("l")).unwrap(),
            Path::new("a.txt")
        );
    }

    #[test]
    fn refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out2");
        let dotdot = tar_of(&[("r/../../evil", tar::EntryType::Regular, b"x", None)]);
        assert!(extract(dotdot.as_slice(), &out).is_err());
        let through_link = tar_of(&[
            ("r/", tar::EntryType::Directory, b"", None),
            ("r/l", tar::EntryType::Symlink, b"", Some("/tmp")),
            ("r/l/evil", tar::EntryType::Regular, b"x", None),
        ]);
        assert!(extract(through_link.as_slice(), &out).is_err());
        assert!(!Path::new("/tmp/evil").exists());
    }
}
