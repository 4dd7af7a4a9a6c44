//! VADER's tables: the published lexicon and emoji descriptions (embedded, see
//! `data/README.md`) and the rule words of the reference (boosters, negations,
//! special-case idioms), merged so that one hash lookup per token answers every
//! question the rules ask about a word.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::LazyLock;

/// Booster: mean rise in intensity for a degree adverb.
pub const B_INCR: f64 = 0.293;
/// Dampener: mean fall in intensity.
pub const B_DECR: f64 = -0.293;
/// Rise for a word in ALL CAPS among words that are not.
pub const C_INCR: f64 = 0.733;
/// Scale of a negated valence.
pub const N_SCALAR: f64 = -0.74;

const LEXICON: &str = include_str!("data/vader_lexicon.txt");
const EMOJIS: &str = include_str!("data/emoji_utf8_lexicon.txt");

/// The reference's `NEGATE` list.
const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

const BOOSTERS_UP: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];

const BOOSTERS_DOWN: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sorta",
    "sortof",
    "sort-of",
];

/// The booster entries of several words: only the idiom check can match them.
pub const BOOSTER_NGRAMS: &[(&[&str], f64)] = &[
    (&["just", "enough"], B_DECR),
    (&["kind", "of"], B_DECR),
    (&["sort", "of"], B_DECR),
];

/// The reference's `SPECIAL_CASES` of several words (its one-word `badass` can never
/// match a sequence of two or three tokens, as in the reference).
pub const SPECIAL_CASES: &[(&[&str], f64)] = &[
    (&["the", "shit"], 3.0),
    (&["the", "bomb"], 3.0),
    (&["bad", "ass"], 1.5),
    (&["bus", "stop"], 0.0),
    (&["yeah", "right"], -2.0),
    (&["kiss", "of", "death"], -1.5),
    (&["to", "die", "for"], 3.0),
    (&["beating", "heart"], 3.5),
];

/// The words the rules compare tokens with, named, so that each comparison in the
/// rules is of one byte instead of a string (they were a tenth of the scorer's time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Rule {
    #[default]
    None,
    No,
    Never,
    Without,
    Doubt,
    So,
    This,
    Least,
    At,
    Very,
    Or,
    Nor,
    But,
    Kind,
    Of,
}

const RULE_WORDS: &[(&str, Rule)] = &[
    ("no", Rule::No),
    ("never", Rule::Never),
    ("without", Rule::Without),
    ("doubt", Rule::Doubt),
    ("so", Rule::So),
    ("this", Rule::This),
    ("least", Rule::Least),
    ("at", Rule::At),
    ("very", Rule::Very),
    ("or", Rule::Or),
    ("nor", Rule::Nor),
    ("but", Rule::But),
    ("kind", Rule::Kind),
    ("of", Rule::Of),
];

/// What the rules need to know about one lowercase word.
#[derive(Debug, Clone, Copy, Default)]
pub struct Entry {
    /// Its valence in the lexicon.
    pub valence: Option<f64>,
    /// Its booster (`1`, scalar [`B_INCR`]) or dampener (`-1`, [`B_DECR`]); `0`: neither.
    pub booster: i8,
    /// Whether it is in `NEGATE`.
    pub negate: bool,
    /// Its number among the words of the phrases in `SPECIAL_CASES` and
    /// `BOOSTER_NGRAMS` (from 1; 0 if it is in none). The phrase rules compare these
    /// numbers, so a token needs no copy of its word; and a sequence with a 0 cannot
    /// spell any phrase, which spares the comparisons for nearly every sequence.
    pub phrase: u8,
    /// Which rule word it is, if any.
    pub rule: Rule,
}

impl Entry {
    /// The booster's scalar, if the word is one.
    #[inline]
    pub fn booster_scalar(self) -> Option<f64> {
        match self.booster {
            0 => None,
            b if b > 0 => Some(B_INCR),
            _ => Some(B_DECR),
        }
    }
}

/// Words of up to this many bytes are looked up by a [`Key`] held in two registers.
pub const KEY_BYTES: usize = 16;

/// A lowercase word as the tables look it up: its first 16 bytes (zero-padded) and
/// its length. Two words of at most [`KEY_BYTES`] bytes are equal exactly when their
/// keys are, so the lookup compares two integers and a length instead of
/// bytes (a `memcmp` call per token was a sixth of the scorer's time). Longer words
/// (rare: no rule word is one) go through [`Tables::entry`] by their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Key {
    pub lo: u64,
    pub hi: u64,
    pub len: u32,
}

impl Key {
    /// The key of `word`, already lowercase, of at most [`KEY_BYTES`] bytes.
    #[must_use]
    pub fn of(word: &[u8]) -> Self {
        let mut w = [0u8; KEY_BYTES];
        let n = word.len().min(KEY_BYTES);
        w[..n].copy_from_slice(&word[..n]);
        let (lo, hi) = w.split_at(8);
        Self {
            lo: u64::from_le_bytes(lo.try_into().unwrap_or_default()),
            hi: u64::from_le_bytes(hi.try_into().unwrap_or_default()),
            len: u32::try_from(word.len()).unwrap_or(u32::MAX),
        }
    }

    /// Whether this is a word too long to be looked up by its key.
    #[inline]
    #[must_use]
    pub fn is_long(self) -> bool {
        self.len as usize > KEY_BYTES
    }
}

impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.lo ^ self.hi.rotate_left(29) ^ (u64::from(self.len) << 57));
    }
}

/// A fast non-cryptographic hash for the keys (the lexicon is fixed: no adversary
/// can choose its keys' collisions). The folded 128-bit product spreads every input
/// bit to both the low bits (the bucket) and the high bits (the tag).
#[derive(Default, Clone, Copy)]
pub struct WordHasher(u64);

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w) ^ (c.len() as u64) << 59);
        }
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        let m = u128::from(self.0 ^ i) * 0x9e37_79b9_7f4a_7c15_u128;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// A phrase of the rules, as its words' [`Entry::phrase`] numbers, and its value.
pub type Phrase = (Vec<u8>, f64);

/// The merged tables.
pub struct Tables {
    words: Map<Key, Entry>,
    /// Words longer than [`KEY_BYTES`].
    long: Map<&'static [u8], Entry>,
    emojis: Map<char, &'static str>,
    /// `SPECIAL_CASES` and `BOOSTER_NGRAMS`, as phrase numbers.
    pub special_cases: Vec<Phrase>,
    pub booster_ngrams: Vec<Phrase>,
}

impl Tables {
    /// What the rules know about `lower`, a lowercase token.
    #[inline]
    pub fn entry(&self, lower: &[u8]) -> Entry {
        if lower.len() > KEY_BYTES {
            self.long.get(lower).copied().unwrap_or_default()
        } else {
            self.by_key(Key::of(lower))
        }
    }

    /// What the rules know about the word of `key` (of at most [`KEY_BYTES`] bytes).
    #[inline]
    pub fn by_key(&self, key: Key) -> Entry {
        self.words.get(&key).copied().unwrap_or_default()
    }

    /// The description the reference puts in place of an emoji.
    #[inline]
    pub fn emoji(&self, c: char) -> Option<&'static str> {
        self.emojis.get(&c).copied()
    }
}

/// Python's `str.strip()` (Unicode whitespace, plus `\x1c`..`\x1f`).
fn py_strip(s: &str) -> &str {
    s.trim_matches(super::pystr::is_space)
}

fn build() -> Tables {
    let mut all: Map<&'static [u8], Entry> = Map::default();
    // As the reference: `rstrip('\n').split('\n')`, blank lines skipped, then
    // `strip().split('\t')[0:2]`; a later line of the same word wins.
    for line in LEXICON.trim_end_matches('\n').split('\n') {
        if line.is_empty() {
            continue;
        }
        let mut cols = py_strip(line).split('\t');
        let (Some(word), Some(measure)) = (cols.next(), cols.next()) else {
            continue;
        };
        if let Ok(v) = measure.parse::<f64>() {
            all.entry(word.as_bytes()).or_default().valence = Some(v);
        }
    }
    for w in BOOSTERS_UP {
        all.entry(w.as_bytes()).or_default().booster = 1;
    }
    for w in BOOSTERS_DOWN {
        all.entry(w.as_bytes()).or_default().booster = -1;
    }
    for w in NEGATE {
        all.entry(w.as_bytes()).or_default().negate = true;
    }
    for (w, rule) in RULE_WORDS {
        all.entry(w.as_bytes()).or_default().rule = *rule;
    }
    let mut numbers: Vec<&'static str> = Vec::new();
    for (phrase, _) in SPECIAL_CASES.iter().chain(BOOSTER_NGRAMS) {
        for w in *phrase {
            if !numbers.contains(w) {
                numbers.push(w);
                // 21 words: far from the 255 a byte numbers.
                all.entry(w.as_bytes()).or_default().phrase = numbers.len() as u8;
            }
        }
    }
    let number = |w: &str| {
        numbers
            .iter()
            .position(|n| *n == w)
            .map_or(0, |i| i as u8 + 1)
    };
    let phrases = |list: &[(&[&'static str], f64)]| -> Vec<Phrase> {
        list.iter()
            .map(|(p, v)| (p.iter().map(|w| number(w)).collect(), *v))
            .collect()
    };
    let mut words = Map::default();
    let mut long = Map::default();
    for (w, e) in all {
        if w.len() > KEY_BYTES {
            long.insert(w, e);
        } else {
            words.insert(Key::of(w), e);
        }
    }
    let mut emojis: Map<char, &'static str> = Map::default();
    for line in EMOJIS.trim_end_matches('\n').split('\n') {
        let mut cols = py_strip(line).split('\t');
        let (Some(key), Some(desc)) = (cols.next(), cols.next()) else {
            continue;
        };
        // The reference looks emojis up one character at a time: keys of several
        // characters (skin tones, flags, sequences) never match.
        let mut chars = key.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            emojis.insert(c, desc);
        }
    }
    Tables {
        words,
        long,
        emojis,
        special_cases: phrases(SPECIAL_CASES),
        booster_ngrams: phrases(BOOSTER_NGRAMS),
    }
}

/// The tables, built on first use (a few milliseconds).
pub static TABLES: LazyLock<Tables> = LazyLock::new(build);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_hold_the_published_lexicon() {
        let t = &*TABLES;
        assert_eq!(t.entry(b"good").valence, Some(1.9));
        assert_eq!(t.entry(b":)").valence, Some(2.0));
        assert_eq!(t.entry(b"very").booster_scalar(), Some(B_INCR));
        assert_eq!(t.entry(b"kinda").booster_scalar(), Some(B_DECR));
        assert_eq!(t.entry(b"good").booster_scalar(), None);
        // Longer than a key: looked up by its bytes.
        let long = t
            .long
            .keys()
            .next()
            .copied()
            .expect("the lexicon has long words");
        assert!(long.len() > KEY_BYTES);
        assert!(t.entry(long).valence.is_some() || t.entry(long).negate);
        assert_ne!(Key::of(b"ab"), Key::of(b"ab\0"));
        assert!(t.entry(b"isn't").negate);
        assert!(t.entry(b"death").phrase > 0 && t.entry(b"of").phrase > 0);
        assert_ne!(t.entry(b"death").phrase, t.entry(b"of").phrase);
        assert_eq!(t.entry(b"good").phrase, 0);
        assert_eq!(
            t.special_cases[0].0,
            [t.entry(b"the").phrase, t.entry(b"shit").phrase]
        );
        assert_eq!(t.entry(b"but").rule, Rule::But);
        assert_eq!(t.entry(b"good").rule, Rule::None);
        assert!(t.entry(b"table").valence.is_none());
        assert_eq!(t.emoji('😁'), Some("beaming face with smiling eyes"));
        assert!(t.words.len() + t.long.len() > 7000);
        assert!(t.emojis.len() > 1000);
    }
}
