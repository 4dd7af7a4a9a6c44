//! Parity of our VADER scorer with the reference, Python `vaderSentiment` 3.3.2.
//!
//! The fixture holds generated texts with the reference's compound scores; it is
//! rebuilt by `ops/scripts/vader_fixture.py`. No network: the file is committed.

use std::io::{BufRead, BufReader};

use drover_analysis::vader::{Label, Scorer};

#[test]
fn matches_the_reference_on_the_fixture() {
    let file = std::fs::File::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/vader_parity.jsonl.gz"
    ))
    .unwrap();
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    let mut scorer = Scorer::new();
    let (mut total, mut same_label, mut close) = (0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    for line in reader.lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let text = v["text"].as_str().unwrap();
        let want = v["compound"].as_f64().unwrap();
        let got = scorer.compound(text);
        total += 1;
        same_label += usize::from(Label::of(got) == Label::of(want));
        if (got - want).abs() <= 1e-3 {
            close += 1;
        } else if misses.len() < 20 {
            misses.push(format!("{text:?}: ours {got}, reference {want}"));
        }
    }
    let label_share = same_label as f64 / total as f64;
    let close_share = close as f64 / total as f64;
    eprintln!(
        "{total} texts: same label {same_label} ({:.4} %), compound within 1e-3 {close} ({:.4} %)",
        label_share * 100.0,
        close_share * 100.0
    );
    for m in &misses {
        eprintln!("  {m}");
    }
    assert!(total >= 10_000, "the fixture has only {total} texts");
    assert!(label_share >= 0.999, "same label on {label_share}");
    assert!(close_share >= 0.99, "compound within 1e-3 on {close_share}");
}
