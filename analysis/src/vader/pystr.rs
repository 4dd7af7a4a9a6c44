//! The few Python `str` behaviours VADER depends on, reproduced exactly.
//!
//! The reference tokenises with `str.split()`, strips `string.punctuation`, tests
//! `str.isupper()` and compares `str.lower()`. Ports drift from the reference where
//! those differ from the obvious Rust call (Rust's `is_ascii_whitespace` leaves out
//! `\v`, Python's whitespace has `\x1c`..`\x1f`, `isupper` is false on any titlecase
//! letter), so each one is spelled out here, with a fast path for ASCII.

/// Python's `str.isspace()` for one character (`str.split()` splits on these).
#[inline]
pub fn is_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\x1c'..='\x1f' | ' ') || (!c.is_ascii() && c.is_whitespace())
}

/// Python's whitespace for one ASCII byte.
#[inline]
pub fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | 0x1c..=0x1f | b' ')
}

/// Python's `string.punctuation`.
#[inline]
pub fn is_punct(b: u8) -> bool {
    b.is_ascii_punctuation()
}

/// Python's `str.isupper()`: at least one uppercase character and no lowercase or
/// titlecase one.
pub fn is_upper(s: &str) -> bool {
    if s.is_ascii() {
        return is_upper_ascii(s);
    }
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// The titlecase letters (general category Lt), which Rust's `char` has no test for.
fn is_titlecase(c: char) -> bool {
    matches!(
        c,
        '\u{01C5}'
            | '\u{01C8}'
            | '\u{01CB}'
            | '\u{01F2}'
            | '\u{1F88}'..='\u{1F8F}'
            | '\u{1F98}'..='\u{1F9F}'
            | '\u{1FA8}'..='\u{1FAF}'
            | '\u{1FBC}'
            | '\u{1FCC}'
            | '\u{1FFC}'
    )
}

/// Where `token` starts and ends once stripped of `string.punctuation`.
#[inline]
fn punct_stripped(token: &str) -> (usize, usize) {
    let b = token.as_bytes();
    let mut start = 0;
    let mut end = b.len();
    while start < end && is_punct(b[start]) {
        start += 1;
    }
    while end > start && is_punct(b[end - 1]) {
        end -= 1;
    }
    (start, end)
}

/// `token.strip(string.punctuation)`, unless that leaves two characters or fewer
/// (then the token is kept whole: it is likely an emoticon such as `:)`).
pub fn strip_punc_if_word(token: &str) -> &str {
    let (start, end) = punct_stripped(token);
    // Only ASCII bytes were removed, so both ends are character boundaries.
    let stripped = &token[start..end];
    let short = if stripped.is_ascii() {
        stripped.len() <= 2
    } else {
        stripped.chars().nth(2).is_none()
    };
    if short { token } else { stripped }
}

/// [`is_upper`] of an ASCII token.
#[inline]
pub fn is_upper_ascii(s: &str) -> bool {
    let mut cased = false;
    for b in s.bytes() {
        if b.is_ascii_lowercase() {
            return false;
        }
        cased |= b.is_ascii_uppercase();
    }
    cased
}

/// [`strip_punc_if_word`] of an ASCII token.
#[inline]
pub fn strip_punc_if_word_ascii(token: &str) -> &str {
    let (start, end) = punct_stripped(token);
    if end - start <= 2 {
        token
    } else {
        &token[start..end]
    }
}

/// [`push_lower`] of an ASCII token.
#[inline]
pub fn push_lower_ascii(out: &mut Vec<u8>, token: &str) {
    out.extend(token.bytes().map(|b| b.to_ascii_lowercase()));
}

/// Appends Python's `token.lower()` to `out`.
pub fn push_lower(out: &mut Vec<u8>, token: &str) {
    if token.is_ascii() {
        push_lower_ascii(out, token);
    } else {
        out.extend_from_slice(token.to_lowercase().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_string_rules() {
        assert!(is_upper("GOOD"));
        assert!(is_upper("GOOD!1"));
        assert!(!is_upper("GoOD"));
        assert!(!is_upper("123"));
        assert!(is_upper("ÉNORME"));
        assert!(!is_upper("ǅEMAL"));
        assert_eq!(strip_punc_if_word("'good!'"), "good");
        for t in ["'good!'", ":)", "(ok)", "!!!", "a.", "...ab...", "abc"] {
            assert_eq!(strip_punc_if_word_ascii(t), strip_punc_if_word(t), "{t}");
        }
        for t in ["GOOD", "GOOD!1", "GoOD", "123", ""] {
            assert_eq!(is_upper_ascii(t), is_upper(t), "{t}");
        }
        assert_eq!(strip_punc_if_word(":)"), ":)");
        assert_eq!(strip_punc_if_word("(ok)"), "(ok)");
        assert_eq!(strip_punc_if_word("..é!"), "..é!");
        assert_eq!(strip_punc_if_word("..éé!"), "..éé!");
        assert_eq!(strip_punc_if_word("..ééé!"), "ééé");
        assert!(is_space('\x0b') && is_space('\x1c') && is_space('\u{a0}'));
        assert!(!is_space('\u{200b}'));
        let mut s = Vec::new();
        push_lower(&mut s, "ΣΑΣ");
        assert_eq!(s, "σας".as_bytes());
    }
}
