//! Comparing a base model with others (fine-tuned, adapted, quantized) on
//! the same scored tokens: the library behind `perplex compare`.

use std::time::Instant;

use perplex_core::compare::{BitsPerByteSummary, PairStats, UnitSums};
use perplex_core::lm::CausalLm;
use perplex_core::plan::ResolvedBos;
use perplex_core::report::{
    CompareReport, ComparedModel, DocumentDelta, PairReport, COMPARE_SCHEMA_VERSION,
};
use perplex_eval::Sink;
use perplex_model::LoadedModel;

use crate::{run_warnings, timing, tool_info, Corpus, Error, EvalOptions, Prepared};

/// How to compare.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// Windows, BOS, batching, limits: as for `eval`, shared by all models.
    pub eval: EvalOptions,
    /// Confidence of the intervals and the verdict (e.g. 0.95).
    pub confidence: f64,
    /// Compare bits per byte, each model with its own tokenizer, instead of
    /// token by token (for models whose tokenizers differ).
    pub bits_per_byte: bool,
}

impl CompareOptions {
    /// `eval` options at 95 % confidence.
    pub fn new(eval: EvalOptions) -> Self {
        CompareOptions {
            eval,
            confidence: 0.95,
            bits_per_byte: false,
        }
    }
}

/// Scores `corpus` with every model of `models` (the first is the base) on
/// the same windows in one pass, and compares each other model with the
/// base. Fails before any forward pass when a model's tokenizer gives
/// different ids from the base's on this corpus.
pub fn compare(
    models: &mut [LoadedModel],
    corpus: &Corpus,
    options: &CompareOptions,
    sink: &mut dyn Sink,
) -> Result<CompareReport, Error> {
    let Some(base) = models.first() else {
        return Err(Error::Compare("no models to compare".into()));
    };
    if !(options.confidence > 0.0 && options.confidence < 1.0) {
        return Err(Error::Compare(format!(
            "confidence {} is not between 0 and 1",
            options.confidence
        )));
    }
    if options.bits_per_byte {
        return compare_bits_per_byte(models, corpus, options, sink);
    }
    let prepared = Prepared::new(&base.tokenizer, corpus, &options.eval)?;
    for other in &models[1..] {
        let theirs = Prepared::new(&other.tokenizer, corpus, &options.eval)?;
        if let Some(detail) = first_difference(&prepared, &theirs) {
            return Err(Error::TokenizersDiffer {
                base: base.identity.spec.clone(),
                other: other.identity.spec.clone(),
                detail,
            });
        }
    }
    let mut warnings = Vec::new();
    for m in models.iter() {
        for w in run_warnings(m, &options.eval) {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    let settings = prepared.settings(&options.eval);
    let start = Instant::now();
    let outcome = {
        let mut lms: Vec<&mut dyn CausalLm> = models
            .iter_mut()
            .map(|m| &mut *m.model as &mut dyn CausalLm)
            .collect();
        perplex_eval::compare(&mut lms, &prepared.tokens, &settings, sink)?
    };
    let seconds = start.elapsed().as_secs_f64();
    let compared: Vec<ComparedModel> = models
        .iter()
        .zip(&outcome.models)
        .map(|(m, o)| {
            let report =
                prepared.report(&m.identity, &m.tokenizer, corpus, &options.eval, o, seconds);
            ComparedModel {
                model: report.model,
                tokenizer: report.tokenizer,
                summary: report.summary,
                documents: report.documents,
            }
        })
        .collect();
    let pairs = outcome
        .pairs
        .iter()
        .enumerate()
        .map(|(k, stats)| PairReport {
            base: 0,
            other: k + 1,
            stats: stats.summary(options.confidence),
            bits_per_byte: None,
            documents: document_deltas(stats, &prepared),
        })
        .collect();
    let processed: u64 = outcome.models.iter().map(|m| m.processed_tokens).sum();
    Ok(CompareReport {
        schema_version: COMPARE_SCHEMA_VERSION,
        tool: tool_info(),
        corpus: prepared.corpus_identity(corpus, &options.eval),
        protocol: prepared.protocol_info(&options.eval),
        models: compared,
        pairs,
        warnings,
        timing: timing(processed, seconds),
    })
}

/// Every model evaluated with its own tokenizer; pairs compared by bits per
/// byte over the documents both scored whole.
fn compare_bits_per_byte(
    models: &mut [LoadedModel],
    corpus: &Corpus,
    options: &CompareOptions,
    sink: &mut dyn Sink,
) -> Result<CompareReport, Error> {
    if !options.eval.protocol.covers_whole_documents() || options.eval.max_tokens.is_some() {
        return Err(Error::Compare(
            "bits per byte needs every document scored whole: use --protocol chunks or \
             sliding, without --max-tokens"
                .into(),
        ));
    }
    let start = Instant::now();
    let mut reports = Vec::with_capacity(models.len());
    let mut warnings = Vec::new();
    for m in models.iter_mut() {
        for w in run_warnings(m, &options.eval) {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        reports.push(crate::evaluate(
            m.model.as_mut(),
            &m.tokenizer,
            &m.identity,
            corpus,
            &options.eval,
            sink,
        )?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let base = &reports[0];
    let pairs = (1..reports.len())
        .map(|k| {
            let units: Vec<UnitSums> = base
                .documents
                .iter()
                .zip(&reports[k].documents)
                .filter(|(b, o)| b.bytes > 0 && b.bytes == o.bytes)
                .map(|(b, o)| UnitSums {
                    count: b.bytes,
                    base: b.nll_sum / std::f64::consts::LN_2,
                    other: o.nll_sum / std::f64::consts::LN_2,
                })
                .collect();
            PairReport {
                base: 0,
                other: k,
                stats: None,
                bits_per_byte: BitsPerByteSummary::new(&units, options.confidence),
                documents: Vec::new(),
            }
        })
        .collect();
    let processed = reports.iter().map(|r| r.summary.processed_tokens).sum();
    let first = &reports[0];
    Ok(CompareReport {
        schema_version: COMPARE_SCHEMA_VERSION,
        tool: tool_info(),
        corpus: first.corpus.clone(),
        protocol: first.protocol.clone(),
        models: reports
            .into_iter()
            .map(|r| ComparedModel {
                model: r.model,
                tokenizer: r.tokenizer,
                summary: r.summary,
                documents: r.documents,
            })
            .collect(),
        pairs,
        warnings,
        timing: timing(processed, seconds),
    })
}

/// Where two tokenizations of the same corpus first differ, in words.
fn first_difference(a: &Prepared<'_>, b: &Prepared<'_>) -> Option<String> {
    if a.bos != b.bos {
        return Some(format!(
            "with these options one scores with {}, the other with {}",
            describe_bos(a.bos),
            describe_bos(b.bos)
        ));
    }
    for (doc, (x, y)) in a.tokens.iter().zip(&b.tokens).enumerate() {
        if x != y {
            let at = x.iter().zip(y).take_while(|(p, q)| p == q).count();
            return Some(format!(
                "document {doc} ({}) first differs at token {at}",
                a.documents[doc].source
            ));
        }
    }
    None
}

fn describe_bos(bos: ResolvedBos) -> String {
    match bos {
        ResolvedBos::None => "no BOS".into(),
        ResolvedBos::Document { id } => format!("BOS id {id} before each document"),
        ResolvedBos::Window { id } => format!("BOS id {id} at each window"),
        ResolvedBos::ReplaceFirst { id } => format!("BOS id {id} (llama.cpp style)"),
    }
}

/// Per document with scored tokens, the most improved first.
fn document_deltas(stats: &PairStats, prepared: &Prepared<'_>) -> Vec<DocumentDelta> {
    let mut out: Vec<DocumentDelta> = stats
        .documents()
        .iter()
        .enumerate()
        .filter(|(_, d)| d.count > 0)
        .map(|(index, d)| {
            let n = d.count as f64;
            let (base, other) = ((d.base / n).exp(), (d.other / n).exp());
            DocumentDelta {
                index,
                source: prepared.documents[index].source.clone(),
                tokens: d.count,
                base_perplexity: base,
                other_perplexity: other,
                mean_nll_difference: (d.other - d.base) / n,
                improvement_percent: (base - other) / base * 100.0,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.mean_nll_difference
            .total_cmp(&b.mean_nll_difference)
            .then(a.index.cmp(&b.index))
    });
    out
}
