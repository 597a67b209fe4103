//! Parquet data pages checked before the parquet crate decodes them.
//!
//! The parquet crate's column decoder panics on some damaged pages:
//! - a `DELTA_BINARY_PACKED` page whose header declares no values while its
//!   definition levels say it holds some (an index out of range; an integer
//!   underflow with overflow checks);
//! - a dictionary-encoded data page before any dictionary page (an
//!   `expect`);
//! - a dictionary or data page of PLAIN byte arrays that ends before the
//!   values it declares (a slice out of range);
//! - a version 2 data page whose levels are longer than the page (a slice
//!   out of range);
//!
//! and its page reader on a column chunk whose offset or size in the footer
//! is negative (an `assert!`). [`CheckedRowGroup`] wraps a row group so that
//! every chunk is checked before its pages are read, and every page on its
//! way to the decoder: such a chunk or page is a `ParquetError` instead.
//! Everything else reaches the decoder unchanged, at the cost of walking the
//! lengths of a byte array page and the first bytes of a delta page. The
//! non-null values of a page are counted from its RLE definition levels;
//! with the deprecated BIT_PACKED levels every level counts.

use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::bloom_filter::Sbbf;
use parquet::column::page::{Page, PageMetadata, PageReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::RowGroupReader;
use parquet::record::reader::RowIter;
use parquet::schema::types::Type;

/// A row group whose data pages are checked as they are read.
pub(crate) struct CheckedRowGroup<'a>(pub(crate) Box<dyn RowGroupReader + 'a>);

impl RowGroupReader for CheckedRowGroup<'_> {
    fn metadata(&self) -> &RowGroupMetaData {
        self.0.metadata()
    }

    fn num_columns(&self) -> usize {
        self.0.num_columns()
    }

    fn get_column_page_reader(&self, i: usize) -> Result<Box<dyn PageReader>> {
        // the page reader `assert!`s both are non-negative
        let chunk = self.metadata().column(i);
        let start = chunk
            .dictionary_page_offset()
            .unwrap_or(chunk.data_page_offset());
        if start < 0 || chunk.compressed_size() < 0 {
            return Err(ParquetError::General(format!(
                "column chunk {i} starts at {start} and is {} bytes long",
                chunk.compressed_size()
            )));
        }
        let column = self.metadata().schema_descr().column(i);
        Ok(Box::new(CheckedPages {
            inner: self.0.get_column_page_reader(i)?,
            max_def: column.max_def_level(),
            max_rep: column.max_rep_level(),
            byte_arrays: column.physical_type() == PhysicalType::BYTE_ARRAY,
            dictionary: false,
        }))
    }

    fn get_column_bloom_filter(&self, i: usize) -> Option<&Sbbf> {
        self.0.get_column_bloom_filter(i)
    }

    fn get_row_iter(&self, projection: Option<Type>) -> Result<RowIter<'_>> {
        RowIter::from_row_group(projection, self)
    }
}

struct CheckedPages {
    inner: Box<dyn PageReader>,
    max_def: i16,
    max_rep: i16,
    /// Whether the column holds byte arrays.
    byte_arrays: bool,
    /// Whether the chunk's dictionary page has been read.
    dictionary: bool,
}

impl Iterator for CheckedPages {
    type Item = Result<Page>;

    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

impl PageReader for CheckedPages {
    fn get_next_page(&mut self) -> Result<Option<Page>> {
        let page = self.inner.get_next_page()?;
        if let Some(page) = &page {
            self.check(page)?;
        }
        Ok(page)
    }

    fn peek_next_page(&mut self) -> Result<Option<PageMetadata>> {
        self.inner.peek_next_page()
    }

    fn skip_next_page(&mut self) -> Result<()> {
        self.inner.skip_next_page()
    }

    fn supports_deferred_dictionary(&self) -> bool {
        self.inner.supports_deferred_dictionary()
    }

    fn take_deferred_dictionary(&mut self) -> Result<Option<Page>> {
        let page = self.inner.take_deferred_dictionary()?;
        if let Some(page) = &page {
            self.check(page)?;
        }
        Ok(page)
    }

    fn at_record_boundary(&mut self) -> Result<bool> {
        self.inner.at_record_boundary()
    }
}

impl CheckedPages {
    fn check(&mut self, page: &Page) -> Result<()> {
        if let Page::DictionaryPage {
            buf, num_values, ..
        } = page
        {
            self.dictionary = true;
            if self.byte_arrays {
                plain_byte_arrays(buf, *num_values as usize)?;
            }
            return Ok(());
        }
        if let Page::DataPageV2 {
            buf,
            def_levels_byte_len,
            rep_levels_byte_len,
            ..
        } = page
        {
            // the decoder slices the levels out unchecked
            let levels = u64::from(*def_levels_byte_len) + u64::from(*rep_levels_byte_len);
            if levels > buf.len() as u64 {
                return Err(ParquetError::General(format!(
                    "a data page's levels take {levels} bytes of its {}",
                    buf.len()
                )));
            }
        }
        let encoding = page.encoding();
        if matches!(
            encoding,
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
        ) && !self.dictionary
        {
            return Err(ParquetError::General(format!(
                "a {encoding} data page comes before any dictionary page"
            )));
        }
        let checked = encoding == Encoding::DELTA_BINARY_PACKED
            || (encoding == Encoding::PLAIN && self.byte_arrays);
        if !checked {
            return Ok(());
        }
        // a page this cannot take apart is left to the decoder, which then
        // fails on the same bytes with an error of its own
        let Some((values, present)) = values(page, self.max_def, self.max_rep) else {
            return Ok(());
        };
        if encoding == Encoding::PLAIN {
            return plain_byte_arrays(values, present);
        }
        // <block size> <miniblocks per block> <total value count> <first value>
        let mut header = values;
        let mut count = 0;
        for _ in 0..3 {
            let Some((value, rest)) = uleb128(header) else {
                return Ok(());
            };
            count = value;
            header = rest;
        }
        if count == 0 && present > 0 {
            return Err(ParquetError::General(format!(
                "a DELTA_BINARY_PACKED page declares no values but holds {present}"
            )));
        }
        Ok(())
    }
}

/// Refuses PLAIN byte arrays (each a 4-byte length, then the bytes) that
/// end before `count` of them: the decoder panics when fewer than 4 bytes
/// are left for a length.
fn plain_byte_arrays(mut data: &[u8], count: usize) -> Result<()> {
    for n in 0..count {
        let len = data
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
        match len.and_then(|len| data.get(4..4usize.checked_add(len)?)) {
            Some(value) => data = &data[4 + value.len()..],
            None => {
                return Err(ParquetError::General(format!(
                    "a page of PLAIN byte arrays ends after {n} of its {count} values"
                )))
            }
        }
    }
    Ok(())
}

/// A data page's values (after its levels), and how many non-null values
/// its definition levels give it (at most; all of them when the levels
/// cannot be counted); `None` when the levels cannot be taken apart.
fn values(page: &Page, max_def: i16, max_rep: i16) -> Option<(&[u8], usize)> {
    let num_values = page.num_values() as usize;
    let width = |max: i16| (16 - max.leading_zeros()) as usize;
    match page {
        Page::DataPage {
            buf,
            def_level_encoding,
            rep_level_encoding,
            ..
        } => {
            let mut at = 0;
            // the levels of one kind: RLE (a 4-byte length, then an
            // RLE/bit-packed hybrid run), or the deprecated BIT_PACKED,
            // not counted here (`None`)
            let mut levels = |encoding: Encoding, max: i16| -> Option<Option<&[u8]>> {
                if encoding == Encoding::RLE {
                    let len = u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?) as usize;
                    let section = buf.get(at + 4..(at + 4).checked_add(len)?)?;
                    at += 4 + len;
                    Some(Some(section))
                } else {
                    at = at.checked_add(num_values.checked_mul(width(max))?.div_ceil(8))?;
                    Some(None)
                }
            };
            if max_rep > 0 {
                levels(*rep_level_encoding, max_rep)?;
            }
            let present = if max_def > 0 {
                match levels(*def_level_encoding, max_def)? {
                    Some(def) => count_level(def, width(max_def), max_def, num_values),
                    None => num_values,
                }
            } else {
                num_values
            };
            Some((buf.get(at..)?, present))
        }
        Page::DataPageV2 {
            buf,
            def_levels_byte_len,
            rep_levels_byte_len,
            ..
        } => {
            let rep = *rep_levels_byte_len as usize;
            let def_end = rep.checked_add(*def_levels_byte_len as usize)?;
            let def = buf.get(rep..def_end)?;
            let present = if max_def > 0 {
                count_level(def, width(max_def), max_def, num_values)
            } else {
                num_values
            };
            Some((buf.get(def_end..)?, present))
        }
        _ => None,
    }
}

/// How many of the first `n` levels of the RLE/bit-packed hybrid run
/// `data` (`width` bits each) are `level`, at most: levels past the end of
/// the data count as `level`.
fn count_level(mut data: &[u8], width: usize, level: i16, n: usize) -> usize {
    let level = level as u64;
    let (mut seen, mut found) = (0usize, 0usize);
    while seen < n {
        let Some((header, rest)) = uleb128(data) else {
            return found + (n - seen);
        };
        data = rest;
        let left = n - seen;
        if header & 1 == 0 {
            // a run of one value, stored in whole bytes
            let bytes = width.div_ceil(8);
            let Some(value) = data.get(..bytes) else {
                return found + left;
            };
            let value = value
                .iter()
                .rev()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b));
            let run = usize::try_from(header >> 1).unwrap_or(usize::MAX).min(left);
            if value == level {
                found += run;
            }
            seen += run;
            data = &data[bytes..];
        } else {
            // groups of 8 values, bit-packed from the lowest bit
            let values = usize::try_from(header >> 1)
                .unwrap_or(usize::MAX)
                .saturating_mul(8)
                .min(left);
            let bytes = (values * width).div_ceil(8);
            let Some(packed) = data.get(..bytes) else {
                return found + left;
            };
            for i in 0..values {
                let mut value = 0u64;
                for bit in 0..width {
                    let at = i * width + bit;
                    value |= u64::from((packed[at / 8] >> (at % 8)) & 1) << bit;
                }
                found += usize::from(value == level);
            }
            seen += values;
            data = &data[bytes..];
        }
    }
    found
}

/// An unsigned LEB128 varint (up to 64 bits) and the bytes after it.
fn uleb128(data: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &b) in data.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &data[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::SerializedFileReader;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;

    /// A file of one optional int64 column `n`, `DELTA_BINARY_PACKED`, one
    /// page holding `values` at the levels `def`.
    fn delta_file(values: &[i64], def: &[i16]) -> Vec<u8> {
        let schema = parse_message_type("message m { optional int64 n; }").unwrap();
        let props = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_encoding(Encoding::DELTA_BINARY_PACKED)
            .build();
        let mut out = Vec::new();
        let mut writer =
            SerializedFileWriter::new(&mut out, Arc::new(schema), Arc::new(props)).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        column
            .typed::<Int64Type>()
            .write_batch(values, Some(def), None)
            .unwrap();
        column.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
        out
    }

    fn read_all(file: Vec<u8>) -> Result<usize> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.parquet");
        std::fs::write(&path, file).unwrap();
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap())?;
        let group = CheckedRowGroup(reader.get_row_group(0)?);
        let mut n = 0;
        for row in group.get_row_iter(None)? {
            row?;
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn a_delta_page_that_declares_no_values_but_holds_some_is_an_error() {
        let file = delta_file(&[5], &[1, 0]);
        assert_eq!(read_all(file.clone()).unwrap(), 2);
        // block size 256, 4 miniblocks, 1 value, first value 5 (zigzag 10)
        let header = [0x80, 0x02, 0x04, 0x01, 0x0a];
        let at = file
            .windows(5)
            .position(|w| w == header)
            .unwrap_or_else(|| panic!("{file:x?}"));
        let mut bad = file;
        bad[at + 3] = 0;
        let e = read_all(bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Parquet error: a DELTA_BINARY_PACKED page declares no values but holds 1"
        );
    }

    #[test]
    fn a_dictionary_encoded_page_without_a_dictionary_is_an_error() {
        let schema = parse_message_type("message m { required binary s (UTF8); }").unwrap();
        let mut file = Vec::new();
        let mut writer = SerializedFileWriter::new(
            &mut file,
            Arc::new(schema),
            Arc::new(WriterProperties::builder().build()),
        )
        .unwrap();
        let mut group = writer.next_row_group().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        let values = [ByteArray::from("a"), ByteArray::from("a")];
        column
            .typed::<ByteArrayType>()
            .write_batch(&values, None, None)
            .unwrap();
        column.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
        assert_eq!(read_all(file.clone()).unwrap(), 2);
        // the dictionary page's header: type DICTIONARY_PAGE (2), then the
        // sizes; as type INDEX_PAGE (1) the reader skips it
        let header = [0x15, 0x04, 0x15, 0x0a, 0x15, 0x0a];
        let at = file
            .windows(6)
            .position(|w| w == header)
            .unwrap_or_else(|| panic!("{file:x?}"));
        let mut bad = file;
        bad[at + 1] = 0x02;
        let e = read_all(bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Parquet error: a RLE_DICTIONARY data page comes before any dictionary page"
        );
    }

    #[test]
    fn a_column_chunk_at_a_negative_offset_is_an_error() {
        // the fuzz input that found it: a mode byte, then the file
        let input = include_bytes!(
            "../../../fuzz/regressions/parquet_documents/negative-column-chunk-offset"
        );
        let e = read_all(input[1..].to_vec()).unwrap_err().to_string();
        assert_eq!(
            e,
            "Parquet error: column chunk 0 starts at -19 and is 38 bytes long"
        );
    }

    #[test]
    fn a_v2_page_whose_levels_are_longer_than_the_page_is_an_error() {
        let input =
            include_bytes!("../../../fuzz/regressions/parquet_documents/v2-levels-past-the-page");
        let e = read_all(input[1..].to_vec()).unwrap_err().to_string();
        assert_eq!(
            e,
            "Parquet error: a data page's levels take 2 bytes of its 0"
        );
    }

    #[test]
    fn an_all_null_delta_page_with_no_values_is_read() {
        let file = delta_file(&[], &[0, 0, 0]);
        assert_eq!(read_all(file).unwrap(), 3);
    }

    #[test]
    fn hybrid_levels_are_counted() {
        // an RLE run of 3 zeros (1 byte each, width 1); one bit-packed group
        // of 8 values 0b0000_0101 (the first and third are 1)
        assert_eq!(count_level(&[0x06, 0x00], 1, 1, 3), 0);
        assert_eq!(count_level(&[0x06, 0x01], 1, 1, 3), 3);
        assert_eq!(count_level(&[0x03, 0b101], 1, 1, 8), 2);
        assert_eq!(count_level(&[0x03, 0b101], 1, 1, 2), 1);
        // cut short: every level not read may be one
        assert_eq!(count_level(&[0x03], 1, 1, 8), 8);
        assert_eq!(count_level(&[0x06, 0x00], 1, 1, 5), 2);
        assert_eq!(uleb128(&[0x80, 0x01, 7]), Some((128, &[7u8][..])));
        assert_eq!(uleb128(&[0x80]), None);
    }

    #[test]
    fn plain_byte_arrays_must_hold_their_count() {
        let data = [1, 0, 0, 0, b'a', 2, 0, 0, 0, b'b', b'c', 9, 9];
        assert!(plain_byte_arrays(&data, 2).is_ok());
        assert_eq!(
            plain_byte_arrays(&data, 3).unwrap_err().to_string(),
            "Parquet error: a page of PLAIN byte arrays ends after 2 of its 3 values"
        );
        assert!(plain_byte_arrays(&data[..8], 2).is_err());
    }
}
