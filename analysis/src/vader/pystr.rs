//! The few Python `str` behaviours VADER depends on, reproduced exactly.
//!
//! The reference tokenises with `str.split()`, strips `string.punctuation`, tests
//! `str.isupper()` and compares `str.lower()`. Ports drift from the reference where
//! those differ from the obvious Rust call (Rust's `is_ascii_whitespace` leaves out
//! `\v`, Python's whitespace has `\x1c`..`\x1f`, `isupper` is false on any titlecase
//! letter), so each one is spelled out here, with a fast path for ASCII.

use super::lexicon::{KEY_BYTES, Key};

/// Python's `str.isspace()` for one character (`str.split()` splits on these).
#[inline]
pub fn is_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\x1c'..='\x1f' | ' ') || (!c.is_ascii() && c.is_whitespace())
}

/// Python's whitespace for one ASCII byte.
#[inline]
pub const fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | 0x1c..=0x1f | b' ')
}

/// [`CLASS`] bit: Python whitespace.
pub const SPACE: u8 = 1;
/// [`CLASS`] bit: `string.punctuation`.
pub const PUNCT: u8 = 2;
/// [`CLASS`] bit: an uppercase letter.
pub const UPPER: u8 = 4;
/// [`CLASS`] bit: a lowercase letter.
pub const LOWER: u8 = 8;
/// [`CLASS`] bit: `'`, which an "n't" needs.
pub const APOSTROPHE: u8 = 16;
/// [`CLASS`] bit: `!`, counted for emphasis.
pub const BANG: u8 = 32;
/// [`CLASS`] bit: `?`, counted for emphasis.
pub const QUESTION: u8 = 64;

/// What each ASCII byte is to the tokenizer, as or-able bits: one table load per
/// byte answers the splitting, stripping and case questions at once.
pub static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        let mut c = 0;
        if is_ascii_space(b) {
            c |= SPACE;
        }
        if b.is_ascii_punctuation() {
            c |= PUNCT;
        }
        if b.is_ascii_uppercase() {
            c |= UPPER;
        }
        if b.is_ascii_lowercase() {
            c |= LOWER;
        }
        if b == b'\'' {
            c |= APOSTROPHE;
        }
        if b == b'!' {
            c |= BANG;
        }
        if b == b'?' {
            c |= QUESTION;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Lower-cases eight ASCII bytes at once (each below 0x80): a byte's high bit is
/// set by the additions exactly when it is in `A..=Z`, and becomes its 0x20.
#[inline]
const fn lower8(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let from_a = x + ONES * (0x80 - b'A' as u64);
    let past_z = x + ONES * (0x80 - b'Z' as u64 - 1);
    x | ((from_a & !past_z & (ONES * 0x80)) >> 2)
}

/// The key of the lowercase form of an ASCII word of `len` (at most 16) bytes,
/// given the 16 bytes from its start (those past `len` are ignored).
#[inline]
#[must_use]
pub fn lower_key(window: &[u8], len: usize) -> Key {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&window[..8]);
    hi.copy_from_slice(&window[8..KEY_BYTES]);
    let (lo, hi) = (u64::from_le_bytes(lo), u64::from_le_bytes(hi));
    let mask = |n: usize| (1u64 << (8 * n)) - 1;
    let (lo, hi) = match len {
        0..8 => (lo & mask(len), 0),
        8..KEY_BYTES => (lo, hi & mask(len - 8)),
        _ => (lo, hi),
    };
    Key {
        lo: lower8(lo),
        hi: lower8(hi),
        len: len as u32,
    }
}

/// Whether an ASCII token holds "n't" once lower-cased.
#[inline]
#[must_use]
pub fn has_nt_ascii(word: &[u8]) -> bool {
    word.windows(3)
        .any(|w| w[0] | 0x20 == b'n' && w[1] == b'\'' && w[2] | 0x20 == b't')
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
        for w in [
            "a",
            "GOOD",
            "Wasn't",
            "abcdefgh",
            "ABCDEFGHIJKLMNOP",
            "[@`{Zz09",
            "x'Y",
        ] {
            let mut window = w.as_bytes().to_vec();
            window.extend_from_slice(b"TAIL-BYTES-IGNORED");
            let want = Key::of(w.to_ascii_lowercase().as_bytes());
            assert_eq!(lower_key(&window[..KEY_BYTES], w.len()), want, "{w}");
        }
        for (w, nt) in [
            ("isn't", true),
            ("ISN'T", true),
            ("Won'T", true),
            ("n't", true),
            ("nt", false),
            ("n'", false),
            ("o'toole", false),
        ] {
            assert_eq!(has_nt_ascii(w.as_bytes()), nt, "{w}");
            assert_eq!(w.to_lowercase().contains("n't"), nt, "{w}");
        }
        for b in 0u8..128 {
            let c = CLASS[usize::from(b)];
            assert_eq!(c & SPACE != 0, is_space(char::from(b)), "{b}");
            assert_eq!(c & PUNCT != 0, is_punct(b), "{b}");
        }
        let mut s = Vec::new();
        push_lower(&mut s, "ΣΑΣ");
        assert_eq!(s, "σας".as_bytes());
    }
}
