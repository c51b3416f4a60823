//! Who a message body mentions: the contract's `@username` rule, as a pure function of the text.
//!
//! `@` starts a mention when it begins the body or follows a character that cannot be in a
//! username; the name is the longest run of username characters after it, less any trailing `.`
//! or `-`. Which of the names are members (and their ids) is the caller's to decide; this only
//! says which names to look up, lower-cased, each once, in order of first appearance.

/// The most names one body is looked up for: a body full of `@` words cannot make a send ask
/// the directory for more (the contract keeps at most 50 mentions).
pub const MAX_CANDIDATES: usize = 100;
/// The most mentions a message keeps.
pub const MAX_MENTIONS: usize = 50;

fn username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The lower-cased names the body's mentions point at (3 to 32 characters, the only lengths a
/// username has), each once, in order of first appearance, at most [`MAX_CANDIDATES`].
pub fn candidates(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut prev: Option<char> = None;
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let starts = c == '@' && prev.is_none_or(|p| !username_char(p));
        prev = Some(c);
        if !starts {
            continue;
        }
        let rest = &body[i + 1..];
        let run_len: usize = rest
            .chars()
            .take_while(|c| username_char(*c))
            .map(char::len_utf8)
            .sum();
        let name = rest[..run_len].trim_end_matches(['.', '-']);
        if (3..=32).contains(&name.len()) {
            let lower = name.to_ascii_lowercase();
            if !out.contains(&lower) {
                out.push(lower);
                if out.len() == MAX_CANDIDATES {
                    break;
                }
            }
        }
        // The run is consumed: an `@` inside it follows a username character anyway.
        while chars.peek().is_some_and(|(j, _)| *j <= i + run_len) {
            if let Some((_, c)) = chars.next() {
                prev = Some(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_contract_rule() {
        assert_eq!(candidates("@bob hi"), ["bob"]);
        assert_eq!(candidates("hi @Bob, and @bob!"), ["bob"]);
        assert_eq!(candidates("mail ann@example.com"), Vec::<String>::new());
        assert_eq!(candidates("(@carol) @dave."), ["carol", "dave"]);
        assert_eq!(candidates("@bobby"), ["bobby"]);
        assert_eq!(candidates("@al @x.y-"), ["x.y"]);
        assert_eq!(candidates("@ann-- @ann.."), ["ann"]);
        assert_eq!(candidates("é@eve"), ["eve"]);
        assert_eq!(candidates("@@eve"), ["eve"]);
        assert_eq!(candidates("a@@eve"), ["eve"]);
        assert!(candidates(&format!("@{}", "a".repeat(33))).is_empty());
    }

    #[test]
    fn is_bounded() {
        let body: String = (0..500).map(|i| format!("@user{i} ")).collect();
        assert_eq!(candidates(&body).len(), MAX_CANDIDATES);
    }
}
