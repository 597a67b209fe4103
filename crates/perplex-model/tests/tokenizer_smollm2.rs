//! The SmolLM2 demo model's GGUF vocabulary, built into a tokenizer, gives
//! the reference ids on the whole of WikiText-2's test split, and agrees with
//! SmolLM2's `tokenizer.json` on it and on hard strings.
//!
//! Needs `models/SmolLM2-135M-Instruct.Q4_1.gguf` (`scripts/fetch-demo-model.sh`)
//! and the shared reference files in `../shared/reference` beside the checkout.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use perplex_data::tokenizer::TextTokenizer;
use perplex_model::gguf_vocab::vocab_from_gguf;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/perplex-model has a workspace root two levels up")
        .to_path_buf()
}

fn reference(name: &str) -> PathBuf {
    let path = workspace_root().join("../shared/reference").join(name);
    assert!(
        path.is_file(),
        "missing reference file {}: the shared reference folder must sit beside the checkout as ../shared",
        path.display()
    );
    path
}

fn gguf_tokenizer() -> TextTokenizer {
    let path = workspace_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "missing demo model {}: run scripts/fetch-demo-model.sh",
        path.display()
    );
    let mut file = std::fs::File::open(&path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let vocab = vocab_from_gguf(&content).unwrap();
    TextTokenizer::from_gguf_vocab(&vocab, &path.display().to_string()).unwrap()
}

fn json_tokenizer() -> TextTokenizer {
    TextTokenizer::from_tokenizer_json(&reference("smollm2-tokenizer.json")).unwrap()
}

/// A 1-D little-endian int32 `.npy` array (format versions 1 to 3).
fn read_npy_i32(path: &Path) -> Vec<i32> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..6],
        b"\x93NUMPY",
        "{} is not a .npy file",
        path.display()
    );
    let (header_len, header_start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        ),
        v => panic!("unsupported .npy version {v}"),
    };
    let header = std::str::from_utf8(&bytes[header_start..header_start + header_len]).unwrap();
    assert!(
        header.contains("'descr': '<i4'"),
        "not little-endian int32: {header}"
    );
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no shape in {header}"));
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().unwrap())
        .collect();
    assert_eq!(dims.len(), 1, "expected a 1-D array, shape ({shape})");
    let data = &bytes[header_start + header_len..];
    assert_eq!(data.len(), dims[0] * 4, "data length does not match shape");
    data.chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn assert_same_ids(what: &str, got: &[u32], expected: &[u32]) {
    if let Some(i) = got.iter().zip(expected).position(|(a, b)| a != b) {
        let from = i.saturating_sub(3);
        panic!(
            "{what}: first difference at token {i}: got {:?}, expected {:?}",
            &got[from..(i + 4).min(got.len())],
            &expected[from..(i + 4).min(expected.len())]
        );
    }
    assert_eq!(got.len(), expected.len(), "{what}: token counts differ");
}

#[test]
fn gguf_vocabulary_gives_the_reference_ids_on_wikitext() {
    let text = std::fs::read_to_string(reference("wiki.test.raw")).unwrap();
    let expected: Vec<u32> = read_npy_i32(&reference("wiki.test.smollm2-ids.npy"))
        .into_iter()
        .map(|id| u32::try_from(id).unwrap())
        .collect();
    assert_eq!(expected.len(), 301_948);

    let gguf = gguf_tokenizer();
    assert_same_ids("GGUF vocabulary", &gguf.encode(&text).unwrap(), &expected);

    let json = json_tokenizer();
    assert_same_ids(
        "smollm2-tokenizer.json",
        &json.encode(&text).unwrap(),
        &expected,
    );
}

#[test]
fn gguf_identity_matches_the_file() {
    let tok = gguf_tokenizer();
    let id = tok.identity();
    assert!(id.source.starts_with("gguf:"), "{}", id.source);
    assert!(
        id.source.ends_with("SmolLM2-135M-Instruct.Q4_1.gguf"),
        "{}",
        id.source
    );
    assert_eq!(id.kind, "gguf gpt2 (pre: smollm)");
    assert_eq!(id.vocab_size, 49_152);
    assert_eq!(id.bos_id, Some(1));
    assert_eq!(id.eos_id, Some(2));
    assert!(!id.adds_bos);
    assert_eq!(tok.token_text(1), "<|im_start|>");
}

#[test]
fn hard_strings_agree_with_tokenizer_json() {
    let gguf = gguf_tokenizer();
    let json = json_tokenizer();
    let texts = [
        "\n\n  0.",
        "  12345 ",
        "x = 3.14159; y=2e10",
        " = = Gameplay = = \n",
        "Emoji: 🙂👍🏽 👨‍👩‍👧 ❤️",
        "日本語のテキストと中文文本",
        "Ünïcödé naïve café Ω ß",
        "tabs\tand\r\nCRLF\r\n\r\n",
        "\u{a0}no-break\u{2003}em space",
        "it's I'M we'LL they've",
        "<|im_start|>user\nhi<|im_end|>",
        "",
        " ",
        "        ",
    ];
    for text in texts {
        assert_eq!(
            gguf.encode(text).unwrap(),
            json.encode(text).unwrap(),
            "{text:?}"
        );
    }
    // Digits stand alone (the `smollm` digit split), whitespace before them too.
    let pieces: Vec<String> = gguf
        .encode("  12345 ")
        .unwrap()
        .into_iter()
        .map(|id| gguf.token_text(id))
        .collect();
    assert_eq!(pieces, ["  ", "1", "2", "3", "4", "5", " "]);
    let pieces: Vec<String> = gguf
        .encode("\n\n  0.")
        .unwrap()
        .into_iter()
        .map(|id| gguf.token_text(id))
        .collect();
    assert_eq!(pieces.concat(), "\n\n  0.");
    assert!(pieces.contains(&"0".to_owned()), "{pieces:?}");
    // Special-token text: matched by default, plain text on request.
    assert_eq!(gguf.encode("<|im_end|>").unwrap(), [2]);
    let literal = gguf.clone().with_parse_special(false);
    assert!(literal.encode("<|im_end|>").unwrap().len() > 1);
}
