//! Store calls from the mirror's tasks, on tokio's blocking pool.

use stargate_storage::{Store, StoreError};

/// Runs a store call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Store,
    call: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(|e| StoreError::Database {
            context: "a mirror task",
            reason: e.to_string(),
        })?
}
