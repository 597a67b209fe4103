//! Byte and word counts, the denominators of bits-per-byte and word
//! perplexity.
//!
//! Both follow lm-evaluation-harness so that normalised figures are
//! comparable with it: bytes are the UTF-8 length of the document, and words
//! are `len(re.split(r"\s+", text))` in Python 3 (the harness's
//! `wikitext` task). That definition counts whitespace *runs* plus one, so an
//! empty string has one word and leading or trailing whitespace adds an empty
//! piece that counts.

/// UTF-8 bytes of `text`.
///
/// ```
/// assert_eq!(perplex_data::counts::byte_count("naïve"), 6);
/// ```
pub fn byte_count(text: &str) -> u64 {
    text.len() as u64
}

/// Words of `text` as lm-evaluation-harness counts them:
/// `len(re.split(r"\s+", text))` in Python 3.
///
/// Splitting on every maximal run of whitespace leaves one more piece than
/// there are runs, empty pieces included.
///
/// ```
/// use perplex_data::counts::word_count;
/// assert_eq!(word_count("hello  world"), 2);
/// assert_eq!(word_count(""), 1);
/// assert_eq!(word_count(" a "), 3);
/// ```
pub fn word_count(text: &str) -> u64 {
    let mut runs = 0u64;
    let mut in_run = false;
    for c in text.chars() {
        let ws = is_python_whitespace(c);
        if ws && !in_run {
            runs += 1;
        }
        in_run = ws;
    }
    runs + 1
}

/// Whether Python 3's `re` matches `c` with `\s` in a `str` pattern.
///
/// That set is `str.isspace()`: Unicode `White_Space` plus the four
/// information separators U+001C..U+001F (which Python counts because their
/// bidirectional class is `B`/`S`). Rust's [`char::is_whitespace`] lacks those
/// four, hence this function.
pub fn is_python_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{0B}'
            | '\u{0C}'
            | '\r'
            | '\u{1C}'..='\u{1F}'
            | ' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values from CPython 3.11: `len(re.split(r"\s+", t))`.
    #[test]
    fn word_count_matches_python_re_split() {
        let cases: &[(&str, u64)] = &[
            ("", 1),
            (" ", 2),
            ("a", 1),
            (" a ", 3),
            ("a  b", 2),
            ("a\u{1c}b", 2),
            ("a\u{a0}b\u{3000}c", 3),
            ("\n\nhello world\n", 4),
            ("a\u{200b}b", 1),
            ("a\u{180e}b", 1),
            ("a\u{85}b", 2),
            (" \t\n ", 2),
            ("x\u{2028}y\u{2029}z", 3),
            ("one\rtwo\u{0b}three\u{0c}four", 4),
            ("naïve café  ", 3),
        ];
        for &(text, expected) in cases {
            assert_eq!(word_count(text), expected, "{text:?}");
        }
    }

    /// CPython 3.11: `[c for c in range(0x110000) if re.match(r"\s", chr(c))]`
    /// has exactly these 29 code points.
    #[test]
    fn python_whitespace_set_is_exact() {
        let expected: Vec<u32> = [
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000,
            0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028,
            0x2029, 0x202f, 0x205f, 0x3000,
        ]
        .to_vec();
        let found: Vec<u32> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|&c| is_python_whitespace(c))
            .map(u32::from)
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn byte_count_is_utf8_length() {
        assert_eq!(byte_count(""), 0);
        assert_eq!(byte_count("abc"), 3);
        assert_eq!(byte_count("é"), 2);
        assert_eq!(byte_count("日本"), 6);
        assert_eq!(byte_count("🙂"), 4);
    }
}
