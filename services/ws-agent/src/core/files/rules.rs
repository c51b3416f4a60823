//! What an upload and an attachment list must be: pure, so every rule is unit-tested alone.

use std::collections::HashSet;

use dyschat_protocol::{files_layout, ids, text, ApiError};

/// The longest file name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 255;
/// The longest `Content-Type` kept.
pub(crate) const MAX_CONTENT_TYPE: usize = 255;
/// What a body without a `Content-Type` is.
pub(crate) const OCTET_STREAM: &str = "application/octet-stream";

/// A file name: 1 to 255 characters, not blank (section 10), no control character, no path
/// separator, not `.` or `..`.
pub(crate) fn validate_name(name: &str) -> Result<(), ApiError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(ApiError::bad_request("name must be 1 to 255 characters"));
    }
    if text::is_blank(name) {
        return Err(ApiError::bad_request("name must not be blank"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name must not hold control characters",
        ));
    }
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(ApiError::bad_request("name must not be a path"));
    }
    Ok(())
}

/// The content type an upload is stored with: its `Content-Type` (trimmed), or
/// `application/octet-stream` without one; a value that is no `type/subtype` is refused.
pub(crate) fn content_type(header: Option<&str>) -> Result<String, ApiError> {
    let value = match header.map(str::trim) {
        None | Some("") => return Ok(OCTET_STREAM.to_string()),
        Some(v) => v,
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let well_formed = value.len() <= MAX_CONTENT_TYPE
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && essence
            .split_once('/')
            .is_some_and(|(t, s)| token(t) && token(s));
    if well_formed {
        Ok(value.to_string())
    } else {
        Err(ApiError::bad_request(
            "Content-Type must be a media type such as image/png",
        ))
    }
}

/// Checks a send's attachment list: at most 10 distinct file ids, each a file of `room_id`.
pub(crate) fn check_attachments(room_id: &str, file_ids: &[String]) -> Result<(), ApiError> {
    if file_ids.len() > files_layout::MAX_ATTACHMENTS {
        return Err(ApiError::bad_request("a message attaches at most 10 files"));
    }
    let mut seen = HashSet::new();
    for id in file_ids {
        ids::validate_id("a file id", id)?;
        if !seen.insert(id.as_str()) {
            return Err(ApiError::bad_request("attachments must be distinct"));
        }
        match files_layout::parse_file_id(id) {
            Some((room, _)) if room == room_id => {}
            _ => return Err(not_attachable()),
        }
    }
    Ok(())
}

/// The answer for a file id that cannot be attached here.
pub(crate) fn not_attachable() -> ApiError {
    ApiError::bad_request("attachments name files not uploaded to this room")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "report.pdf",
            "ünïcødé 😀.txt",
            &"x".repeat(255),
            "a..b",
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            " ",
            "\u{200b}",
            &"x".repeat(256),
            "a\nb",
            "a\tb",
            "a\u{7f}",
            "dir/file",
            "dir\\file",
            ".",
            "..",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(None).unwrap(), OCTET_STREAM);
        assert_eq!(content_type(Some("  ")).unwrap(), OCTET_STREAM);
        assert_eq!(content_type(Some("image/png")).unwrap(), "image/png");
        assert_eq!(
            content_type(Some("text/plain; charset=utf-8")).unwrap(),
            "text/plain; charset=utf-8"
        );
        for bad in [
            "png",
            "/x",
            "a/",
            "text/plain\u{7}",
            "a b/c",
            &format!("a/{}", "b".repeat(300)),
        ] {
            assert!(content_type(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn attachment_lists() {
        let room = "R1";
        let id = |n: usize| format!("R1-01J{:023}", n);
        assert!(check_attachments(room, &[]).is_ok());
        assert!(check_attachments(room, &(0..10).map(id).collect::<Vec<_>>()).is_ok());
        assert!(check_attachments(room, &(0..11).map(id).collect::<Vec<_>>()).is_err());
        assert!(check_attachments(room, &[id(1), id(1)]).is_err());
        assert!(check_attachments(room, &["R2-01J00000000000000000000001".into()]).is_err());
        assert!(check_attachments(room, &["nonsense".into()]).is_err());
        assert!(check_attachments(room, &["a.b".into()]).is_err());
    }
}
