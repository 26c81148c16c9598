//! The CLI's standard output. A reader that goes away early (`stargate id | head -1`) ends the
//! command quietly, as SIGPIPE ends a Unix tool, instead of a panic (`println!`) or an error.

use std::io::Write;

/// Standard output was closed by its reader; `main` exits quietly on it.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub(crate) struct StdoutClosed;

/// The error for a failed write to standard output.
pub(crate) fn write_failed(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(e).context("writing to standard output")
    }
}

/// Whether `e` comes from standard output having been closed.
pub(crate) fn is_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.is::<StdoutClosed>())
}

/// One line on standard output; what [`outln!`] calls.
pub(crate) fn line(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    with_newline(|out| out.write_fmt(args))
}

/// `bytes` as they are, then a newline, on standard output.
pub(crate) fn bytes_line(bytes: &[u8]) -> anyhow::Result<()> {
    with_newline(|out| out.write_all(bytes))
}

/// What `write` puts on standard output, then a newline (which flushes it: stdout is
/// line-buffered).
fn with_newline(
    write: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    write(&mut out)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(write_failed)
}

/// `println!` that returns an error instead of panicking when standard output fails.
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes a stream of byte chunks to stdout.
pub(crate) async fn copy_to_stdout(
    mut chunks: impl futures::Stream<Item = anyhow::Result<bytes::Bytes>> + Unpin,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let mut out = tokio::io::stdout();
    while let Some(chunk) = chunks.next().await {
        out.write_all(&chunk?).await.map_err(write_failed)?;
    }
    out.flush().await.map_err(write_failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_broken_pipe_counts_as_closed() {
        let closed = write_failed(std::io::ErrorKind::BrokenPipe.into()).context("printing peers");
        assert!(is_closed(&closed));
        let full = write_failed(std::io::Error::other("disk full"));
        assert!(!is_closed(&full));
        assert!(full.to_string().contains("standard output"));
    }
}
