//! Times forward passes: `cargo run --release -p perplex-model --example
//! timing -- MODEL [LEN…]` scores one window of each length (default 512)
//! of pseudo-random token ids, scoring every position, and prints seconds
//! per window and tokens per second. `PERPLEX_THREADS=n` sets the pool size.

use std::time::Instant;

use perplex_core::{CausalLm, WindowRef};
use perplex_model::{load_model, LoadOptions};

#[allow(clippy::print_stdout)] // an example whose output is the timing
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let spec = args.next().ok_or("usage: timing MODEL [LEN…]")?;
    let lens: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let lens = if lens.is_empty() { vec![512] } else { lens };
    let threads = std::env::var("PERPLEX_THREADS")
        .ok()
        .map(|t| t.parse())
        .transpose()?;
    let opts = LoadOptions {
        threads,
        ..LoadOptions::default()
    };
    let start = Instant::now();
    let (mut model, identity) = load_model(&spec, &opts)?;
    println!(
        "loaded {} ({}) in {:.2} s",
        identity.path,
        identity.weights,
        start.elapsed().as_secs_f64()
    );
    let vocab = model.info().vocab_size as u64;
    for len in lens {
        let tokens: Vec<u32> = (0..len as u64)
            .map(|i| ((i * 2_654_435_761 + 12_345) % vocab) as u32)
            .collect();
        let start = Instant::now();
        let scores = model.score_batch(&[WindowRef {
            tokens: &tokens,
            score_from: 1,
        }])?;
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "window {len}: {seconds:.2} s ({:.0} tokens/s), {} positions scored",
            len as f64 / seconds,
            scores[0].len()
        );
    }
    Ok(())
}
