//! Writes the fuzzers' seed inputs into `OUT/<target>/` from the test
//! fixtures (`tests/fixtures`) and the tiny model of `perplex-fuzz`:
//!
//! ```text
//! cargo run -p perplex-fuzz --example make-seeds -- fuzz/corpus [TARGET...]
//! ```
//!
//! (with targets named, only theirs).
//!
//! Large fixtures are cut down so that the fuzzers mutate headers, not
//! weights: GGUF files are kept up to the start of their tensor data (plus
//! one small model whole), the `gguf_vocab` seeds are GGUF headers with the
//! metadata only. The Parquet seeds are small files written here with the
//! parquet crate (document files with text, id and kept columns of many
//! types, several row groups, nulls, dictionary, delta and compressed pages)
//! and with `ParquetRowWriter`; the journal seeds are unfinished outputs
//! written by `Journal` itself, whole and cut.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use candle_core::quantized::gguf_file::{self, Content};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnPath;
use perplex_core::accum::NllStats;
use perplex_core::score::{ColumnValue, DocumentCounts, ScoreRow, ScoreTotals};
use perplex_data::rows::{jsonl_row, ParquetRowWriter};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: make-seeds OUT [TARGET...]")?);
    let only: Vec<String> = args.collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixtures = root.join("tests/fixtures");
    let mut files = Vec::new();
    walk(&fixtures, &mut files)?;
    files.sort();
    let named = |name: &'static str| {
        files
            .iter()
            .filter(move |p| p.file_name().is_some_and(|n| n == name))
    };
    let mut seeds = Seeds::new(&out, only);

    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
    {
        let bytes = std::fs::read(path)?;
        let content = Content::read(&mut std::io::Cursor::new(&bytes))?;
        let header = &bytes[..content.tensor_data_offset as usize];
        seeds.add("gguf", header)?;
        if bytes.len() <= 100_000 {
            seeds.add("gguf", &bytes)?;
        }
        let metadata: Vec<(&str, &gguf_file::Value)> = content
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        let mut vocab_only = Vec::new();
        gguf_file::write(&mut std::io::Cursor::new(&mut vocab_only), &metadata, &[])?;
        seeds.add("gguf_vocab", &vocab_only)?;
    }

    seeds.add("safetensors", &perplex_fuzz::tiny_weights())?;
    seeds.add("safetensors", &perplex_fuzz::tiny_adapter_weights())?;
    for path in named("adapter_model.safetensors").take(2) {
        seeds.add("safetensors", &std::fs::read(path)?)?;
    }
    for path in named("model.safetensors").take(3) {
        // the header alone: its offsets then point past the end
        let bytes = std::fs::read(path)?;
        let len = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
        seeds.add("safetensors", &bytes[..8 + len])?;
    }

    seeds.add("hf_config", perplex_fuzz::TINY_CONFIG.as_bytes())?;
    for path in named("config.json") {
        seeds.add("hf_config", &std::fs::read(path)?)?;
    }
    seeds.add(
        "adapter_config",
        perplex_fuzz::TINY_ADAPTER_CONFIG.as_bytes(),
    )?;
    for path in named("adapter_config.json") {
        seeds.add("adapter_config", &std::fs::read(path)?)?;
    }
    for path in named("tokenizer.json") {
        seeds.add("tokenizer_json", &std::fs::read(path)?)?;
    }
    for path in named("trainer_state.json") {
        seeds.add("trainer_state", &std::fs::read(path)?)?;
    }

    let text = std::fs::read_to_string(fixtures.join("multilingual/udhr-article1.txt"))?;
    let sample: String = text.chars().take(1500).collect();
    let jsonl: String = sample
        .split("\n\n")
        .map(|p| format!("{}\n", serde_json::json!({ "text": p, "id": 1 })))
        .collect();
    for (mode, body) in [(0u8, &sample), (1, &sample), (2, &sample), (3, &jsonl)] {
        let mut input = vec![mode];
        input.extend_from_slice(body.as_bytes());
        seeds.add("corpus", &input)?;
    }

    parquet_seeds(&mut seeds)?;
    row_seeds(&mut seeds)?;
    journal_seeds(&mut seeds)?;
    seeds.report();
    Ok(())
}

/// Every file under `dir`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Seed files by target, written once per distinct content.
struct Seeds<'a> {
    out: &'a Path,
    /// The targets to write seeds for (all when empty).
    only: Vec<String>,
    seen: BTreeSet<(String, Vec<u8>)>,
}

impl<'a> Seeds<'a> {
    fn new(out: &'a Path, only: Vec<String>) -> Self {
        Seeds {
            out,
            only,
            seen: BTreeSet::new(),
        }
    }

    /// `bytes` after the byte `mode`.
    fn add_after(&mut self, target: &str, mode: u8, bytes: &[u8]) -> std::io::Result<()> {
        let mut input = vec![mode];
        input.extend_from_slice(bytes);
        self.add(target, &input)
    }

    fn add(&mut self, target: &str, bytes: &[u8]) -> std::io::Result<()> {
        if !self.only.is_empty() && !self.only.iter().any(|t| t == target) {
            return Ok(());
        }
        if !self.seen.insert((target.to_string(), bytes.to_vec())) {
            return Ok(());
        }
        let dir = self.out.join(target);
        std::fs::create_dir_all(&dir)?;
        let n = self.seen.iter().filter(|(t, _)| t == target).count();
        std::fs::write(dir.join(format!("seed-{n:03}")), bytes)
    }

    #[allow(clippy::print_stdout)]
    fn report(&self) {
        let targets: BTreeSet<&String> = self.seen.iter().map(|(t, _)| t).collect();
        for target in targets {
            let (n, bytes) = self
                .seen
                .iter()
                .filter(|(t, _)| t == target)
                .fold((0, 0), |(n, b), (_, s)| (n + 1, b + s.len()));
            println!("{target}: {n} seeds, {bytes} bytes");
        }
    }
}

/// One column chunk's values, definition levels and repetition levels.
enum Column {
    I32(Vec<i32>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    Bytes(Vec<&'static [u8]>),
}

struct Chunk {
    values: Column,
    def: Option<Vec<i16>>,
    rep: Option<Vec<i16>>,
}

/// A required column chunk (every value present).
fn required(values: Column) -> Chunk {
    Chunk {
        values,
        def: None,
        rep: None,
    }
}

/// An optional column chunk: `def` 1 where a value is present.
fn optional(values: Column, def: &[i16]) -> Chunk {
    Chunk {
        values,
        def: Some(def.to_vec()),
        rep: None,
    }
}

/// A Parquet file of `schema` with one row group per element of `groups`
/// (each chunk in schema column order).
fn parquet_file(
    schema: &str,
    properties: WriterProperties,
    groups: Vec<Vec<Chunk>>,
) -> Result<Vec<u8>, Error> {
    let schema = Arc::new(parse_message_type(schema)?);
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, Arc::new(properties))?;
    for chunks in groups {
        let mut group = writer.next_row_group()?;
        for chunk in chunks {
            let mut column = group.next_column()?.ok_or("more chunks than columns")?;
            let (def, rep) = (chunk.def.as_deref(), chunk.rep.as_deref());
            match &chunk.values {
                Column::I32(v) => column.typed::<Int32Type>().write_batch(v, def, rep)?,
                Column::I64(v) => column.typed::<Int64Type>().write_batch(v, def, rep)?,
                Column::F64(v) => column.typed::<DoubleType>().write_batch(v, def, rep)?,
                Column::Bool(v) => column.typed::<BoolType>().write_batch(v, def, rep)?,
                Column::Bytes(v) => {
                    let v: Vec<ByteArray> = v.iter().map(|b| ByteArray::from(b.to_vec())).collect();
                    column.typed::<ByteArrayType>().write_batch(&v, def, rep)?
                }
            };
            column.close()?;
        }
        group.close()?;
    }
    writer.close()?;
    Ok(out)
}

fn texts(values: &[&'static str]) -> Column {
    Column::Bytes(values.iter().map(|s| s.as_bytes()).collect())
}

/// `parquet_documents`: document files (mode 0: text `text`, id `id`, kept
/// `meta`) and score row files (mode 1).
fn parquet_seeds(seeds: &mut Seeds) -> Result<(), Error> {
    let plain = || WriterProperties::builder().build();
    let t = "parquet_documents";
    // strings everywhere, two row groups, the default (dictionary) pages
    let file = parquet_file(
        "message docs { required binary id (UTF8); required binary text (UTF8); optional binary meta (UTF8); }",
        plain(),
        vec![
            vec![
                required(texts(&["a-0", "a-1"])),
                required(texts(&["first document", "zweites Dokument, ü"])),
                optional(texts(&["web"]), &[1, 0]),
            ],
            vec![
                required(texts(&["a-2"])),
                required(texts(&["日本語のテキスト\n二行目"])),
                optional(texts(&["books"]), &[1]),
            ],
        ],
    )?;
    seeds.add_after(t, 0, &file)?;
    // integer ids, null texts, a kept double, three row groups (one empty),
    // no dictionary, snappy
    let file = parquet_file(
        "message docs { required int64 id; optional binary text (UTF8); optional double meta; }",
        WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_compression(Compression::SNAPPY)
            .build(),
        vec![
            vec![
                required(Column::I64(vec![10, -7, i64::MAX])),
                optional(texts(&["alpha", "gamma"]), &[1, 0, 1]),
                optional(Column::F64(vec![0.5, 1e300]), &[1, 1, 0]),
            ],
            vec![
                required(Column::I64(vec![])),
                optional(texts(&[]), &[]),
                optional(Column::F64(vec![]), &[]),
            ],
            vec![
                required(Column::I64(vec![11])),
                optional(texts(&["beta"]), &[1]),
                optional(Column::F64(vec![f64::NAN]), &[1]),
            ],
        ],
    )?;
    seeds.add_after(t, 0, &file)?;
    // int32 ids with a null one, unannotated bytes (one not UTF-8), a kept
    // boolean; zstd, data page v2 with delta encodings
    let file = parquet_file(
        "message docs { optional int32 id; required binary text; optional boolean meta; }",
        WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_dictionary_enabled(false)
            .set_column_encoding(ColumnPath::from("text"), Encoding::DELTA_BYTE_ARRAY)
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build(),
        vec![vec![
            optional(Column::I32(vec![1, 2, 4]), &[1, 1, 0, 1]),
            required(Column::Bytes(vec![
                b"prefix one",
                b"prefix two",
                b"\xff\xfe",
                b"x",
            ])),
            optional(Column::Bool(vec![true, false]), &[1, 0, 1, 0]),
        ]],
    )?;
    seeds.add_after(t, 0, &file)?;
    // a kept nested group and a kept list, an id of unsigned 8-bit ints
    let file = parquet_file(
        "message docs {
            required int32 id (UINT_8);
            required binary text (UTF8);
            optional group meta { optional int32 a; optional binary b (UTF8); }
        }",
        plain(),
        vec![vec![
            required(Column::I32(vec![1, 255])),
            required(texts(&["one", "two"])),
            optional(Column::I32(vec![5]), &[2, 1]),
            optional(texts(&["x"]), &[2, 1]),
        ]],
    )?;
    seeds.add_after(t, 0, &file)?;
    let file = parquet_file(
        "message docs {
            required binary id (UTF8);
            required binary text (UTF8);
            optional group meta (LIST) { repeated group list { optional int64 element; } }
        }",
        plain(),
        vec![vec![
            required(texts(&["l0", "l1", "l2"])),
            required(texts(&["list row", "empty list", "null list"])),
            Chunk {
                values: Column::I64(vec![1, 2]),
                def: Some(vec![3, 3, 2, 1, 0]),
                rep: Some(vec![0, 1, 1, 0, 0]),
            },
        ]],
    )?;
    seeds.add_after(t, 0, &file)?;
    // a kept timestamp, an id column of doubles (refused at open)
    let file = parquet_file(
        "message docs {
            required binary id (UTF8);
            required binary text (UTF8);
            optional int64 meta (TIMESTAMP(MILLIS,true));
        }",
        plain(),
        vec![vec![
            required(texts(&["t0"])),
            required(texts(&["when"])),
            optional(Column::I64(vec![1_700_000_000_000]), &[1]),
        ]],
    )?;
    seeds.add_after(t, 0, &file)?;
    let file = parquet_file(
        "message docs { required double id; required binary text (UTF8); optional binary meta (UTF8); }",
        plain(),
        vec![vec![
            required(Column::F64(vec![1.5])),
            required(texts(&["x"])),
            optional(texts(&[]), &[0]),
        ]],
    )?;
    seeds.add_after(t, 0, &file)?;
    // score row files, read as documents (text `id`, id `index`, kept `status`)
    for file in score_parquet_files()? {
        seeds.add_after(t, 1, &file)?;
    }
    Ok(())
}

/// Score rows of every status, with kept columns of every kind.
fn sample_rows(keep: &[&str]) -> Vec<ScoreRow> {
    let mut stats = NllStats::new();
    for (nll, correct) in [(2.25, true), (0.1, false), (7.0, false)] {
        stats.push(nll, correct);
    }
    let counts = |bytes, tokens| DocumentCounts {
        bytes,
        words: bytes / 4,
        tokens,
    };
    let mut rows = vec![
        ScoreRow::new(0, "docs.jsonl:0".into(), counts(17, 4), &stats, true),
        ScoreRow::new(
            1,
            "docs.jsonl:1".into(),
            counts(0, 0),
            &NllStats::new(),
            true,
        ),
        ScoreRow::new(
            2,
            "b-2 \"quoted\" é".into(),
            counts(3, 1),
            &NllStats::new(),
            false,
        ),
        ScoreRow::new(u64::MAX >> 1, "last".into(), counts(40, 9), &stats, false),
    ];
    rows[3].status = perplex_core::report::DocumentStatus::BeyondTokenLimit;
    let values = [
        ColumnValue::Text("web".into()),
        ColumnValue::Int(-3),
        ColumnValue::Float(0.1),
        ColumnValue::Null,
        ColumnValue::Bool(true),
    ];
    for (i, row) in rows.iter_mut().enumerate() {
        row.extra = keep
            .iter()
            .enumerate()
            .map(|(k, name)| (name.to_string(), values[(i + k) % values.len()].clone()))
            .collect();
    }
    rows
}

/// Score row files written by `ParquetRowWriter`, and one of two row groups
/// written by the parquet crate with the same schema.
fn score_parquet_files() -> Result<Vec<Vec<u8>>, Error> {
    let mut files = Vec::new();
    for keep in [&[][..], &["source", "lang"][..]] {
        let columns: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
        let metadata = [("perplex.score.schema_version".to_string(), "1".to_string())];
        let mut writer = ParquetRowWriter::new(Vec::new(), &columns, &metadata)?;
        for row in sample_rows(keep) {
            writer.write(&row)?;
        }
        files.push(writer.finish()?);
    }
    let group = |first: i64, rows: usize| {
        let n = |v: i64| Column::I64(vec![v; rows]);
        vec![
            required(Column::I64((first..first + rows as i64).collect())),
            required(texts(&["g-a", "g-b", "g-c"][..rows])),
            required(texts(&["scored", "too-short", "empty"][..rows])),
            required(n(12)),
            required(n(3)),
            required(n(5)),
            required(n(4)),
            required(Column::F64(vec![3.5; rows])),
            optional(
                Column::F64(vec![0.875]),
                &[&[1i16][..], &vec![0; rows - 1]].concat(),
            ),
            optional(Column::F64(vec![]), &vec![0; rows]),
            optional(
                Column::F64(vec![0.42]),
                &[&[1i16][..], &vec![0; rows - 1]].concat(),
            ),
            optional(
                Column::F64(vec![0.5]),
                &[&[1i16][..], &vec![0; rows - 1]].concat(),
            ),
            optional(
                texts(&["kept"]),
                &[&[1i16][..], &vec![0; rows - 1]].concat(),
            ),
        ]
    };
    files.push(parquet_file(
        "message score_rows {
            required int64 index; required binary id (STRING); required binary status (STRING);
            required int64 bytes; required int64 words; required int64 tokens;
            required int64 scored_tokens; required double nll_sum; optional double mean_nll;
            optional double perplexity; optional double bits_per_byte;
            optional double token_accuracy; optional binary source (STRING);
        }",
        WriterProperties::builder().build(),
        vec![group(0, 2), group(2, 3)],
    )?);
    Ok(files)
}

/// `score_rows`: Parquet row files and JSONL row files (whole, with blank
/// lines and CRLF endings, cut in a line, with faults).
fn row_seeds(seeds: &mut Seeds) -> Result<(), Error> {
    let t = "score_rows";
    for file in score_parquet_files()? {
        seeds.add(t, &file)?;
    }
    for keep in [&[][..], &["source"][..], &["source", "lang", "n"][..]] {
        let lines: Vec<String> = sample_rows(keep).iter().map(jsonl_row).collect();
        let whole = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        seeds.add(t, whole.as_bytes())?;
        if keep.len() == 1 {
            seeds.add(t, format!("\n{}\r\n\r\n{}", lines[0], lines[1]).as_bytes())?;
            seeds.add(t, &whole.as_bytes()[..whole.len() - 30])?;
        }
    }
    let line = jsonl_row(&sample_rows(&["source"])[0]);
    for fault in [
        line.replace("\"scored\"", "\"unknown\""),
        line.replace("\"nll_sum\":", "\"nll_sum\":null,\"x\":"),
        line.replace("\"index\":0", "\"index\":-1"),
        line.replace("{\"index\":0,", "{\"index\":0,\"index\":1,"),
        line.replace("\"mean_nll\":", "\"mean_nll\": 1e400, \"y\":"),
        format!(
            "{} {{\"nested\":[1,{{\"a\":null}}]}}",
            &line[..line.len() - 1]
        )
        .replace("} {", ",\"obj\":"),
    ] {
        seeds.add(t, format!("{line}\n{fault}\n").as_bytes())?;
    }
    Ok(())
}

/// `score_journal`: unfinished score outputs written by `Journal` (mode 0:
/// the journal alone; mode 1: journal, NUL, rows) and eval checkpoints
/// (mode 2).
fn journal_seeds(seeds: &mut Seeds) -> Result<(), Error> {
    use perplex_eval::score::journal::{Journal, Opened};
    let t = "score_journal";
    let dir = tempfile::tempdir()?;
    let output = perplex_eval::score::ScoreOutput {
        path: dir.path().join("out.jsonl"),
        format: perplex_data::rows::RowFormat::Jsonl,
    };
    let identity = perplex_fuzz::run_identity();
    let partial = dir.path().join("out.jsonl.partial");
    let read = |name: &str| std::fs::read(partial.join(name));
    let mut totals = ScoreTotals::default();
    let rows = sample_rows(&["source"]);
    // two runs: two blocks committed, a third begun; then resumed, one more
    for run in 0..2 {
        let Opened::Journal(mut journal) = Journal::open(&output, &identity)? else {
            return Err("a new output is a journal".into());
        };
        let blocks: &[&[ScoreRow]] = if run == 0 {
            &[&rows[..2], &rows[2..3]]
        } else {
            &[&rows[3..]]
        };
        for block in blocks {
            journal.begin(block.len() as u64)?;
            for row in *block {
                totals.add_row(row, &NllStats::new());
            }
            journal.commit(
                block,
                journal.committed().read + block.len() as u64,
                "b3f0",
                &totals,
            )?;
        }
        if run == 0 {
            journal.begin(2)?;
        }
        let (journal, rows) = (read("journal.jsonl")?, read("rows.jsonl")?);
        seeds.add_after(t, 0, &journal)?;
        let both = [&journal[..], b"\0", &rows[..]].concat();
        seeds.add_after(t, 1, &both)?;
        // the kill cut the journal's last line, and the rows after the commit
        seeds.add_after(t, 1, &both[..journal.len() - 7])?;
        let mut extra_rows = both.clone();
        extra_rows.extend_from_slice(b"{\"index\":9,\"id\":\"cut");
        seeds.add_after(t, 1, &extra_rows)?;
    }
    seeds.add_after(t, 1, b"{\"run\":1}\n{\"begin\":0,\"documents\":2}\n\0")?;
    seeds.add_after(
        t,
        0,
        b"{\"run\":1}\n{\"begin\":0,\"documents\":2}\n{\"run\":2}",
    )?;
    seeds.add_after(t, 0, b"{\"run\":1}\nnot json\n{\"run\":2}\n")?;

    let mut stats = NllStats::new();
    stats.push(1.25, true);
    stats.push(3.0, false);
    let checkpoint = perplex_eval::checkpoint::Checkpoint {
        windows: 3,
        outcome: perplex_eval::engine::Outcome {
            per_document: vec![stats, NllStats::new()],
            evaluated_tokens: vec![9, 0],
            total: stats,
            processed_tokens: 24,
            windows: 3,
        },
        token_bytes: 20,
    };
    let json = serde_json::to_string(&checkpoint)?;
    seeds.add_after(t, 2, json.as_bytes())?;
    seeds.add_after(
        t,
        2,
        json.replace("\"token_bytes\":20", "\"token_bytes\":4096")
            .as_bytes(),
    )?;
    seeds.add_after(t, 2, &json.as_bytes()[..json.len() / 2])?;
    Ok(())
}
