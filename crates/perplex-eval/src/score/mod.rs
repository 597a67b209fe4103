//! Per-document scores of a corpus of any size: `perplex score`.
//!
//! Documents stream in ([`StreamInputs`]), are tokenised on a thread of
//! their own while the model scores the block before, are scored block by
//! block, and leave one [`ScoreRow`] each, committed to the output as the
//! run goes. Memory is bounded by two blocks of documents, whatever the
//! corpus size.
//!
//! Contract:
//! - a document's scores are those `perplex eval` gives it on its own with
//!   the same protocol: windows are planned per document, and the engine's
//!   batching never changes a score;
//! - within a block, windows are batched by length (longest first) under a
//!   token budget, so short documents share a forward pass instead of each
//!   being padded to the longest; the summary says what fraction of the
//!   forward passes' token slots was padding;
//! - rows are written in corpus order; with a [`Shard`], a process scores
//!   only its documents (`index % count == shard`), and the shards' rows
//!   merged by index ([`merge()`]) are the unsharded run's rows;
//! - the output is committed a block at a time ([`journal`]): a run killed
//!   at any moment, rerun with the same command, resumes after its last
//!   committed block, redoes at most the block that was in flight, and
//!   leaves output byte-identical to an uninterrupted run's. A rerun with
//!   another model, tokenizer, protocol or corpus is refused.

mod error;
pub mod journal;
pub mod merge;

pub use error::ScoreError;
pub use merge::{merge, MergeOutput};

use std::cmp::Reverse;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use perplex_core::lm::{CausalLm, LmError, TokenScore, WindowRef};
use perplex_core::plan::{plan_document, BosPolicy, Protocol, ResolvedBos, Window};
use perplex_core::report::{Hash, ProtocolInfo};
use perplex_core::score::{
    DocumentCounts, ScoreCorpus, ScoreFigures, ScoreRow, ScoreSummary, ScoreTotals, Shard,
    ROWS_SCHEMA_VERSION,
};
use perplex_core::NllStats;
use perplex_data::counts::{byte_count, word_count};
use perplex_data::rows::RowFormat;
use perplex_data::stream::{SourceDocument, StreamInputs};
use perplex_data::tokenizer::TextTokenizer;
use perplex_data::TokenizeError;

use crate::engine::EvalSettings;
use crate::error::{EvalError, ZeroAt};
use crate::evaluate::{timing, tool_info};
use crate::model::Model;
use crate::options::{EvalOptions, OptionsError};

use journal::{Journal, Opened, RunIdentity};

/// Tokens a forward pass holds when no batch size is asked for: enough for
/// each weight matrix to serve many rows, few enough to stay in cache-sized
/// working sets.
pub const DEFAULT_BATCH_TOKENS: usize = 2048;

/// Documents per committed block when none is asked for.
pub const DEFAULT_BLOCK_DOCUMENTS: usize = 256;

/// How to score: protocol, BOS, batching, the shard, the commit unit.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOptions {
    protocol: Protocol,
    bos: BosPolicy,
    batch_size: Option<usize>,
    shard: Shard,
    block_documents: usize,
}

impl ScoreOptions {
    /// `protocol` with BOS `auto`, batches of about
    /// [`DEFAULT_BATCH_TOKENS`], the whole corpus, blocks of
    /// [`DEFAULT_BLOCK_DOCUMENTS`].
    pub fn new(protocol: Protocol) -> Result<Self, OptionsError> {
        protocol.check()?;
        Ok(ScoreOptions {
            protocol,
            bos: BosPolicy::Auto,
            batch_size: None,
            shard: Shard::WHOLE,
            block_documents: DEFAULT_BLOCK_DOCUMENTS,
        })
    }

    /// The BOS policy.
    pub fn bos(mut self, bos: BosPolicy) -> Self {
        self.bos = bos;
        self
    }

    /// Windows of the protocol's full length per forward pass (shorter
    /// windows share a pass in proportion); `None`: about
    /// [`DEFAULT_BATCH_TOKENS`] tokens, lowered to fit in memory.
    pub fn batch_size(mut self, windows: Option<usize>) -> Result<Self, OptionsError> {
        if windows == Some(0) {
            return Err(OptionsError::ZeroBatch);
        }
        self.batch_size = windows;
        Ok(self)
    }

    /// The part of the corpus to score.
    pub fn shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// Documents per committed block: the most a resumed run redoes.
    pub fn block_documents(mut self, documents: usize) -> Result<Self, OptionsError> {
        if documents == 0 {
            return Err(OptionsError::ZeroBlock);
        }
        self.block_documents = documents;
        Ok(self)
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The part of the corpus scored.
    pub fn scored_shard(&self) -> Shard {
        self.shard
    }

    /// Documents per committed block.
    pub fn block_size(&self) -> usize {
        self.block_documents
    }

    fn eval_options(&self) -> EvalOptions {
        let windows = self
            .batch_size
            .unwrap_or_else(|| (DEFAULT_BATCH_TOKENS / self.protocol.window_len().max(1)).max(1));
        EvalOptions::builder(self.protocol)
            .bos(self.bos)
            .batch_size(windows)
            .build()
            .expect("checked by the builder methods")
    }

    fn settings(&self, tokenizer: &TextTokenizer) -> Result<EvalSettings, EvalError> {
        let bos = ResolvedBos::resolve(
            self.bos,
            &self.protocol,
            tokenizer.bos_id(),
            tokenizer.adds_bos(),
        )?;
        let mut settings = EvalSettings::new(&self.eval_options(), bos);
        settings.set_batch_asked(self.batch_size.is_some());
        Ok(settings)
    }
}

/// Where the rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreOutput {
    /// The row file.
    pub path: PathBuf,
    /// Its format.
    pub format: RowFormat,
}

impl ScoreOutput {
    /// `path`, in the format its extension names (or `format`).
    pub fn new(path: PathBuf, format: Option<RowFormat>) -> Result<Self, ScoreError> {
        match format.or_else(|| RowFormat::from_path(&path)) {
            Some(format) => Ok(ScoreOutput { path, format }),
            None => Err(ScoreError::UnknownFormat { path }),
        }
    }

    /// The summary written beside the rows: `<rows>.summary.json`.
    pub fn summary_path(&self) -> PathBuf {
        journal::summary_path(&self.path)
    }
}

/// What a score run reports as it goes, and asks.
pub trait ScoreProgress {
    /// After each forward pass: documents committed so far (this shard,
    /// earlier runs included) and tokens the model processed in this run.
    fn scored(&mut self, _committed_documents: u64, _processed_tokens: u64) {}

    /// Whether the run should stop now (asked before each forward pass).
    fn should_stop(&self) -> bool {
        false
    }
}

/// A [`ScoreProgress`] that reports nothing and never stops.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl ScoreProgress for Quiet {}

/// How a score run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Scored {
    /// The corpus was scored (resuming earlier runs' committed rows).
    Done(ScoreSummary),
    /// The output was already finished by an identical earlier run.
    AlreadyDone(ScoreSummary),
}

impl Scored {
    /// The summary.
    pub fn summary(&self) -> &ScoreSummary {
        match self {
            Scored::Done(s) | Scored::AlreadyDone(s) => s,
        }
    }
}

/// Scores every document of `inputs` in `options`' shard with `model`,
/// writing one row per document to `output` as it goes, resuming an
/// interrupted run into the same output; returns the summary (also written
/// beside the rows).
pub fn score(
    model: &mut Model,
    inputs: &StreamInputs,
    options: &ScoreOptions,
    output: &ScoreOutput,
    progress: &mut dyn ScoreProgress,
) -> Result<Scored, EvalError> {
    let start = Instant::now();
    let settings = options.settings(&model.tokenizer)?;
    settings.protocol().fits(model.lm.info().max_context)?;
    let budget = batch_tokens(model.lm.as_ref(), &settings)?;
    perplex_data::rows::check_extra_columns(&inputs.keep_columns).map_err(ScoreError::from)?;
    let identity = RunIdentity::new(model, inputs, options, output)?;
    let stream = inputs.open().map_err(ScoreError::from)?;
    let mut journal = match Journal::open(output, &identity)? {
        Opened::Finished(summary) => return Ok(Scored::AlreadyDone(*summary)),
        Opened::Journal(journal) => *journal,
    };
    let resumed = journal.committed().clone();
    let mut totals = resumed.totals;
    let run_totals_start = totals;
    let whole = settings.protocol().covers_whole_documents();
    let tokenizer = &model.tokenizer;
    let lm = model.lm.as_mut();
    let (tx, rx) = mpsc::sync_channel::<Message>(2);
    let block = options.block_documents;
    let shard = options.shard;
    let end = std::thread::scope(|scope| -> Result<(u64, Hash), EvalError> {
        let reader = scope.spawn(move || read(stream, tokenizer, shard, block, &resumed, tx));
        for message in rx {
            let block = match message {
                Message::Block(block) => block,
                Message::End { documents, hash } => return Ok((documents, hash)),
                Message::Failed(e) => return Err(e),
            };
            if progress.should_stop() {
                return Err(EvalError::Interrupted);
            }
            journal.begin(block.docs.len() as u64)?;
            let stats = score_block(lm, &block.docs, &settings, budget, &mut totals, &mut |t| {
                progress.scored(
                    journal.committed().rows,
                    t.processed_tokens - run_totals_start.processed_tokens,
                );
                progress.should_stop()
            })
            .map_err(|e| e.naming(tokenizer, &[&identity.model_spec]))?;
            let rows: Vec<ScoreRow> = block
                .docs
                .into_iter()
                .zip(&stats)
                .map(|(doc, stats)| {
                    let row = doc.into_row(stats, whole);
                    totals.add_row(&row, stats);
                    row
                })
                .collect();
            journal.commit(&rows, block.read, &block.prefix, &totals)?;
            progress.scored(
                journal.committed().rows,
                totals.processed_tokens - run_totals_start.processed_tokens,
            );
        }
        // the reader ends by sending `End` or `Failed`, or when the scorer
        // hangs up: the channel can only close early if it panicked
        match reader.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the reader stopped without a word"),
        }
    })?;
    let (documents, hash) = end;
    let seconds = start.elapsed().as_secs_f64();
    let processed = totals.processed_tokens - run_totals_start.processed_tokens;
    let summary = ScoreSummary {
        schema_version: ROWS_SCHEMA_VERSION,
        tool: tool_info(),
        model: model.identity.clone(),
        tokenizer: model.tokenizer.identity(),
        tokenizer_hash: identity.tokenizer_hash.clone(),
        corpus: ScoreCorpus {
            sources: inputs.sources(),
            text: inputs.text_description(),
            id_column: inputs.id_column.clone(),
            keep_columns: inputs.keep_columns.clone(),
            documents,
            hash,
        },
        protocol: ProtocolInfo {
            protocol: settings.protocol(),
            description: settings.protocol().to_string(),
            bos: settings.bos(),
            max_tokens: None,
            batch_size: budget / settings.protocol().window_len().max(1),
            threads: model.threads,
        },
        shards: vec![options.shard],
        block_documents: options.block_documents,
        totals,
        figures: ScoreFigures::of(&totals, whole),
        resumption: journal.resumption(),
        timing: timing(processed, seconds),
    };
    journal.finish(&summary)?;
    Ok(Scored::Done(summary))
}

/// The token budget of one forward pass: the asked batch of full-length
/// windows, or the default, lowered to fit in memory.
fn batch_tokens(lm: &dyn CausalLm, settings: &EvalSettings) -> Result<usize, EvalError> {
    let len = settings.protocol().window_len();
    let windows = crate::memory::fit_windows(
        |w, l| lm.working_memory(w, l),
        settings.batch_size(),
        len,
        settings,
    )?;
    Ok(windows * len)
}

/// A document made ready to score.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prepared {
    pub(crate) index: u64,
    pub(crate) id: String,
    pub(crate) tokens: Vec<u32>,
    pub(crate) counts: DocumentCounts,
    pub(crate) extra: Vec<(String, perplex_core::score::ColumnValue)>,
}

impl Prepared {
    /// The document's row, with `stats` its scores; `whole` when the
    /// protocol scores whole documents.
    fn into_row(self, stats: &NllStats, whole: bool) -> ScoreRow {
        let mut row = ScoreRow::new(self.index, self.id, self.counts, stats, whole);
        row.extra = self.extra;
        row
    }

    /// Tokenises `doc`.
    pub(crate) fn new(doc: SourceDocument, tokenizer: &TextTokenizer) -> Result<Self, EvalError> {
        let tokens = tokenizer.encode(&doc.text).map_err(|source| {
            EvalError::Tokenize(TokenizeError {
                source_name: doc.id.clone(),
                source,
            })
        })?;
        Ok(Prepared {
            counts: DocumentCounts {
                bytes: byte_count(&doc.text),
                words: word_count(&doc.text),
                tokens: tokens.len() as u64,
            },
            index: doc.index,
            id: doc.id,
            tokens,
            extra: doc.extra,
        })
    }
}

/// What the reading thread sends the scoring one.
enum Message {
    /// A block of this shard's documents, tokenised; `read` documents of
    /// the corpus have been read through it, hashing to `prefix`.
    Block(Block),
    /// The corpus ended after `documents` documents, hashing to `hash`.
    End { documents: u64, hash: Hash },
    /// Reading or tokenising failed.
    Failed(EvalError),
}

struct Block {
    docs: Vec<Prepared>,
    read: u64,
    prefix: String,
}

/// The corpus hash over documents in order: each document's index, id and
/// text, the last two prefixed by their lengths.
#[derive(Default)]
pub(crate) struct CorpusHasher {
    hasher: blake3::Hasher,
    documents: u64,
}

impl CorpusHasher {
    pub(crate) fn add(&mut self, doc: &SourceDocument) {
        self.hasher.update(&doc.index.to_le_bytes());
        for part in [doc.id.as_bytes(), doc.text.as_bytes()] {
            self.hasher.update(&(part.len() as u64).to_le_bytes());
            self.hasher.update(part);
        }
        self.documents += 1;
    }

    pub(crate) fn hex(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

/// The reading thread: skips (and hashes) what earlier runs committed,
/// then reads, hashes, filters by shard and tokenises documents into
/// blocks, until the corpus ends, something fails, or the scorer hangs up.
fn read(
    stream: perplex_data::stream::DocumentStream,
    tokenizer: &TextTokenizer,
    shard: Shard,
    block_documents: usize,
    resumed: &journal::Committed,
    tx: mpsc::SyncSender<Message>,
) {
    let mut hasher = CorpusHasher::default();
    let mut docs = Vec::with_capacity(block_documents);
    let fail = |e: EvalError| {
        let _ = tx.send(Message::Failed(e));
    };
    for doc in stream {
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => return fail(ScoreError::Input(e).into()),
        };
        hasher.add(&doc);
        if hasher.documents <= resumed.read {
            if hasher.documents == resumed.read && hasher.hex() != resumed.prefix {
                return fail(resumed.corpus_changed());
            }
            continue;
        }
        if !shard.holds(doc.index) {
            continue;
        }
        match Prepared::new(doc, tokenizer) {
            Ok(p) => docs.push(p),
            Err(e) => return fail(e),
        }
        if docs.len() == block_documents {
            let block = Block {
                docs: std::mem::replace(&mut docs, Vec::with_capacity(block_documents)),
                read: hasher.documents,
                prefix: hasher.hex(),
            };
            if tx.send(Message::Block(block)).is_err() {
                return;
            }
        }
    }
    if hasher.documents < resumed.read {
        return fail(resumed.corpus_changed());
    }
    if !docs.is_empty() {
        let block = Block {
            docs,
            read: hasher.documents,
            prefix: hasher.hex(),
        };
        if tx.send(Message::Block(block)).is_err() {
            return;
        }
    }
    let _ = tx.send(Message::End {
        documents: hasher.documents,
        hash: Hash {
            algorithm: "blake3".into(),
            value: hasher.hex(),
        },
    });
}

/// Scores `docs` with `lm`: every document's windows planned, batched
/// longest first under `budget` tokens a pass, the counts of the passes
/// added to `totals`; `after_pass` is called after each pass and stops the
/// run when it returns true. Returns each document's statistics,
/// accumulated in plan order (as `perplex eval` accumulates them).
pub(crate) fn score_block(
    lm: &mut dyn CausalLm,
    docs: &[Prepared],
    settings: &EvalSettings,
    budget: usize,
    totals: &mut ScoreTotals,
    after_pass: &mut dyn FnMut(&ScoreTotals) -> bool,
) -> Result<Vec<NllStats>, EvalError> {
    let windows: Vec<Window> = docs
        .iter()
        .enumerate()
        .flat_map(|(i, d)| plan_document(&settings.protocol(), settings.bos(), i, &d.tokens))
        .collect();
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.sort_by_key(|&w| Reverse(windows[w].tokens.len()));
    let mut scores: Vec<Vec<TokenScore>> = vec![Vec::new(); windows.len()];
    let mut at = 0;
    while at < order.len() {
        let longest = windows[order[at]].tokens.len();
        let n = (budget / longest.max(1)).clamp(1, order.len() - at);
        let batch = &order[at..at + n];
        let refs: Vec<WindowRef<'_>> = batch
            .iter()
            .map(|&w| WindowRef {
                tokens: &windows[w].tokens,
                score_from: windows[w].score_from,
            })
            .collect();
        let out = lm
            .score_batch(&refs)
            .map_err(|e| failed(e, batch, &windows, docs))?;
        for (&w, s) in batch.iter().zip(out) {
            if s.len() != windows[w].scored() {
                return Err(EvalError::ScoreCount {
                    expected: windows[w].scored(),
                    got: s.len(),
                });
            }
            totals.processed_tokens += windows[w].tokens.len() as u64;
            scores[w] = s;
        }
        totals.padded_tokens += (n * longest) as u64;
        totals.windows += n as u64;
        at += n;
        if after_pass(totals) && at < order.len() {
            return Err(EvalError::Interrupted);
        }
    }
    let mut stats = vec![NllStats::new(); docs.len()];
    for (window, scores) in windows.iter().zip(&scores) {
        for (k, score) in scores.iter().enumerate() {
            let token = window.tokens[window.score_from + k];
            stats[window.doc].push(score.nll, score.argmax == token);
        }
    }
    Ok(stats)
}

/// The error of a model that failed on `batch` (indices into `windows`),
/// located in the corpus.
fn failed(source: LmError, batch: &[usize], windows: &[Window], docs: &[Prepared]) -> EvalError {
    match source {
        LmError::ZeroProbability { window, position } => {
            let w = &windows[batch[window]];
            let at = (
                docs[w.doc].index as usize,
                w.first_target + position - w.score_from,
                w.tokens[position],
            );
            EvalError::ZeroProbability(ZeroAt::new(0, at))
        }
        source => {
            let w = &windows[batch[0]];
            EvalError::Model {
                doc: docs[w.doc].index as usize,
                first_target: w.first_target,
                source,
            }
        }
    }
}

/// Scores documents held in memory (`(index, id, text)`, e.g. a batch of a
/// dataframe handed over by a distributed engine) and returns their rows,
/// exactly the rows [`score`] writes for them.
pub fn score_texts(
    model: &mut Model,
    documents: Vec<SourceDocument>,
    options: &ScoreOptions,
) -> Result<Vec<ScoreRow>, EvalError> {
    let settings = options.settings(&model.tokenizer)?;
    settings.protocol().fits(model.lm.info().max_context)?;
    let budget = batch_tokens(model.lm.as_ref(), &settings)?;
    let whole = settings.protocol().covers_whole_documents();
    let mut rows = Vec::with_capacity(documents.len());
    let mut totals = ScoreTotals::default();
    let mut docs = Vec::with_capacity(options.block_documents);
    let mut documents = documents.into_iter().peekable();
    while documents.peek().is_some() {
        docs.clear();
        for doc in documents.by_ref().take(options.block_documents) {
            docs.push(Prepared::new(doc, &model.tokenizer)?);
        }
        let stats = score_block(
            model.lm.as_mut(),
            &docs,
            &settings,
            budget,
            &mut totals,
            &mut |_| false,
        )
        .map_err(|e| e.naming(&model.tokenizer, &[&model.identity.spec]))?;
        rows.extend(
            docs.drain(..)
                .zip(&stats)
                .map(|(doc, stats)| doc.into_row(stats, whole)),
        );
    }
    Ok(rows)
}

#[cfg(test)]
mod tests;
