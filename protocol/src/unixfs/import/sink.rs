//! Where imported blocks go.

use std::convert::Infallible;

use crate::Block;

/// Receives every block of the DAGs being built, each child before the nodes that link to it.
///
/// The store's batched writer implements it for `add`; [`DiscardBlocks`] implements
/// `add --only-hash`.
pub trait BlockSink {
    /// Why a block could not be taken; it aborts the import.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Takes one block.
    ///
    /// # Errors
    /// Whatever the implementation cannot do (a full disk, a closed store, ...).
    fn put(&mut self, block: Block) -> Result<(), Self::Error>;
}

/// A sink that drops every block: only the CIDs are computed (`--only-hash`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardBlocks;

impl BlockSink for DiscardBlocks {
    type Error = Infallible;

    fn put(&mut self, _block: Block) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Collects blocks in memory, in the order they were produced. For small imports and tests.
impl BlockSink for Vec<Block> {
    type Error = Infallible;

    fn put(&mut self, block: Block) -> Result<(), Infallible> {
        self.push(block);
        Ok(())
    }
}

impl<S: BlockSink + ?Sized> BlockSink for &mut S {
    type Error = S::Error;

    fn put(&mut self, block: Block) -> Result<(), S::Error> {
        (**self).put(block)
    }
}
