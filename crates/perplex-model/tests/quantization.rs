//! What quantization costs, measured with `compare` on the demo model:
//! SmolLM2-135M-Instruct Q4_1 against copies of itself re-quantized to Q8_0
//! and Q4_0 (no higher-precision original is reachable from a package
//! registry; see docs/compare.md). The copies are written here, from the
//! Q4_1 file's dequantized weights, so the differences measured are those
//! of Q8_0 and Q4_0 rounding on a real model's weights.
//!
//! A slow test (`perplex_testkit`): ignored, with the reason, in the quick
//! tier or without the demo model or the reference text, unless the run
//! requires them (CI, or `scripts/test` after fetching).

use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;
use perplex_core::compare::Outcome;
use perplex_core::{CausalLm, Protocol, ResolvedBos};
use perplex_eval::engine::{compare, EvalSettings};
use perplex_eval::{EvalOptions, NullSink};
use perplex_model::{load, LoadOptions};
use perplex_testkit::{run_tests, Resource, SlowTest};

/// The first 80 chunks of 512 tokens of WikiText-2's test split.
const CORPUS: &str = "wiki.test.80chunks.raw";

/// Writes `src` with every Q4_1 tensor re-quantized to `dtype`.
fn requantize(src: &Path, dst: &Path, dtype: GgmlDType) {
    let mut file = std::fs::File::open(src).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let mut tensors = Vec::new();
    for name in content.tensor_infos.keys() {
        let q = content.tensor(&mut file, name, &Device::Cpu).unwrap();
        let q = if q.dtype() == GgmlDType::Q4_1 {
            QTensor::quantize(&q.dequantize(&Device::Cpu).unwrap(), dtype).unwrap()
        } else {
            q
        };
        tensors.push((name.clone(), q));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = std::fs::File::create(dst).unwrap();
    gguf_file::write(&mut out, &metadata, &tensors).unwrap();
}

#[allow(clippy::print_stderr)] // the measured figures, for people reading the log
fn requantized_copies_differ_as_their_precision_says() {
    let demo = Resource::demo_model().path().to_owned();
    let text = std::fs::read_to_string(Resource::reference(CORPUS).path()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (q8, q4) = (tmp.path().join("q8_0.gguf"), tmp.path().join("q4_0.gguf"));
    requantize(&demo, &q8, GgmlDType::Q8_0);
    requantize(&demo, &q4, GgmlDType::Q4_0);

    let opts = LoadOptions::default();
    let mut base = load(demo.to_str().unwrap(), &opts).unwrap();
    let ids = base.tokenizer.encode(&text).unwrap();
    let docs = vec![ids[..6 * 512].to_vec()];
    let options = EvalOptions::builder(Protocol::Chunks { context: 512 })
        .batch_size(2)
        .build()
        .unwrap();
    let settings = EvalSettings::new(&options, ResolvedBos::None);
    let mut m8 = load(q8.to_str().unwrap(), &opts).unwrap();
    let mut m4 = load(q4.to_str().unwrap(), &opts).unwrap();
    let mut models: Vec<&mut dyn CausalLm> =
        vec![base.model.as_mut(), m8.model.as_mut(), m4.model.as_mut()];
    let out = compare(&mut models, &docs, &settings, &mut NullSink).unwrap();
    let s8 = out.pairs[0].summary(0.95).unwrap();
    let s4 = out.pairs[1].summary(0.95).unwrap();
    for (name, s) in [("q8_0", &s8), ("q4_0", &s4)] {
        eprintln!(
            "Q4_1 vs {name}: ppl {:.4} -> {:.4}, mean dnll {:+.5} (se {:.5}), KL mean {:.6} \
             (p99 {:.5}, max {:.4}), same top-1 {:.2} %, dp RMS {:.3} %, verdict {:?} ({})",
            s.base_perplexity,
            s.other_perplexity,
            s.mean_nll_difference.value,
            s.mean_nll_difference.stderr.unwrap(),
            s.kl_divergence.mean,
            s.kl_divergence.percentiles[1].value,
            s.kl_divergence.max,
            s.top1_agreement.value * 100.0,
            s.delta_p.rms * 100.0,
            s.verdict.outcome,
            s.verdict.basis
        );
    }
    assert_eq!(s8.tokens, 6 * 511);
    // Q8_0 rounding is small; Q4_0's is an order of magnitude larger, and
    // makes the model significantly worse
    assert!(
        s8.kl_divergence.mean > 0.0 && s8.kl_divergence.mean < 0.01,
        "{s8:?}"
    );
    assert!(s8.top1_agreement.value > 0.95);
    assert!(s4.kl_divergence.mean > 5.0 * s8.kl_divergence.mean);
    assert!(s4.top1_agreement.value < s8.top1_agreement.value);
    assert_eq!(s4.verdict.outcome, Outcome::Worse, "{s4:?}");
    assert_eq!(s4.verdict.basis, "window bootstrap");
}

fn main() {
    run_tests(vec![SlowTest::new(
        "requantized_copies_differ_as_their_precision_says",
        requantized_copies_differ_as_their_precision_says,
    )
    .needs([Resource::demo_model(), Resource::reference(CORPUS)])]);
}
