#!/usr/bin/env python3
"""Regenerates the VADER parity fixture: texts scored by the reference implementation.

The Rust scorer (crate `drover-analysis`, module `vader`) is our own code over VADER's
published lexicon; its test `vader_parity` compares it, offline, with the scores this
script writes. The reference is Python `vaderSentiment` 3.3.2 (MIT):

    python3 -m venv /tmp/vader-venv
    /tmp/vader-venv/bin/pip install vaderSentiment==3.3.2
    /tmp/vader-venv/bin/python ops/scripts/vader_fixture.py

The texts are generated from a fixed seed, so the fixture only changes when this script
does. They cover every rule of the reference: lexicon words (in several casings),
boosters and dampeners (one, two and three words before), negations (words, "n't",
"no", "never so", "without doubt", "least"), ALL-CAPS emphasis, "but", "kind of",
punctuation emphasis, emoticons, emojis, the special-case idioms, Unicode casing and
whitespace, and review-like sentences built from all of them.

Output: analysis/tests/fixtures/vader_parity.jsonl.gz, one {"text", "compound"} a line.
"""

import gzip
import json
import os
import random
import sys

from vaderSentiment import vaderSentiment as vs

SEED = 20261201
OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "..", "analysis", "tests", "fixtures", "vader_parity.jsonl.gz",
)


def main():
    rng = random.Random(SEED)
    analyzer = vs.SentimentIntensityAnalyzer()
    lexicon = sorted(analyzer.lexicon)
    words = [w for w in lexicon if w.isalpha()]
    emoticons = [w for w in lexicon if not w.isalpha()]
    emojis = sorted(e for e in analyzer.emojis if len(e) == 1)
    boosters = sorted(vs.BOOSTER_DICT)
    negations = sorted(vs.NEGATE)
    specials = sorted(vs.SPECIAL_CASES)
    idioms = sorted(vs.SENTIMENT_LADEN_IDIOMS)
    neutral = ["the", "movie", "was", "it", "is", "food", "service", "this", "phone",
               "a", "and", "of", "at", "or", "nor", "doubt", "so", "this", "very",
               "least", "kind", "of", "sort", "just", "enough", "no", "really"]
    subjects = ["The movie", "This phone", "The service", "Our stay", "The food",
                "The plot", "My order", "The hotel", "Customer support", "The app"]
    puncts = ["", ".", "!", "!!", "!!!", "!!!!!", "?", "??", "???", "????", "?!", "!?!",
              "...", ",", ";"]

    def caps(w):
        r = rng.random()
        if r < 0.15:
            return w.upper()
        if r < 0.25:
            return w.capitalize()
        return w

    def word():
        return caps(rng.choice(words))

    def filler(n):
        return [rng.choice(neutral) for _ in range(n)]

    texts = []
    add = texts.append

    # Every alphabetic lexicon word alone (capped), plus casings.
    for w in words[:: max(1, len(words) // 2500)]:
        add(w)
    for w in rng.sample(words, 400):
        add(w.upper())
        add(f"it is {w.upper()} really")
    # Emoticons and symbols from the lexicon.
    for e in emoticons:
        add(f"{rng.choice(subjects)} {e}")
    # Boosters and dampeners one, two and three words before a lexicon word.
    for _ in range(1500):
        b = rng.choice(boosters)
        gap = filler(rng.randrange(0, 3))
        add(" ".join([rng.choice(subjects), "is", caps(b)] + gap + [word()]) + rng.choice(puncts))
    # Negations in each position, contractions, "no", "never so", "without doubt", "least".
    for _ in range(1500):
        n = rng.choice(negations + ["isn't", "doesn't", "wasn't", "NOT", "Never"])
        gap = filler(rng.randrange(0, 3))
        add(" ".join([rng.choice(subjects), caps(n)] + gap + [word()]) + rng.choice(puncts))
    for _ in range(300):
        w1, w2 = word(), word()
        add(rng.choice([
            f"no {w1}", f"no {w1} {w2}", f"no one {w1}", f"no {w1} or {w2}",
            f"no {rng.choice(neutral)} nor {w1}", f"never so {w1}", f"never this {w1}",
            f"never really so {w1}", f"without doubt {w1}", f"without a doubt, {w1}",
            f"without any doubt {w1}", f"at least {w1}", f"the least {w1}", f"very least {w1}",
            f"least {w1}", f"it is kind of {w1}", f"sort of {w1} but {w2}", f"just enough {w1}",
            f"kind {w1}", f"it's not {w1} at all",
        ]))
    # ALL-CAPS emphasis: some words in caps while others are not, and all caps.
    for _ in range(800):
        ws = [rng.choice(words) for _ in range(rng.randrange(2, 7))] + filler(2)
        rng.shuffle(ws)
        mode = rng.random()
        if mode < 0.2:
            ws = [w.upper() for w in ws]
        else:
            ws = [w.upper() if rng.random() < 0.3 else w for w in ws]
        add(" ".join(ws) + rng.choice(puncts))
    # "but", once or twice, with repeated valences (the reference's index quirk).
    for _ in range(1200):
        w1, w2, w3 = word(), word(), word()
        add(rng.choice([
            f"{rng.choice(subjects)} was {w1} but {w2}",
            f"{w1} {w1} but {w2} {w2}",
            f"{rng.choice(subjects)} is {w1}, but the {w2} is {w3}!",
            f"{w1} BUT {w2}",
            f"But {w1} and {w2}",
            f"{w1} but {w2} but {w3}",
            f"{w1} and {w1}, but not {w1}",
        ]) + rng.choice(puncts))
    # Emojis, next to words and to each other.
    for _ in range(900):
        e1, e2 = rng.choice(emojis), rng.choice(emojis)
        add(rng.choice([
            f"{rng.choice(subjects)} {e1}",
            f"{e1}{e2}",
            f"{word()}{e1} {word()}",
            f"{e1} {word()} {e2}!",
            f"{rng.choice(subjects)} was {word()}{e1}{e2}{e2}",
        ]))
    # Idioms: the special cases (scored) and the sentiment-laden ones (not scored).
    for s in specials + idioms:
        for tpl in ["{s}", "this is {s}", "it was {s}!", "really {s} and {w}",
                    "{w} {s}", "not {s}", "{s} {w} {w}", "so very {s}"]:
            add(tpl.format(s=s, w=word()))
    for _ in range(400):
        s = rng.choice(specials)
        add(" ".join(filler(rng.randrange(0, 4)) + [s] + filler(rng.randrange(0, 3)) + [word()]))
    # Unicode: accented words and caps, Greek, Turkish dotted I, NBSP and other spaces.
    uni = ["café", "ÉNORME", "naïve", "Straße", "ΟΔΟΣ", "İstanbul", "ǅemal", "ÆSIR",
           "ﬁne", "ß", "Σ", "ΣΑΣ", "日本", "ÇA", "straße"]
    for _ in range(500):
        sep = rng.choice([" ", "\u00a0", "\t", "\u2003", "\u3000", "\x1c", " \n "])
        ws = [rng.choice(uni), word(), rng.choice(uni), word()]
        rng.shuffle(ws)
        add(sep.join(ws) + rng.choice(puncts))
    # Punctuation around words and punctuation-only tokens.
    for _ in range(600):
        w = word()
        add(rng.choice([
            f"'{w}'", f"({w})", f"\"{w}!\"", f"{w}...", f"--{w}--", f"{w}?!?", f"..{w}",
            f"{w[:2]}!!", f"!!", f"? ? ?", f"{w}!!!!!!!!", f"{w}, {word()}; {word()}.",
        ]))
    # Review-like sentences: several clauses mixing every rule.
    clauses = [
        "{s} was {b} {w}", "{s} is {n} {w}", "I {b} {w} it", "{s} isn't {w} at all",
        "{s} was {w} but {w}", "never so {w}", "{W} {W}", "it was kind of {w}",
        "{s} {e}", "no {w} here", "{w} and {w}", "at least it was {w}",
    ]
    for _ in range(3500):
        parts = []
        for _ in range(rng.randrange(1, 4)):
            parts.append(rng.choice(clauses).format(
                s=rng.choice(subjects), b=rng.choice(boosters), n=rng.choice(negations),
                w=rng.choice(words), W=rng.choice(words).upper(), e=rng.choice(emojis + emoticons)))
        add(rng.choice([", ", ". ", "; ", " and "]).join(parts) + rng.choice(puncts))
    # Degenerate cells.
    for t in ["", " ", "   \t ", "!!!", "???", "a", "I", "OK", "ok", "no", "No!", "but",
              "kind of", "so", ":)", ":-)", "<3", "😁"]:
        add(t)

    rows = []
    for t in texts:
        rows.append(json.dumps({"text": t, "compound": analyzer.polarity_scores(t)["compound"]},
                               ensure_ascii=False))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:
        f.write(("\n".join(rows) + "\n").encode("utf-8"))
    print(f"{len(rows)} texts -> {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
