//! What counts as text a person can see (contract section 10).
//!
//! A body, name or topic made only of white space, invisible or format characters (Unicode
//! White_Space, Default_Ignorable_Code_Point, general category Cf) is *blank*; control
//! characters other than tab, line feed and carriage return are refused outright. Otherwise a
//! message of zero-width spaces (U+200B), word joiners (U+2060) or Hangul fillers (U+3164) would
//! show as an empty bubble, and a NUL or an escape sequence could reach another user's terminal.
//!
//! The tables are the Unicode 15.1 ranges of Default_Ignorable_Code_Point
//! (DerivedCoreProperties.txt) and of general category Cf (UnicodeData.txt); both are small and
//! stable, and the unit tests pin the characters the contract names.

/// Default_Ignorable_Code_Point.
const DEFAULT_IGNORABLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

/// General category Cf (format).
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let c = u32::from(c);
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whether `c` shows nothing by itself: white space, default-ignorable or a format character.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace() || in_table(DEFAULT_IGNORABLE, c) || in_table(FORMAT, c)
}

/// Whether `text` has nothing a reader would see (the empty string included).
pub fn is_blank(text: &str) -> bool {
    text.chars().all(is_invisible)
}

/// The first control character of `text` other than tab, line feed and carriage return.
pub fn forbidden_control(text: &str) -> Option<char> {
    text.chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_disjoint() {
        for table in [DEFAULT_IGNORABLE, FORMAT] {
            for w in table.windows(2) {
                assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:?}");
            }
        }
    }

    #[test]
    fn invisible_text_is_blank() {
        for blank in [
            "",
            " ",
            "\t\n\r",
            "\u{200B}",
            "\u{2060}\u{2060}",
            "\u{3164}",
            "\u{FEFF} \u{00A0}",
            "\u{180E}\u{3000}",
            "\u{E0041}",
            "\u{115F}\u{1160}",
        ] {
            assert!(is_blank(blank), "{blank:?} is blank");
        }
        for visible in ["a", " a ", "\u{200B}x", "😀", "\u{3164}ㄱ", "·"] {
            assert!(!is_blank(visible), "{visible:?} is visible");
        }
    }

    #[test]
    fn control_characters_other_than_tab_and_newlines_are_refused() {
        assert_eq!(forbidden_control("line\nnext\r\n\ttab"), None);
        assert_eq!(forbidden_control("nul\0"), Some('\0'));
        assert_eq!(forbidden_control("esc\u{1b}[31m"), Some('\u{1b}'));
        assert_eq!(forbidden_control("del\u{7f}"), Some('\u{7f}'));
        assert_eq!(forbidden_control("c1\u{85}"), Some('\u{85}'));
    }
}
