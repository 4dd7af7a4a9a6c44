//! Scores a CSV file with the analysis runner alone: no API, queue or database, so a
//! profiler (`perf`, or `valgrind --tool=callgrind`, whose instruction counts do not
//! drift with the machine's load) sees only the per-row work.
//!
//! ```sh
//! cargo build --release --example score_file -p drover-analysis
//! ./target/release/examples/score_file data.csv results.csv title review
//! ```
//!
//! The header is read as a plain comma-separated line (no quoted names).

use std::error::Error;
use std::path::Path;
use std::time::{Duration, Instant};

use drover_analysis::runner::{RunState, Runner, Selection};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, results, columns @ ..] = args.as_slice() else {
        return Err("usage: score_file DATA.csv RESULTS.csv COLUMN...".into());
    };
    let data = Path::new(data);
    let first = std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(data)?))
        .next()
        .ok_or("the file is empty")??;
    let header: Vec<String> = first.split(',').map(str::to_owned).collect();
    let sel = Selection::new(&header, columns).map_err(|c| format!("no column {c:?}"))?;
    let state = RunState::fresh(first.len() as u64 + 1, columns);
    let mut runner = Runner::open(data, std::fs::File::create(results)?, sel, state)?;
    let t = Instant::now();
    while !runner.step(u64::MAX, Duration::from_secs(3600))? {}
    let secs = t.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(data)?.len() as f64;
    println!(
        "{{\"rows\":{},\"secs\":{secs:.3},\"mb_per_s\":{:.1}}}",
        runner.state().rows,
        bytes / 1e6 / secs
    );
    Ok(())
}
