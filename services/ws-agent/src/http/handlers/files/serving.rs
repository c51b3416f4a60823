//! How a file is served: which `Range` is answered, what type it is served as and whether
//! inline. Pure, so every rule is unit-tested alone.

/// What a `Range` header comes to for a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ranged {
    /// No usable single range (none, malformed, several): the whole file, 200.
    Whole,
    /// Bytes `start..=end`, 206.
    Part { start: u64, end: u64 },
    /// A range starting past the end, 416.
    Unsatisfiable,
}

/// Reads a `Range` header: `bytes=a-b`, `bytes=a-` and `bytes=-n`. Several ranges are answered
/// with the whole file; a malformed header is ignored (RFC 9110 lets a server do both).
pub(crate) fn parse_range(header: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim().is_empty(), num(a), num(b)) {
        // `-n`: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || size == 0 {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part {
                    start: size.saturating_sub(n),
                    end: size - 1,
                }
            }
        }
        (false, Some(start), end) if b.trim().is_empty() || end.is_some() => {
            if end.is_some_and(|e| e < start) {
                return Ranged::Whole;
            }
            if start >= size {
                return Ranged::Unsatisfiable;
            }
            Ranged::Part {
                start,
                end: end.map_or(size - 1, |e| e.min(size - 1)),
            }
        }
        _ => Ranged::Whole,
    }
}

/// The types a browser may show inline; anything else is a download.
fn inline(essence: &str) -> bool {
    matches!(
        essence,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "application/pdf" | "text/plain"
    ) || essence.starts_with("audio/")
        || essence.starts_with("video/")
}

/// The `Content-Type` a stored type is served with, and whether inline: the listed types keep
/// their type (without parameters, but text keeps saying it is UTF-8 when it said so);
/// everything else (HTML, SVG, scripts...) is `application/octet-stream`.
pub(crate) fn served_type(content_type: &str) -> (String, bool) {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !inline(&essence) {
        return ("application/octet-stream".into(), false);
    }
    if essence == "text/plain" {
        return ("text/plain; charset=utf-8".into(), true);
    }
    (essence, true)
}

/// `Content-Disposition` for a file named `name`: an ASCII `filename` (anything else replaced)
/// and the exact name as RFC 8187 `filename*` (RFC 6266).
pub(crate) fn disposition(name: &str, inline: bool) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Whether `If-None-Match` names `etag` (or is `*`).
pub(crate) fn not_modified(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|v| {
        v.split(',')
            .map(str::trim)
            .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |start, end| Ranged::Part { start, end };
        assert_eq!(parse_range(None, 10), Ranged::Whole);
        assert_eq!(parse_range(Some("bytes=0-4"), 10), p(0, 4));
        assert_eq!(parse_range(Some("bytes=5-"), 10), p(5, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), p(7, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), p(0, 9));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), p(8, 9));
        assert_eq!(parse_range(Some("bytes=9-9"), 10), p(9, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=10-20"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Ranged::Unsatisfiable);
        for whole in [
            "bytes=0-1,3-4",
            "bytes=5-2",
            "bytes=a-b",
            "items=0-1",
            "bytes=-",
            "bytes=1",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse_range(Some(whole), 10), Ranged::Whole, "{whole}");
        }
    }

    #[test]
    fn types() {
        for kept in [
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "audio/ogg",
            "video/mp4",
            "application/pdf",
        ] {
            assert_eq!(served_type(kept), (kept.to_string(), true));
        }
        assert_eq!(served_type("IMAGE/PNG; x=y"), ("image/png".into(), true));
        assert_eq!(
            served_type("text/plain"),
            ("text/plain; charset=utf-8".into(), true)
        );
        for download in [
            "text/html",
            "image/svg+xml",
            "application/javascript",
            "application/octet-stream",
            "text/xml",
            "application/x-msdownload",
        ] {
            assert_eq!(
                served_type(download),
                ("application/octet-stream".into(), false),
                "{download}"
            );
        }
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            disposition("a b.txt", false),
            "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
        );
        assert_eq!(
            disposition("é\"x\\;.png", true),
            "inline; filename=\"__x_;.png\"; filename*=UTF-8''%C3%A9%22x%5C%3B.png"
        );
        assert!(!disposition("a\r\nb", false).contains('\n'));
    }

    #[test]
    fn etags() {
        assert!(not_modified(Some("\"abc\""), "\"abc\""));
        assert!(not_modified(Some("\"x\", W/\"abc\""), "\"abc\""));
        assert!(not_modified(Some("*"), "\"abc\""));
        assert!(!not_modified(Some("\"abd\""), "\"abc\""));
        assert!(!not_modified(None, "\"abc\""));
    }
}
