//! A file's record in the record bucket ([`crate::files_layout::FILE_RECORDS_BUCKET`]): the File
//! clients see, and whether a message holds it.

use serde::{Deserialize, Serialize};

use super::File;

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Uploaded, attached to no message yet: removed when it stays so too long.
    Pending,
    /// A message (its send, see [`StoredFile::attached_to`]) holds it.
    Attached,
    /// Being removed (its message or room was deleted, or nothing attached it in time): served
    /// to nobody; the record goes once the bytes are gone.
    Removing,
}

/// The value of a file's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    pub file: File,
    pub state: FileState,
    /// The send holding the file (its de-duplication id, `<sender>:<room>:<client_msg_id>`), so
    /// a retried send attaches it again while any other send is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_to: Option<String>,
}

impl StoredFile {
    /// Whether the file may be served.
    pub fn servable(&self) -> bool {
        self.state != FileState::Removing
    }
}
