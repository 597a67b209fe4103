//! The SmolLM2 demo model's GGUF vocabulary, built into a tokenizer, gives
//! the reference ids on the whole of WikiText-2's test split, and agrees with
//! SmolLM2's `tokenizer.json` on it and on hard strings.
//!
//! Needs `models/SmolLM2-135M-Instruct.Q4_1.gguf` (`scripts/fetch-demo-model.sh`)
//! and the shared reference files in `../shared/reference` beside the checkout:
//! slow tests (`perplex_testkit`), ignored with the reason in the quick tier or
//! without them, unless the run requires them (CI, or `scripts/test` after fetching).

use candle_core::quantized::gguf_file;
use perplex_data::tokenizer::TextTokenizer;
use perplex_model::gguf_vocab::vocab_from_gguf;
use perplex_testkit::{npy, run_tests, Resource, SlowTest};

const TEXT: &str = "wiki.test.raw";
const IDS: &str = "wiki.test.smollm2-ids.npy";
const TOKENIZER_JSON: &str = "smollm2-tokenizer.json";

fn gguf_tokenizer() -> TextTokenizer {
    let demo = Resource::demo_model();
    let path = demo.path();
    let mut file = std::fs::File::open(path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let vocab = vocab_from_gguf(&content).unwrap();
    TextTokenizer::from_gguf_vocab(&vocab, &path.display().to_string()).unwrap()
}

fn json_tokenizer() -> TextTokenizer {
    TextTokenizer::from_tokenizer_json(Resource::reference(TOKENIZER_JSON).path()).unwrap()
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

fn gguf_vocabulary_gives_the_reference_ids_on_wikitext() {
    let text = std::fs::read_to_string(Resource::reference(TEXT).path()).unwrap();
    let expected = npy::read_npy_ids(Resource::reference(IDS).path());
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

fn main() {
    let reference = |files: &[&str]| {
        files
            .iter()
            .map(|f| Resource::reference(f))
            .collect::<Vec<_>>()
    };
    run_tests(vec![
        SlowTest::new(
            "gguf_vocabulary_gives_the_reference_ids_on_wikitext",
            gguf_vocabulary_gives_the_reference_ids_on_wikitext,
        )
        .needs([Resource::demo_model()])
        .needs(reference(&[TEXT, IDS, TOKENIZER_JSON])),
        SlowTest::new(
            "gguf_identity_matches_the_file",
            gguf_identity_matches_the_file,
        )
        .needs([Resource::demo_model()]),
        SlowTest::new(
            "hard_strings_agree_with_tokenizer_json",
            hard_strings_agree_with_tokenizer_json,
        )
        .needs([Resource::demo_model()])
        .needs(reference(&[TOKENIZER_JSON])),
    ]);
}
