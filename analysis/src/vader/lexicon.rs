//! VADER's tables: the published lexicon and emoji descriptions (embedded, see
//! `data/README.md`) and the rule words of the reference (boosters, negations,
//! special-case idioms), merged so that one hash lookup per token answers every
//! question the rules ask about a word.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
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
    /// Its booster (or dampener) scalar.
    pub booster: Option<f64>,
    /// Whether it is in `NEGATE`.
    pub negate: bool,
    /// Whether it is a word of some phrase in `SPECIAL_CASES` or `BOOSTER_NGRAMS`:
    /// a sequence with a word that is not cannot spell any of them, which spares the
    /// phrase comparisons for nearly every sequence (they were a tenth of the
    /// scorer's time).
    pub in_phrase: bool,
    /// Which rule word it is, if any.
    pub rule: Rule,
}

/// A fast non-cryptographic hash for short words (the lexicon is fixed: no
/// adversary can choose its keys' collisions).
#[derive(Default, Clone, Copy)]
pub struct WordHasher(u64);

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w) ^ (rest.len() as u64) << 59)
                .wrapping_mul(K);
        }
        self.0 = h;
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// The merged tables.
pub struct Tables {
    words: Map<&'static [u8], Entry>,
    emojis: Map<char, &'static str>,
}

impl Tables {
    /// What the rules know about `lower`, a lowercase token.
    #[inline]
    pub fn entry(&self, lower: &[u8]) -> Entry {
        self.words.get(lower).copied().unwrap_or_default()
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
    let mut words: Map<&'static [u8], Entry> = Map::default();
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
            words.entry(word.as_bytes()).or_default().valence = Some(v);
        }
    }
    for w in BOOSTERS_UP {
        words.entry(w.as_bytes()).or_default().booster = Some(B_INCR);
    }
    for w in BOOSTERS_DOWN {
        words.entry(w.as_bytes()).or_default().booster = Some(B_DECR);
    }
    for w in NEGATE {
        words.entry(w.as_bytes()).or_default().negate = true;
    }
    for (w, rule) in RULE_WORDS {
        words.entry(w.as_bytes()).or_default().rule = *rule;
    }
    for (phrase, _) in SPECIAL_CASES.iter().chain(BOOSTER_NGRAMS) {
        for w in *phrase {
            words.entry(w.as_bytes()).or_default().in_phrase = true;
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
    Tables { words, emojis }
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
        assert_eq!(t.entry(b"very").booster, Some(B_INCR));
        assert_eq!(t.entry(b"kinda").booster, Some(B_DECR));
        assert!(t.entry(b"isn't").negate);
        assert!(t.entry(b"death").in_phrase && t.entry(b"of").in_phrase);
        assert!(!t.entry(b"good").in_phrase);
        assert_eq!(t.entry(b"but").rule, Rule::But);
        assert_eq!(t.entry(b"good").rule, Rule::None);
        assert!(t.entry(b"table").valence.is_none());
        assert_eq!(t.emoji('😁'), Some("beaming face with smiling eyes"));
        assert!(t.words.len() > 7000);
        assert!(t.emojis.len() > 1000);
    }
}
