//! Where uploaded files live (contract section 9), defined once: the object store holding their
//! bytes, the KV bucket holding one record per file, and the file id that names both.
//!
//! A file id is `<room_id>-<ulid>`: it carries its room, so a download is one record read (the
//! key follows from the id, no index is searched) and a room's files are the keys
//! `<room_id>.*` of the record bucket (a room's deletion reads those, never the whole mesh's).
//! The object of a file is named by its file id.
//!
//! A second bucket, [`FILE_SWEEP_BUCKET`], is the sweep's work list: the same keys, one for each
//! file that may need removing (written at upload and when a removal starts, purged once the
//! file is attached or gone), in the order they were written, so the sweep reads only those and
//! never the records of every attached file.

use crate::ids::{is_valid_id, new_id, MAX_ID_LEN};

/// The object store of file bytes (its stream is [`files_stream`]).
pub const FILES_OBJECT_STORE: &str = "dyschat_files";
/// File records: key `<room_id>.<ulid>`, value a [`crate::wire::StoredFile`].
pub const FILE_RECORDS_BUCKET: &str = "dyschat_file_records";
/// The sweep's work list: key `<room_id>.<ulid>`, value the RFC 3339 time it was written.
pub const FILE_SWEEP_BUCKET: &str = "dyschat_file_sweep";
/// How long one upload may stream (an agent's bound); a work-list entry whose record is still
/// missing after longer than this belongs to an upload that died.
pub const UPLOAD_DEADLINE_SECS: u64 = 300;
/// The default largest file, in bytes (`DYSCHAT_MAX_FILE_BYTES`).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// The chunk size file bytes are stored in.
pub const FILE_CHUNK_BYTES: usize = 128 * 1024;
/// The most files one message attaches.
pub const MAX_ATTACHMENTS: usize = 10;

/// Length of the ULID that ends a file id.
const ULID_LEN: usize = 26;

/// The stream behind an object store (`OBJ_<bucket>`).
pub fn object_stream(bucket: &str) -> String {
    format!("OBJ_{bucket}")
}

/// The stream of [`FILES_OBJECT_STORE`].
pub fn files_stream() -> String {
    object_stream(FILES_OBJECT_STORE)
}

/// The subject of an object's chunks (`$O.<bucket>.C.<nuid>`).
pub fn object_chunks_subject(bucket: &str, nuid: &str) -> String {
    format!("$O.{bucket}.C.{nuid}")
}

/// A new file id for a file of `room_id`; `None` when the room id is too long to carry
/// (rooms make 26-character ids, so never in practice).
pub fn new_file_id(room_id: &str) -> Option<String> {
    let id = format!("{room_id}-{}", new_id());
    (is_valid_id(room_id) && id.len() <= MAX_ID_LEN).then_some(id)
}

/// The room and ULID of a file id, `None` for anything that is not one.
pub fn parse_file_id(file_id: &str) -> Option<(&str, &str)> {
    if !is_valid_id(file_id) || file_id.len() < ULID_LEN + 2 {
        return None;
    }
    let (head, ulid) = file_id.split_at(file_id.len() - ULID_LEN);
    let room_id = head.strip_suffix('-')?;
    let ulid_ok = ulid
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    (ulid_ok && is_valid_id(room_id)).then_some((room_id, ulid))
}

/// The record key of a file id (`<room_id>.<ulid>`).
pub fn file_key(file_id: &str) -> Option<String> {
    parse_file_id(file_id).map(|(room, ulid)| format!("{room}.{ulid}"))
}

/// The file id of a record key, `None` for a key that is not one.
pub fn file_id_of_key(key: &str) -> Option<String> {
    let (room, ulid) = key.split_once('.')?;
    let id = format!("{room}-{ulid}");
    parse_file_id(&id).is_some().then_some(id)
}

/// The record keys of a room's files (a KV filter).
pub fn room_files_filter(room_id: &str) -> String {
    format!("{room_id}.*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_id_carries_its_room_and_maps_to_its_key() {
        let id = new_file_id("01JROOMROOMROOMROOMROOMROO").unwrap();
        assert!(is_valid_id(&id));
        let (room, ulid) = parse_file_id(&id).unwrap();
        assert_eq!(room, "01JROOMROOMROOMROOMROOMROO");
        assert_eq!(ulid.len(), 26);
        let key = file_key(&id).unwrap();
        assert_eq!(key, format!("{room}.{ulid}"));
        assert_eq!(file_id_of_key(&key).unwrap(), id);
        // A room id holding dashes still parses from the end.
        let id = new_file_id("a-b_c").unwrap();
        assert_eq!(parse_file_id(&id).unwrap().0, "a-b_c");
    }

    #[test]
    fn anything_else_is_no_file_id() {
        for bad in [
            "",
            "short",
            "room_01J00000000000000000000000",
            "-01J0000000000000000000000A",
            "room-01j0000000000000000000000a",
            "room-01J0000000000000000000.0A",
        ] {
            assert_eq!(parse_file_id(bad), None, "{bad}");
        }
        assert!(new_file_id(&"r".repeat(40)).is_none());
        assert!(file_id_of_key("nodot").is_none());
    }
}
