//! Command-line arguments. Each flag is defined once here; its doc comment is its help.
//! Numeric flags take negative numbers as values (`--context -5` is an invalid
//! value, not an unknown argument `-5`), so the error names the flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Measure how well a causal language model predicts text: perplexity,
/// exactly, with the protocol named in every report.
#[derive(Debug, Parser)]
#[command(name = "perplex", version, about, max_term_width = 100)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// perplex commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate a model on texts, files, JSONL or stdin.
    Eval(Box<EvalArgs>),
    /// Compare a base model with fine-tuned, adapted or quantized versions on the same tokens: improvement, paired uncertainty, KL divergence, top-1 agreement, a verdict.
    Compare(Box<CompareArgs>),
    /// Evaluate every checkpoint of a training run (Trainer's checkpoint-N folders, full weights or PEFT adapters, or GGUF files with a step in the name) on the same text, beside the trainer's losses.
    Sweep(Box<SweepArgs>),
    /// Watch a training run: evaluate each new checkpoint once it is completely written, keep a state file so a restart resumes, and rewrite the report (and plot) after each.
    Watch(Box<WatchArgs>),
    /// Score every document of a corpus of any size (JSONL, text or Parquet, streamed) and write one row per document as it goes: for data filtering, sharded across machines, resumable after a kill.
    Score(Box<ScoreArgs>),
    /// Merge the outputs of `perplex score --shard I/N` runs into the corpus result (exact) and, with --output, the rows in corpus order.
    Merge(MergeArgs),
    /// Show what a model declares (architecture, storage, context, tokenizer, BOS/EOS) and check its tokenizer against its weights, without loading the weights.
    Inspect(InspectArgs),
}

/// Arguments of `perplex inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Model: a Hugging Face folder, a .gguf file, or a hub repo id `org/name[@revision]`.
    #[arg(value_name = "MODEL")]
    pub model: String,

    /// Output format.
    #[arg(long, value_enum, default_value_t = InspectFormatArg::Table)]
    pub format: InspectFormatArg,
}

/// `--format` of `perplex inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InspectFormatArg {
    /// Aligned sections for reading.
    Table,
    /// The versioned JSON inspection (schema in docs/inspect-schema.md).
    Json,
}

/// Arguments of `perplex eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model: a Hugging Face folder, a .gguf file, a hub repo id `org/name[@revision]` found in the local HF cache, or BASE+ADAPTER with a PEFT LoRA adapter folder (several stack: BASE+A+B).
    #[arg(short, long, value_name = "MODEL")]
    pub model: String,

    /// Texts to evaluate, one document each.
    #[arg(value_name = "TEXT")]
    pub texts: Vec<String>,

    /// Corpus inputs.
    #[command(flatten)]
    pub input: InputArgs,

    /// How windows are built and run.
    #[command(flatten)]
    pub run: RunArgs,

    /// Interpretation labels.
    #[command(flatten)]
    pub labels: LabelArgs,

    /// Where the report goes.
    #[command(flatten)]
    pub output: OutputArgs,

    /// Write every scored token (document, position, token id, text, NLL) to this JSONL file as the run goes.
    #[arg(long, value_name = "PATH")]
    pub per_token: Option<PathBuf>,
}

/// Arguments of `perplex score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Model: a Hugging Face folder, a .gguf file, a hub repo id `org/name[@revision]` found in the local HF cache, or BASE+ADAPTER with a PEFT LoRA adapter folder.
    #[arg(short, long, value_name = "MODEL")]
    pub model: String,

    /// Parquet files, read a row group at a time; the text is read from --text-column.
    #[arg(long, value_name = "PATH")]
    pub parquet: Vec<PathBuf>,

    /// JSONL files, one JSON object per line; the text is read from --text-column.
    #[arg(long, value_name = "PATH")]
    pub jsonl: Vec<PathBuf>,

    /// Text files; see --split.
    #[arg(short, long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,

    /// How text files become documents.
    #[arg(long, value_enum, default_value_t = SplitArg::Lines)]
    pub split: SplitArg,

    /// The Parquet column or JSONL field that holds the text.
    #[arg(long, value_name = "NAME", default_value = "text", alias = "field")]
    pub text_column: String,

    /// The column or field that holds each document's id [default: `<file>:<n>`, n counting from 0 in each file].
    #[arg(long, value_name = "NAME")]
    pub id_column: Option<String>,

    /// Input columns or fields to copy into each row (comma-separated).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub keep_columns: Vec<String>,

    /// Where the rows go: .parquet or .jsonl (or see --output-format); `{shard}` in the name becomes the shard, e.g. 00002-of-00016. A summary is written beside it as <output>.summary.json. Rerunning the same command after an interruption resumes.
    #[arg(short, long, value_name = "PATH")]
    pub output: PathBuf,

    /// Format of the rows [default: from --output's extension].
    #[arg(long, value_enum)]
    pub output_format: Option<RowFormatArg>,

    /// Score only shard I of N (documents whose index modulo N is I) [default: from SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN) and SLURM_ARRAY_TASK_COUNT, or from JOB_COMPLETION_INDEX and PERPLEX_SHARD_COUNT; else the whole corpus].
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,

    /// Documents per committed block: an interrupted run redoes at most one.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 256,
        allow_negative_numbers = true
    )]
    pub block: usize,

    /// How windows are built and run.
    #[command(flatten)]
    pub run: RunArgs,

    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = SummaryFormatArg::Table)]
    pub format: SummaryFormatArg,

    /// No progress or notes on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Arguments of `perplex merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' row files (each with its .summary.json beside it).
    #[arg(value_name = "SHARD_OUTPUT", required = true)]
    pub shards: Vec<PathBuf>,

    /// Also write the rows of every shard, in corpus order, to this .parquet or .jsonl file (and the merged summary beside it).
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Format of the merged rows [default: from --output's extension].
    #[arg(long, value_enum)]
    pub output_format: Option<RowFormatArg>,

    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = SummaryFormatArg::Table)]
    pub format: SummaryFormatArg,
}

/// Row file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RowFormatArg {
    /// Apache Parquet.
    Parquet,
    /// One JSON object per line.
    Jsonl,
}

impl From<RowFormatArg> for perplex_data::rows::RowFormat {
    fn from(format: RowFormatArg) -> Self {
        match format {
            RowFormatArg::Parquet => perplex_data::rows::RowFormat::Parquet,
            RowFormatArg::Jsonl => perplex_data::rows::RowFormat::Jsonl,
        }
    }
}

/// Summary formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormatArg {
    /// A readable table.
    Table,
    /// The versioned JSON summary (as written beside the rows).
    Json,
}

/// Arguments of `perplex compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Models: the base first, then one or more to compare with it; each a Hugging Face folder, a .gguf file, a hub repo id, or BASE+ADAPTER with a PEFT LoRA adapter folder (several stack: BASE+A+B). All must tokenise the corpus identically.
    #[arg(value_name = "MODEL", required = true, num_args = 2..)]
    pub models: Vec<String>,

    /// A text to evaluate as one document (repeatable).
    #[arg(long = "text", value_name = "TEXT")]
    pub texts: Vec<String>,

    /// Corpus inputs.
    #[command(flatten)]
    pub input: InputArgs,

    /// How windows are built and run.
    #[command(flatten)]
    pub run: RunArgs,

    /// Where the report goes.
    #[command(flatten)]
    pub output: OutputArgs,

    /// Confidence of the intervals and of the verdict.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.95,
        allow_negative_numbers = true
    )]
    pub confidence: f64,

    /// Compare bits per byte, each model with its own tokenizer, instead of token by token (for models whose tokenizers differ; no KL divergence or agreement then).
    #[arg(long)]
    pub bits_per_byte: bool,
}

/// Arguments of `perplex sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The run, its text, and where the curve goes.
    #[command(flatten)]
    pub curve: CurveArgs,
}

/// What `sweep` and `watch` share: a run folder, its text, and where the
/// curve goes.
#[derive(Debug, Args)]
pub struct CurveArgs {
    /// The run folder (a Trainer `output_dir`, or any folder of checkpoints).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,

    /// Base model for adapter checkpoints [default: their adapter_config.json's base_model_name_or_path]; also evaluated, as the reference.
    #[arg(long, value_name = "MODEL")]
    pub base: Option<String>,

    /// Write the curve to this file, PNG for a .png name, else SVG [default: both, beside --output, with the extensions .svg and .png].
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,

    /// A text to evaluate as one document (repeatable).
    #[arg(long = "text", value_name = "TEXT")]
    pub texts: Vec<String>,

    /// Corpus inputs.
    #[command(flatten)]
    pub input: InputArgs,

    /// How windows are built and run.
    #[command(flatten)]
    pub run: RunArgs,

    /// Interpretation labels.
    #[command(flatten)]
    pub labels: LabelArgs,

    /// Where the report goes (for `watch`, rewritten after each checkpoint).
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `perplex watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The run, its text, and where the curve goes.
    #[command(flatten)]
    pub curve: CurveArgs,

    /// The state file that makes a restart resume [default: RUN_DIR/perplex-watch.json].
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,

    /// Seconds between looks at the run folder.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    pub interval: f64,

    /// Seconds a checkpoint's files must stay unchanged before it is evaluated.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 5.0,
        allow_negative_numbers = true
    )]
    pub settle: f64,

    /// Stop after this many seconds without a new checkpoint [default: watch until interrupted].
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub exit_when_idle: Option<f64>,

    /// Stop once a checkpoint of at least this step is evaluated.
    #[arg(long, value_name = "STEP", allow_negative_numbers = true)]
    pub until_step: Option<u64>,
}

/// Opt-in interpretation labels.
#[derive(Debug, Args)]
pub struct LabelArgs {
    /// Label perplexities by band: the usual rule of thumb of popular perplexity guides (excellent up to 30, good up to 60, acceptable up to 100, poor above) without a value, or your own as `--bands=name:bound,…,name`. Labels compare like with like only: the same tokenizer on the same kind of text.
    #[arg(long, value_name = "BANDS", num_args = 0..=1, require_equals = true, default_missing_value = "30,60,100")]
    pub bands: Option<String>,
}

/// Where the text comes from.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Text files to evaluate (`-` for stdin); see --split. With no text, --file or --jsonl, stdin is read.
    #[arg(short, long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,

    /// How text files and stdin become documents.
    #[arg(long, value_enum, default_value_t = SplitArg::Whole)]
    pub split: SplitArg,

    /// JSONL files, one JSON object per line; the text is read from --field.
    #[arg(long, value_name = "PATH")]
    pub jsonl: Vec<PathBuf>,

    /// The JSONL field that holds the text.
    #[arg(long, value_name = "NAME", default_value = "text")]
    pub field: String,

    /// Concatenate all documents into one, separated by --separator, before tokenising (as the transformers recipe and llama.cpp do).
    #[arg(long)]
    pub join: bool,

    /// Separator used by --join.
    #[arg(long, value_name = "TEXT", default_value = "\n\n", requires = "join")]
    pub separator: String,
}

/// How windows are planned and run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Evaluation protocol: truncate (first --max-length tokens), chunks (non-overlapping windows of --context), sliding (windows of --context moving by --stride), llama-cpp (llama-perplexity's: second half of each --context chunk).
    #[arg(short, long, value_enum, default_value_t = ProtocolArg::Chunks)]
    pub protocol: ProtocolArg,

    /// Window length in tokens for chunks, sliding and llama-cpp (BOS included).
    #[arg(
        short,
        long,
        value_name = "N",
        default_value_t = 512,
        allow_negative_numbers = true
    )]
    pub context: usize,

    /// How far a sliding window moves [default: context / 2].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub stride: Option<usize>,

    /// Longest text kept by the truncate protocol, in tokens (BOS included).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 512,
        allow_negative_numbers = true
    )]
    pub max_length: usize,

    /// Evaluate only the first N text tokens of the corpus.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_tokens: Option<usize>,

    /// BOS policy: auto (as the tokenizer does), none, document (once per document), window (at every window's start).
    #[arg(long, value_enum, default_value_t = BosArg::Auto)]
    pub bos: BosArg,

    /// Windows per forward pass [default: windows of about 2048 tokens together; 1 for truncate]. Results do not depend on it.
    #[arg(short, long, value_name = "N", allow_negative_numbers = true)]
    pub batch_size: Option<usize>,

    /// Fast compute mode: the matrix products take bf16-rounded weights and activations (AVX-512 BF16, f32 sums), or on CPUs without AVX-512 BF16 12-bit weights times 16-bit activations (each quantized in blocks of 32, AVX-512 VNNI or AVX2 integer dot products, f32 sums); norms, attention and the log-softmax stay f32. Perplexity within about 0.1 % of the exact mode; reports say compute_dtype bf16 or int16.
    #[arg(long)]
    pub fast: bool,

    /// Compute threads [default: physical cores].
    #[arg(short = 't', long, value_name = "N", allow_negative_numbers = true)]
    pub threads: Option<usize>,
}

impl RunArgs {
    /// How to load models for this run.
    pub fn load_options(&self) -> perplex_model::LoadOptions {
        perplex_model::LoadOptions {
            compute: if self.fast {
                perplex_model::Compute::Fast
            } else {
                perplex_model::Compute::Exact
            },
            ..Default::default()
        }
    }
}

/// Where and how the report is written.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Report format on stdout (or in --output).
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,

    /// Write the report to this file instead of stdout (written atomically).
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// No progress bar or notes on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// How files become documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// The whole file is one document.
    Whole,
    /// Each line is a document.
    Lines,
    /// Each blank-line-separated paragraph is a document.
    Paragraphs,
}

/// Protocol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// Each document cut to --max-length.
    Truncate,
    /// Non-overlapping windows of --context.
    Chunks,
    /// Strided windows of --context.
    Sliding,
    /// llama.cpp's perplexity protocol.
    LlamaCpp,
}

/// BOS policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BosArg {
    /// Follow the tokenizer.
    Auto,
    /// Never.
    None,
    /// Once per document.
    Document,
    /// At every window's start.
    Window,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// A readable table.
    Table,
    /// The versioned JSON report.
    Json,
    /// CSV: a corpus row, then a row per document.
    Csv,
}

impl From<FormatArg> for perplex_report::Format {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Table => perplex_report::Format::Table,
            FormatArg::Json => perplex_report::Format::Json,
            FormatArg::Csv => perplex_report::Format::Csv,
        }
    }
}
