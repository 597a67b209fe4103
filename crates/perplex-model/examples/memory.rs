//! Checks the memory estimate against a real forward pass:
//! `cargo run --release -p perplex-model --example memory -- MODEL WINDOWS LEN`
//! loads MODEL, scores one batch of WINDOWS windows of LEN pseudo-random
//! tokens, and prints the batch's working set as estimated
//! ([`CausalLm::working_memory`]) and as measured (the growth of the
//! process's peak RSS, `VmHWM`, over the forward pass). Run one shape per
//! process: the peak only grows. `PERPLEX_THREADS=n` sets the pool size.
//! `scripts/bench-memory` runs a grid.

use perplex_core::{CausalLm, WindowRef};
use perplex_model::{load_model, LoadOptions};

/// The process's peak resident set, in bytes.
fn peak_rss() -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    let kib: u64 = line.split_whitespace().nth(1).ok_or("bad VmHWM")?.parse()?;
    Ok(kib * 1024)
}

#[allow(clippy::print_stdout)] // an example whose output is the measurement
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [spec, windows, len] = args.as_slice() else {
        return Err("usage: memory MODEL WINDOWS LEN".into());
    };
    let (windows, len): (usize, usize) = (windows.parse()?, len.parse()?);
    let threads = std::env::var("PERPLEX_THREADS")
        .ok()
        .map(|t| t.parse())
        .transpose()?;
    let opts = LoadOptions {
        threads,
        ..LoadOptions::default()
    };
    let (mut model, _) = load_model(spec, &opts)?;
    let vocab = model.info().vocab_size as u64;
    // a fixed pseudo-random sequence (any ids: the cost does not depend on them)
    let tokens: Vec<Vec<u32>> = (0..windows as u64)
        .map(|w| {
            (0..len as u64)
                .map(|i| ((w * 7919 + i * 104_729) % vocab) as u32)
                .collect()
        })
        .collect();
    let batch: Vec<WindowRef<'_>> = tokens
        .iter()
        .map(|t| WindowRef {
            tokens: t,
            score_from: 1,
        })
        .collect();
    let estimate = model.working_memory(windows, len).ok_or("no estimate")?;
    let before = peak_rss()?;
    model.score_batch(&batch)?;
    let measured = peak_rss()?.saturating_sub(before);
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!(
        "{windows} x {len}: estimated {:.0} MiB, measured {:.0} MiB, estimate / measured {:.2}",
        mib(estimate),
        mib(measured),
        estimate as f64 / measured.max(1) as f64
    );
    Ok(())
}
