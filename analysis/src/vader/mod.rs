//! VADER sentiment: Drover's own scorer over the published lexicon.
//!
//! The rules follow Python `vaderSentiment` 3.3.2 (the reference) step by step,
//! including its quirks, because users compare our numbers with it:
//! - emojis become their descriptions, one character at a time;
//! - tokens are whitespace-separated, stripped of punctuation unless that leaves two
//!   characters or fewer;
//! - boosters and dampeners up to three words before (scaled 1, 0.95, 0.9), negations
//!   (`N_SCALAR`), "no", "never so/this", "without doubt", "least", "kind of";
//! - ALL-CAPS emphasis only when some but not all tokens are in caps;
//! - "but" halves what comes before it and boosts what follows by half, with the
//!   reference's lookup of each value by its first equal one;
//! - the special-case idioms ("the shit", "kiss of death", …) and the booster
//!   n-grams, checked where the reference checks them;
//! - "!" (up to 4) and "?" (2 or more) emphasis;
//! - compound = sum / sqrt(sum² + 15), rounded to 4 decimals.
//!
//! [`Scorer`] keeps its buffers between calls, so scoring a cell allocates nothing
//! for ASCII text. The parity test (`tests/vader_parity.rs`) checks it against the
//! reference's scores of 16,000 generated texts.

mod lexicon;
pub mod pystr;

use lexicon::{C_INCR, Entry, KEY_BYTES, N_SCALAR, Rule, TABLES, Tables};
use serde::{Deserialize, Serialize};

/// The usual three classes, at compound ≥ 0.05 and ≤ -0.05.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Positive,
    Neutral,
    Negative,
}

impl Label {
    /// The label of a compound score.
    #[must_use]
    pub fn of(compound: f64) -> Self {
        if compound >= 0.05 {
            Self::Positive
        } else if compound <= -0.05 {
            Self::Negative
        } else {
            Self::Neutral
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Positive => "positive",
            Self::Neutral => "neutral",
            Self::Negative => "negative",
        }
    }
}

/// One token: what the rules need of it.
#[derive(Debug, Clone, Copy)]
struct Token {
    upper: bool,
    /// `negated([word])` of the reference: a negation word or any "n't".
    negated: bool,
    entry: Entry,
}

/// A reusable VADER scorer. Not shared between threads: make one per task.
pub struct Scorer {
    tables: &'static Tables,
    /// The text with its emojis replaced (non-ASCII texts only).
    text: String,
    /// The ASCII text being scored, then [`KEY_BYTES`] zeros, so that a token's key
    /// loads as two whole words wherever the token ends.
    padded: Vec<u8>,
    /// A token's lowercase form (the non-ASCII path and long words only).
    lower: Vec<u8>,
    tokens: Vec<Token>,
    /// Tokens in ALL CAPS.
    upper: usize,
    /// The first "but", if any.
    but: Option<usize>,
    /// The text's "!" and "?".
    bangs: usize,
    questions: usize,
    sentiments: Vec<f64>,
}

impl Default for Scorer {
    fn default() -> Self {
        Self::new()
    }
}

impl Scorer {
    #[must_use]
    pub fn new() -> Self {
        Self {
            tables: &TABLES,
            text: String::new(),
            padded: Vec::new(),
            lower: Vec::new(),
            tokens: Vec::new(),
            upper: 0,
            but: None,
            bangs: 0,
            questions: 0,
            sentiments: Vec::new(),
        }
    }

    /// The compound score of `text`, in [-1, 1], rounded to 4 decimals.
    pub fn compound(&mut self, text: &str) -> f64 {
        if text.is_ascii() {
            return self.compound_ascii(text.as_bytes());
        }
        self.compound_unicode(text)
    }

    /// [`Scorer::compound`] of bytes that should be UTF-8; `None` if they are not.
    /// ASCII (nearly all text) is scored with no UTF-8 check at all.
    pub fn compound_bytes(&mut self, text: &[u8]) -> Option<f64> {
        if text.is_ascii() {
            return Some(self.compound_ascii(text));
        }
        std::str::from_utf8(text)
            .ok()
            .map(|t| self.compound_unicode(t))
    }

    fn compound_ascii(&mut self, text: &[u8]) -> f64 {
        self.clear_tokens();
        self.tokenize_ascii(text);
        self.score()
    }

    fn compound_unicode(&mut self, text: &str) -> f64 {
        self.replace_emojis(text);
        // Moved out so the tokens can borrow `self` mutably; put back below.
        let owned = std::mem::take(&mut self.text);
        self.clear_tokens();
        self.tokenize_unicode(&owned);
        self.text = owned;
        self.score()
    }

    fn clear_tokens(&mut self) {
        self.tokens.clear();
        self.upper = 0;
        self.but = None;
    }

    /// The score of the tokens: the valence rules, "but", punctuation, compound.
    fn score(&mut self) -> f64 {
        let n = self.tokens.len();
        let cap_diff = self.upper > 0 && self.upper < n;
        let mut sentiments = std::mem::take(&mut self.sentiments);
        sentiments.clear();
        for i in 0..n {
            let t = self.tokens[i];
            if t.entry.booster != 0
                || (i + 1 < n && t.entry.rule == Rule::Kind && self.rule(i + 1) == Rule::Of)
            {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(self.valence(i, cap_diff));
        }
        self.but_check(&mut sentiments);
        let c = compound_of(
            &sentiments,
            punctuation_emphasis(self.bangs, self.questions),
        );
        self.sentiments = sentiments;
        c
    }

    /// The reference's emoji pass: each emoji character becomes its description,
    /// preceded by a space unless one is already there.
    fn replace_emojis(&mut self, text: &str) {
        self.text.clear();
        let mut prev_space = true;
        for c in text.chars() {
            if let Some(desc) = self.tables.emoji(c) {
                if !prev_space {
                    self.text.push(' ');
                }
                self.text.push_str(desc);
                prev_space = false;
            } else {
                self.text.push(c);
                prev_space = c == ' ';
            }
        }
    }

    /// The reference's tokens of a text that is not ASCII: whitespace-split,
    /// stripped, lower-cased, looked up.
    fn tokenize_unicode(&mut self, text: &str) {
        self.bangs = text.bytes().filter(|&b| b == b'!').count();
        self.questions = text.bytes().filter(|&b| b == b'?').count();
        for raw in text.split(pystr::is_space).filter(|s| !s.is_empty()) {
            let tok = pystr::strip_punc_if_word(raw);
            self.lower.clear();
            pystr::push_lower(&mut self.lower, tok);
            let entry = self.tables.entry(&self.lower);
            let negated =
                entry.negate || (tok.contains('\'') && self.lower.windows(3).any(|w| w == b"n't"));
            self.push_token(pystr::is_upper(tok), negated, entry);
        }
    }

    /// The same tokens of an ASCII text (nearly all text), with no UTF-8 decoding
    /// and no copy of its words, in one pass over the bytes: a class table says what
    /// each byte is, a token's classes are or-ed as it is read, and its key is loaded
    /// from the padded copy and lower-cased eight bytes at a time.
    fn tokenize_ascii(&mut self, text: &[u8]) {
        use pystr::{APOSTROPHE, BANG, CLASS, LOWER, PUNCT, QUESTION, SPACE, UPPER};
        self.bangs = 0;
        self.questions = 0;
        let mut b = std::mem::take(&mut self.padded);
        b.clear();
        b.extend_from_slice(text);
        b.extend_from_slice(&[0; KEY_BYTES]);
        let n = text.len();
        let mut i = 0;
        while i < n {
            if CLASS[usize::from(text[i])] & SPACE != 0 {
                i += 1;
                continue;
            }
            let from = i;
            let mut flags = 0u8;
            while i < n {
                let c = CLASS[usize::from(text[i])];
                if c & SPACE != 0 {
                    break;
                }
                flags |= c;
                i += 1;
            }
            // Neither is whitespace: counted here, they are counted over the text.
            if flags & (BANG | QUESTION) != 0 {
                for &c in &text[from..i] {
                    self.bangs += usize::from(c == b'!');
                    self.questions += usize::from(c == b'?');
                }
            }
            // `strip_punc_if_word`: punctuation bytes have no case, so `flags` is
            // also the stripped token's.
            let (mut s, mut e) = (from, i);
            if flags & PUNCT != 0 {
                while s < e && CLASS[usize::from(text[s])] & PUNCT != 0 {
                    s += 1;
                }
                while e > s && CLASS[usize::from(text[e - 1])] & PUNCT != 0 {
                    e -= 1;
                }
                if e - s <= 2 {
                    (s, e) = (from, i);
                }
            }
            let word = &text[s..e];
            let entry = if word.len() <= KEY_BYTES {
                self.tables
                    .by_key(pystr::lower_key(&b[s..s + KEY_BYTES], word.len()))
            } else {
                self.lower.clear();
                self.lower.extend(word.iter().map(u8::to_ascii_lowercase));
                self.tables.entry(&self.lower)
            };
            let negated = entry.negate || (flags & APOSTROPHE != 0 && pystr::has_nt_ascii(word));
            let upper = flags & UPPER != 0 && flags & LOWER == 0;
            self.push_token(upper, negated, entry);
        }
        self.padded = b;
    }

    #[inline]
    fn push_token(&mut self, upper: bool, negated: bool, entry: Entry) {
        if upper {
            self.upper += 1;
        }
        if entry.rule == Rule::But && self.but.is_none() {
            self.but = Some(self.tokens.len());
        }
        self.tokens.push(Token {
            upper,
            negated,
            entry,
        });
    }

    #[inline]
    fn in_lexicon(&self, i: usize) -> bool {
        self.tokens[i].entry.valence.is_some()
    }

    #[inline]
    fn negated(&self, i: usize) -> bool {
        self.tokens[i].negated
    }

    /// Which rule word token `i` is.
    #[inline]
    fn rule(&self, i: usize) -> Rule {
        self.tokens[i].entry.rule
    }

    fn valence(&self, i: usize, cap_diff: bool) -> f64 {
        let n = self.tokens.len();
        let Some(base) = self.tokens[i].entry.valence else {
            return 0.0;
        };
        let mut valence = base;
        if self.rule(i) == Rule::No && i != n - 1 && self.in_lexicon(i + 1) {
            valence = 0.0;
        }
        if (i > 0 && self.rule(i - 1) == Rule::No)
            || (i > 1 && self.rule(i - 2) == Rule::No)
            || (i > 2
                && self.rule(i - 3) == Rule::No
                && matches!(self.rule(i - 1), Rule::Or | Rule::Nor))
        {
            valence = base * N_SCALAR;
        }
        if self.tokens[i].upper && cap_diff {
            if valence > 0.0 {
                valence += C_INCR;
            } else {
                valence -= C_INCR;
            }
        }
        for start_i in 0..3 {
            if i > start_i && !self.in_lexicon(i - (start_i + 1)) {
                let mut s = self.scalar_inc_dec(i - (start_i + 1), valence, cap_diff);
                if start_i == 1 && s != 0.0 {
                    s *= 0.95;
                }
                if start_i == 2 && s != 0.0 {
                    s *= 0.9;
                }
                valence += s;
                valence = self.negation_check(valence, start_i, i);
                if start_i == 2 {
                    valence = self.special_idioms_check(valence, i);
                }
            }
        }
        self.least_check(valence, i)
    }

    fn scalar_inc_dec(&self, j: usize, valence: f64, cap_diff: bool) -> f64 {
        let t = &self.tokens[j];
        let Some(mut scalar) = t.entry.booster_scalar() else {
            return 0.0;
        };
        if valence < 0.0 {
            scalar = -scalar;
        }
        if t.upper && cap_diff {
            if valence > 0.0 {
                scalar += C_INCR;
            } else {
                scalar -= C_INCR;
            }
        }
        scalar
    }

    fn negation_check(&self, valence: f64, start_i: usize, i: usize) -> f64 {
        let so_this = |j: usize| matches!(self.rule(j), Rule::So | Rule::This);
        match start_i {
            0 if self.negated(i - 1) => valence * N_SCALAR,
            1 => {
                if self.rule(i - 2) == Rule::Never && so_this(i - 1) {
                    valence * 1.25
                } else if self.rule(i - 2) == Rule::Without && self.rule(i - 1) == Rule::Doubt {
                    valence
                } else if self.negated(i - 2) {
                    valence * N_SCALAR
                } else {
                    valence
                }
            }
            2 => {
                // The reference's `a and b or c` groups as `(a and b) or c`.
                if (self.rule(i - 3) == Rule::Never && so_this(i - 2)) || so_this(i - 1) {
                    valence * 1.25
                } else if self.rule(i - 3) == Rule::Without
                    && (self.rule(i - 2) == Rule::Doubt || self.rule(i - 1) == Rule::Doubt)
                {
                    valence
                } else if self.negated(i - 3) {
                    valence * N_SCALAR
                } else {
                    valence
                }
            }
            _ => valence,
        }
    }

    /// Whether the tokens at `idx` spell `phrase` (its words' phrase numbers).
    fn spells(&self, idx: &[usize], phrase: &[u8]) -> bool {
        idx.len() == phrase.len()
            && idx
                .iter()
                .zip(phrase)
                .all(|(&j, &w)| self.tokens[j].entry.phrase == w)
    }

    /// Whether the tokens at `idx` could spell a phrase at all (each is a phrase word).
    #[inline]
    fn may_spell(&self, idx: &[usize]) -> bool {
        idx.iter().all(|&j| self.tokens[j].entry.phrase != 0)
    }

    fn special_case(&self, idx: &[usize]) -> Option<f64> {
        if !self.may_spell(idx) {
            return None;
        }
        self.tables
            .special_cases
            .iter()
            .find(|(p, _)| self.spells(idx, p))
            .map(|(_, v)| *v)
    }

    /// Called for `i >= 3` only, as in the reference.
    fn special_idioms_check(&self, mut valence: f64, i: usize) -> f64 {
        let n = self.tokens.len();
        let seqs: [&[usize]; 5] = [
            &[i - 1, i],
            &[i - 2, i - 1, i],
            &[i - 2, i - 1],
            &[i - 3, i - 2, i - 1],
            &[i - 3, i - 2],
        ];
        if let Some(v) = seqs.iter().find_map(|s| self.special_case(s)) {
            valence = v;
        }
        if n - 1 > i
            && let Some(v) = self.special_case(&[i, i + 1])
        {
            valence = v;
        }
        if n - 1 > i + 1
            && let Some(v) = self.special_case(&[i, i + 1, i + 2])
        {
            valence = v;
        }
        for seq in [&[i - 3, i - 2, i - 1][..], &[i - 3, i - 2], &[i - 2, i - 1]] {
            if !self.may_spell(seq) {
                continue;
            }
            for (p, v) in &self.tables.booster_ngrams {
                if self.spells(seq, p) {
                    valence += v;
                }
            }
        }
        valence
    }

    fn least_check(&self, valence: f64, i: usize) -> f64 {
        if i > 1 && !self.in_lexicon(i - 1) && self.rule(i - 1) == Rule::Least {
            if !matches!(self.rule(i - 2), Rule::At | Rule::Very) {
                return valence * N_SCALAR;
            }
        } else if i > 0 && !self.in_lexicon(i - 1) && self.rule(i - 1) == Rule::Least {
            return valence * N_SCALAR;
        }
        valence
    }

    /// The reference's "but" rule, including its quirk: each value is written back at
    /// the index of the first value equal to it, not at its own index.
    fn but_check(&self, sentiments: &mut [f64]) {
        let Some(bi) = self.but else {
            return;
        };
        for k in 0..sentiments.len() {
            let s = sentiments[k];
            // Most tokens score 0, and halving or boosting a 0 leaves it 0 (at most
            // its sign changes, which no sum shows): only the others need the search.
            if s == 0.0 {
                continue;
            }
            let Some(si) = sentiments.iter().position(|&x| x == s) else {
                continue;
            };
            if si < bi {
                sentiments[si] = s * 0.5;
            } else if si > bi {
                sentiments[si] = s * 1.5;
            }
        }
    }
}

/// Punctuation emphasis of `ep` "!" and `qm` "?": up to four "!" at 0.292 each;
/// two or three "?" at 0.18 each, more at 0.96.
fn punctuation_emphasis(ep: usize, qm: usize) -> f64 {
    let ep = ep.min(4) as f64 * 0.292;
    let qm = match qm {
        0 | 1 => 0.0,
        2 | 3 => qm as f64 * 0.18,
        _ => 0.96,
    };
    ep + qm
}

fn compound_of(sentiments: &[f64], punct: f64) -> f64 {
    if sentiments.is_empty() {
        return 0.0;
    }
    let mut sum: f64 = sentiments.iter().sum();
    if sum > 0.0 {
        sum += punct;
    } else if sum < 0.0 {
        sum -= punct;
    }
    let norm = (sum / (sum * sum + 15.0).sqrt()).clamp(-1.0, 1.0);
    (norm * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_examples() {
        let mut s = Scorer::new();
        // The reference's own examples, with its published scores.
        for (text, compound) in [
            ("VADER is smart, handsome, and funny.", 0.8316),
            ("VADER is smart, handsome, and funny!", 0.8439),
            ("VADER is very smart, handsome, and funny.", 0.8545),
            ("VADER is VERY SMART, handsome, and FUNNY.", 0.9227),
            ("VADER is VERY SMART, handsome, and FUNNY!!!", 0.9342),
            ("VADER is not smart, handsome, nor funny.", -0.7424),
            ("The book was good.", 0.4404),
            ("At least it isn't a horrible book.", 0.431),
            ("The book was only kind of good.", 0.3832),
            (
                "The plot was good, but the characters are uncompelling and the dialog is not great.",
                -0.7042,
            ),
            ("Today SUX!", -0.5461),
            ("Today only kinda sux! But I'll get by, lol", 0.5249),
            ("Make sure you :) or :D today!", 0.8633),
            ("Not bad at all", 0.431),
            // Tokens with an "n't" that are not in the negation list (scores from
            // vaderSentiment 3.3.2): negated by the "n't" alone.
            ("It shouldn't've been good", -0.3412),
            ("They WOULDN'T'VE liked it, the food was great", 0.4153),
            ("Ain't nobody got time, it wasn't've happy", -0.4585),
            ("", 0.0),
        ] {
            assert_eq!(s.compound(text), compound, "{text}");
        }
        assert_eq!(Label::of(0.05), Label::Positive);
        assert_eq!(Label::of(0.0499), Label::Neutral);
        assert_eq!(Label::of(-0.05), Label::Negative);
    }
}
