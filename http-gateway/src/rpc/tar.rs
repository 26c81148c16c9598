//! Just enough tar to stream a UnixFS tree: headers built with the `tar` crate, content
//! streamed through between them, GNU long-name entries for paths over 100 bytes.

use bytes::Bytes;

use super::{RpcError, RpcResult};

/// What a tar entry holds.
pub(crate) enum Entry<'a> {
    File(u64),
    Directory,
    Symlink(&'a [u8]),
}

const BLOCK: usize = 512;

/// The header block(s) of an entry at `path`.
pub(crate) fn header(path: &str, entry: Entry<'_>) -> RpcResult<Bytes> {
    let mut out = Vec::with_capacity(BLOCK);
    let mut h = ::tar::Header::new_gnu();
    let (kind, mode, size) = match entry {
        Entry::File(size) => (::tar::EntryType::Regular, 0o644, size),
        Entry::Directory => (::tar::EntryType::Directory, 0o755, 0),
        Entry::Symlink(target) => {
            let target =
                std::path::Path::new(std::str::from_utf8(target).map_err(|_| {
                    RpcError::failed(format!("{path}: symlink target is not UTF-8"))
                })?);
            if h.set_link_name(target).is_err() {
                return Err(RpcError::failed(format!("{path}: symlink target too long")));
            }
            (::tar::EntryType::Symlink, 0o777, 0)
        }
    };
    let name = match kind {
        ::tar::EntryType::Directory => format!("{path}/"),
        _ => path.to_owned(),
    };
    if name.len() > 100 {
        long_name(&mut out, &name);
        let short: String = name.chars().take(90).collect();
        set_path(&mut h, &short)?;
    } else {
        set_path(&mut h, &name)?;
    }
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    Ok(out.into())
}

fn set_path(h: &mut ::tar::Header, name: &str) -> RpcResult<()> {
    // Names were checked by the exporter; the crate's own check is a second guard.
    h.set_path(name)
        .map_err(|e| RpcError::failed(format!("cannot put {name:?} in a tar: {e}")))
}

/// A GNU `././@LongLink` entry carrying `name`.
fn long_name(out: &mut Vec<u8>, name: &str) {
    let mut h = ::tar::Header::new_gnu();
    let data = [name.as_bytes(), b"\0"].concat();
    if let Some(g) = h.as_gnu_mut() {
        g.name[..13].copy_from_slice(b"././@LongLink");
    }
    h.set_entry_type(::tar::EntryType::GNULongName);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(&data);
    out.extend_from_slice(&padding(data.len() as u64));
}

/// Zero bytes completing an entry of `size` bytes to a whole block.
pub(crate) fn padding(size: u64) -> Bytes {
    let rest = (size % BLOCK as u64) as usize;
    Bytes::from(vec![0u8; if rest == 0 { 0 } else { BLOCK - rest }])
}

/// The end-of-archive marker: two zero blocks.
pub(crate) fn end() -> Bytes {
    Bytes::from(vec![0u8; 2 * BLOCK])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_reads_back_with_the_tar_crate() {
        let long = format!("root/{}", "d".repeat(150));
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&header("root", Entry::Directory).unwrap());
        bytes.extend_from_slice(&header("root/a.txt", Entry::File(5)).unwrap());
        bytes.extend_from_slice(b"hello");
        bytes.extend_from_slice(&padding(5));
        bytes.extend_from_slice(&header(&long, Entry::File(0)).unwrap());
        bytes.extend_from_slice(&header("root/l", Entry::Symlink(b"a.txt")).unwrap());
        bytes.extend_from_slice(&end());
        let mut archive = ::tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut content = String::new();
            std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
            seen.push((path, content));
        }
        assert_eq!(seen[0].0, "root/");
        assert_eq!(seen[1], ("root/a.txt".to_owned(), "hello".to_owned()));
        assert_eq!(seen[2].0, long);
        assert_eq!(seen[3].0, "root/l");
    }
}
