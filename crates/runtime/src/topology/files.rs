//! The object store of uploaded files' bytes (`dyschat_files`), replicated like the streams, so
//! any agent serves any file. Its records are a KV bucket ([`super::file_records_bucket`]).

use async_nats::jetstream::{self, object_store, stream::StorageType};
use dyschat_protocol::files_layout::FILES_OBJECT_STORE;

use super::{classify, retrying, TopologyError};
use crate::config::TopologySettings;

pub fn files_store_config(config: &TopologySettings) -> object_store::Config {
    object_store::Config {
        bucket: FILES_OBJECT_STORE.into(),
        description: Some("DYSCHAT uploaded files, named by file id".into()),
        storage: StorageType::File,
        num_replicas: config.stream_replicas,
        ..Default::default()
    }
}

/// Ensures the files object store (idempotent, like every stream).
pub async fn ensure_files_store(
    js: &jetstream::Context,
    config: &TopologySettings,
) -> Result<object_store::ObjectStore, TopologyError> {
    retrying(|| async {
        js.create_object_store(files_store_config(config))
            .await
            .map_err(|e| classify("object store", FILES_OBJECT_STORE, &e))
    })
    .await
}
