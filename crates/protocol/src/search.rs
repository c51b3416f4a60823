//! Message search as the contract defines it (section 9): which words a text holds, and the
//! cursor of a results page. One normaliser ([`search_terms`]) is used to index a message and to
//! read a query, and again by the agent to check a hit against the message's current text, so
//! the three can never disagree about what a "word" is.
//!
//! A word is a Unicode word (UAX #29 word boundaries, only the segments holding a letter or a
//! digit), compared ignoring case and diacritics: the word is decomposed (NFKD), its combining
//! marks dropped and the rest lower-cased, so "Café", "CAFE" and "café" are all `cafe`. Whole
//! words only: "caf" is a word of its own and matches nothing else.

use std::collections::BTreeSet;

use unicode_normalization::{char::is_combining_mark, UnicodeNormalization};
use unicode_segmentation::UnicodeSegmentation;

/// The longest query text accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// The most distinct words a query may hold.
pub const MAX_QUERY_TERMS: usize = 16;
/// A longer normalised word is not indexed: no query of [`MAX_QUERY_CHARS`] could name it.
pub const MAX_TERM_BYTES: usize = 1024;
/// The default and largest page of results.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 50;
/// The most rooms one search request names (the quota of rooms joined, by default).
pub const MAX_ROOMS: usize = 1000;

/// One word as the index keeps it.
pub fn normalize_word(word: &str) -> String {
    word.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The distinct words of `text`, normalised, in sorted order.
pub fn search_terms(text: &str) -> Vec<String> {
    let terms: BTreeSet<String> = text
        .unicode_words()
        .map(normalize_word)
        .filter(|w| !w.is_empty() && w.len() <= MAX_TERM_BYTES)
        .collect();
    terms.into_iter().collect()
}

/// Whether `text` holds every one of `terms` (normalised, as [`search_terms`] gives them).
pub fn holds_all(text: &str, terms: &[String]) -> bool {
    let words = search_terms(text);
    terms.iter().all(|t| words.binary_search(t).is_ok())
}

/// Where a page of results ends: results are ordered newest first by `sent_at` (in unix
/// milliseconds), then by `seq` (a stream sequence, unique across rooms), so the pair is a total
/// order and "before the cursor" is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    pub sent_ms: i64,
    pub seq: u64,
}

impl Cursor {
    /// The cursor of a message sent at `sent_at` (RFC 3339; an unreadable time counts as 0).
    pub fn of(sent_at: &str, seq: u64) -> Cursor {
        Cursor {
            sent_ms: sent_ms(sent_at),
            seq,
        }
    }

    /// The opaque text form clients pass back as `before`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.sent_ms, self.seq)
    }

    /// Reads [`Cursor::encode`]'s form; `None` for anything else.
    pub fn decode(text: &str) -> Option<Cursor> {
        let (ms, seq) = text.split_once('.')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(Cursor {
            sent_ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// `sent_at` in unix milliseconds, 0 when it is not an RFC 3339 time.
pub fn sent_ms(sent_at: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(sent_at)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(s: &str) -> Vec<String> {
        search_terms(s)
    }

    #[test]
    fn case_and_diacritics_are_ignored() {
        assert_eq!(terms("Café"), vec!["cafe"]);
        assert_eq!(terms("CAFÉ"), terms("cafe"));
        // Decomposed input (e + combining acute) is the same word.
        assert_eq!(terms("cafe\u{301}"), vec!["cafe"]);
        assert_eq!(terms("Ñandú Über"), vec!["nandu", "uber"]);
    }

    #[test]
    fn words_are_whole_unicode_words() {
        assert_eq!(terms("Hello, world! hello..."), vec!["hello", "world"]);
        assert_eq!(terms("  ,;!? "), Vec::<String>::new());
        assert!(holds_all("the café is open", &terms("CAFE open")));
        assert!(!holds_all("the café is open", &terms("caf")));
        assert!(!holds_all("the café is open", &terms("cafe closed")));
        // Apostrophes and decimal points stay inside a word (UAX #29).
        assert_eq!(terms("can't 3.14"), vec!["3.14", "can't"]);
        // Scripts without spaces between words still split into words or characters.
        assert!(!terms("日本語のテキスト").is_empty());
    }

    #[test]
    fn very_long_words_are_not_indexed() {
        let long = "a".repeat(MAX_TERM_BYTES + 1);
        assert!(terms(&long).is_empty());
        assert_eq!(terms(&"b".repeat(MAX_TERM_BYTES)).len(), 1);
    }

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let c = Cursor::of("2026-01-02T03:04:05.678Z", 42);
        assert_eq!(c.sent_ms, 1_767_323_045_678);
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "1",
            "1.",
            ".1",
            "a.1",
            "1.b",
            "-1.2",
            "1.2.3",
            "1 .2",
            "99999999999999999999999.1",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad:?}");
        }
        assert!(
            Cursor::of("2026-01-01T00:00:00.001Z", 1) > Cursor::of("2026-01-01T00:00:00.000Z", 9)
        );
        assert!(
            Cursor::of("2026-01-01T00:00:00.000Z", 2) > Cursor::of("2026-01-01T00:00:00.000Z", 1)
        );
        assert_eq!(sent_ms("not a time"), 0);
    }
}
