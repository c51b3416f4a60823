//! Files (contract section 9): uploading into a room, reading one back, attaching files to a
//! send and removing them with their message. The one path both edges take; the bytes and
//! records are behind the [`FileStore`](crate::ports::FileStore) port.
//!
//! A file's record says where it is in its life ([`FileState`]): `pending` from its upload,
//! `attached` once a send holds it (marked before the send is published, so nothing sweeps a
//! file a stored message names; a publish that then fails leaves the file merely attached),
//! `removing` from the moment its message's deletion is decided (before the tombstone is
//! stored, so a download is refused from the moment the deletion is answered) until its bytes
//! and record are gone. Every file that may need removing is on the sweep's work list (from
//! before its bytes are stored, and again from when its removal starts), so what an upload or a
//! removal leaves undone, even by a crash, the rooms service's sweep finishes.

use std::time::Duration;

use dyschat_protocol::{
    files_layout,
    policy::Action,
    time,
    wire::{File, FileState, StoredFile},
    ApiError, ErrorCode,
};

use futures::StreamExt;

use super::{Core, CoreError, User};
use crate::ports::{ByteStream, FileRecord, PutError};

mod meter;
pub(crate) mod rules;

use meter::Meter;

/// How long one upload may stream.
pub(crate) const UPLOAD_DEADLINE: Duration =
    Duration::from_secs(files_layout::UPLOAD_DEADLINE_SECS);
/// How long an upload or a download waits for one of the agent's slots.
const SLOT_WAIT: Duration = Duration::from_secs(5);
/// How often a compare-and-set on a record is tried again after losing a race.
const MAX_ATTEMPTS: usize = 5;

/// An upload as the edge received it; `room_id` has passed the edge's id check.
pub(crate) struct Upload {
    pub room_id: String,
    pub name: String,
    pub content_type: Option<String>,
    /// `Content-Length`, when the client sent one (checked, never trusted).
    pub declared: Option<u64>,
    pub body: ByteStream,
}

fn too_large(max: u64) -> CoreError {
    ApiError::new(
        ErrorCode::TooLarge,
        format!("a file is at most {max} bytes"),
    )
    .into()
}

fn no_such_file() -> CoreError {
    ApiError::not_found("no such file").into()
}

impl Core {
    /// Stores an upload of a member of the room and answers its File.
    pub(crate) async fn upload(&self, user: &User, up: Upload) -> Result<File, CoreError> {
        rules::validate_name(&up.name)?;
        let content_type = rules::content_type(up.content_type.as_deref())?;
        let max = self.max_file_bytes;
        if up.declared.is_some_and(|n| n > max) {
            return Err(too_large(max));
        }
        self.membership
            .decide(&up.room_id, &user.user_id, Action::Post)
            .await?;
        if let Some(n) = up.declared {
            self.limits
                .check_stored_bytes(&user.user_id, usize::try_from(n).unwrap_or(usize::MAX))
                .await?;
        }
        let _slot = tokio::time::timeout(SLOT_WAIT, self.uploads.acquire())
            .await
            .map_err(|_| CoreError::Busy("too many uploads at once, try again"))?
            .map_err(|_| CoreError::Closing)?;
        let file_id = files_layout::new_file_id(&up.room_id)
            .ok_or_else(|| CoreError::Internal("the room id is too long for a file id".into()))?;
        // On the sweep's list before anything is stored: whatever happens next (a crash too),
        // nothing of this upload outlives it unless a message attaches the file.
        self.files
            .mark_for_sweep(&file_id)
            .await
            .map_err(CoreError::unavailable("file store"))?;
        let meter = Meter::default();
        let body = meter.wrap(up.body, max);
        let put = self.files.put_object(&file_id, body, UPLOAD_DEADLINE).await;
        if put.is_err() {
            // The store removed what it had; this takes the file off the sweep's list.
            self.discard(&file_id).await;
        }
        let stored = match put {
            Ok(n) => n,
            Err(_) if meter.exceeded() => return Err(too_large(max)),
            Err(PutError::Body(why)) => {
                tracing::info!(%file_id, %why, "an upload's body failed");
                return Err(ApiError::bad_request("the upload's body did not arrive whole").into());
            }
            Err(PutError::Store(e)) => return Err(CoreError::unavailable("file store")(e)),
        };
        let (size, sha256) = meter.finish();
        if size != stored {
            self.discard(&file_id).await;
            return Err(CoreError::Internal(format!(
                "the store kept {stored} of {size} bytes"
            )));
        }
        if up.declared.is_none() {
            let charged = self
                .limits
                .check_stored_bytes(&user.user_id, usize::try_from(size).unwrap_or(usize::MAX))
                .await;
            if let Err(e) = charged {
                self.discard(&file_id).await;
                return Err(e.into());
            }
        }
        let file = File {
            file_id: file_id.clone(),
            room_id: up.room_id,
            name: up.name,
            size,
            content_type,
            sha256,
            uploaded_by: user.user_id.clone(),
            created_at: time::now(),
        };
        let record = StoredFile {
            file: file.clone(),
            state: FileState::Pending,
            attached_to: None,
        };
        match self.files.create_record(&file_id, &record).await {
            Ok(true) => Ok(file),
            Ok(false) => {
                self.discard(&file_id).await;
                Err(CoreError::Internal(format!("file id {file_id} was taken")))
            }
            Err(e) => {
                self.discard(&file_id).await;
                Err(CoreError::unavailable("file record")(e))
            }
        }
    }

    /// The File `file_id` names, for a member of its room; `not_found` to anyone else, for an
    /// unknown id and for a file being removed.
    pub(crate) async fn file(&self, user: &User, file_id: &str) -> Result<File, CoreError> {
        let (room_id, _) = files_layout::parse_file_id(file_id).ok_or_else(no_such_file)?;
        match self
            .membership
            .decide(room_id, &user.user_id, Action::Read)
            .await
        {
            Ok(_) => {}
            // Not a member, banned, no such room: the file is nobody's business.
            Err(CoreError::Denied(_) | CoreError::Invalid(_)) => return Err(no_such_file()),
            Err(CoreError::Api(e))
                if matches!(e.code, ErrorCode::NotFound | ErrorCode::Forbidden) =>
            {
                return Err(no_such_file())
            }
            Err(e) => return Err(e),
        }
        match self.record(file_id).await? {
            Some(r) if r.stored.servable() && r.stored.file.room_id == room_id => Ok(r.stored.file),
            _ => Err(no_such_file()),
        }
    }

    /// The bytes `start .. start + len` of a file [`Core::file`] answered.
    pub(crate) async fn file_bytes(
        &self,
        file_id: &str,
        start: u64,
        len: u64,
    ) -> Result<ByteStream, CoreError> {
        let slot = tokio::time::timeout(SLOT_WAIT, self.downloads.clone().acquire_owned())
            .await
            .map_err(|_| CoreError::Busy("too many downloads at once, try again"))?
            .map_err(|_| CoreError::Closing)?;
        let bytes = self
            .files
            .open_object(file_id, start, len)
            .await
            .map_err(CoreError::unavailable("file store"))?;
        // The slot is held until the body is sent (or dropped).
        Ok(bytes
            .map(move |part| {
                let _held = &slot;
                part
            })
            .boxed())
    }

    /// Marks the files of a send (`attached_to` its de-duplication id) attached, and answers
    /// them in the order given; 400 for any that is not a servable file of the room, or that
    /// another send holds.
    pub(crate) async fn attach(
        &self,
        room_id: &str,
        attached_to: &str,
        file_ids: &[String],
    ) -> Result<Vec<File>, CoreError> {
        rules::check_attachments(room_id, file_ids)?;
        let attached = futures::future::try_join_all(
            file_ids.iter().map(|id| self.attach_one(id, attached_to)),
        )
        .await?;
        Ok(attached)
    }

    async fn attach_one(&self, file_id: &str, attached_to: &str) -> Result<File, CoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(FileRecord {
                mut stored,
                revision,
            }) = self.record(file_id).await?
            else {
                return Err(rules::not_attachable().into());
            };
            match stored.state {
                FileState::Removing => return Err(rules::not_attachable().into()),
                FileState::Attached if stored.attached_to.as_deref() == Some(attached_to) => {
                    return Ok(stored.file)
                }
                FileState::Attached => {
                    return Err(CoreError::Invalid("a file is attached to another message"))
                }
                FileState::Pending => {}
            }
            stored.state = FileState::Attached;
            stored.attached_to = Some(attached_to.to_string());
            if self
                .files
                .update_record(file_id, &stored, revision)
                .await
                .map_err(CoreError::unavailable("file record"))?
            {
                // The sweep skips attached files anyway; this only keeps its list short.
                if let Err(e) = self.files.unmark_for_sweep(file_id).await {
                    tracing::debug!(%file_id, error = %e, "unmarking an attached file failed");
                }
                return Ok(stored.file);
            }
        }
        Err(CoreError::Busy("the file is changing, try again"))
    }

    /// Marks the files of a message being deleted `removing`: from then on nobody reads them.
    pub(crate) async fn doom(&self, files: &[File]) -> Result<(), CoreError> {
        futures::future::try_join_all(files.iter().map(|f| self.doom_one(&f.file_id))).await?;
        Ok(())
    }

    async fn doom_one(&self, file_id: &str) -> Result<(), CoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(FileRecord {
                mut stored,
                revision,
            }) = self.record(file_id).await?
            else {
                return Ok(());
            };
            if stored.state == FileState::Removing {
                return Ok(());
            }
            // Listed first: a removal cut short is finished by the sweep.
            self.files
                .mark_for_sweep(file_id)
                .await
                .map_err(CoreError::unavailable("file store"))?;
            stored.state = FileState::Removing;
            if self
                .files
                .update_record(file_id, &stored, revision)
                .await
                .map_err(CoreError::unavailable("file record"))?
            {
                return Ok(());
            }
        }
        Err(CoreError::Busy("the file is changing, try again"))
    }

    /// Removes the bytes, then the records, of files marked `removing`; what fails is logged and
    /// left to the sweep.
    pub(crate) async fn remove_files(&self, files: &[File]) {
        futures::future::join_all(files.iter().map(|f| self.discard(&f.file_id))).await;
    }

    async fn discard(&self, file_id: &str) {
        let removed = async {
            self.files.remove_object(file_id).await?;
            self.files.forget_record(file_id).await?;
            self.files.unmark_for_sweep(file_id).await
        }
        .await;
        if let Err(e) = removed {
            tracing::warn!(%file_id, error = %e, "removing a file failed; the sweep will");
        }
    }

    async fn record(&self, file_id: &str) -> Result<Option<FileRecord>, CoreError> {
        self.files
            .record(file_id)
            .await
            .map_err(CoreError::unavailable("file record"))
    }
}
