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
//! - a `DELTA_LENGTH_BYTE_ARRAY` page whose lengths are negative or run past
//!   the page's end, or whose last block of lengths ends past it (a slice
//!   out of range), and a `DELTA_BYTE_ARRAY` page whose prefix lengths end
//!   past it or that has fewer suffixes than prefixes (an `expect`);
//! - a delta-encoded page whose block is too large to address (with
//!   overflow checks, an overflow), or with a varint longer than 10 bytes
//!   (an `assert!`), and the same varint as the header of an RLE run of
//!   levels or of dictionary indices;
//!
//! and its page reader on a column chunk whose offset or size in the footer
//! is negative (an `assert!`). Its decoder also sizes buffers from declared
//! counts before reading them: the dictionary from a dictionary page's, the
//! lengths of a delta-encoded byte array page from theirs. A dictionary page
//! must hold the values it declares, and a delta-encoded byte array page
//! may declare no more values than its levels hold nor than 256 a byte of
//! the page (at least 65,536), so what the decoder allocates is bounded by
//! the page's size.
//!
//! [`CheckedRowGroup`] wraps a row group so that every chunk is checked
//! before its pages are read, and every page on its way to the decoder: such
//! a chunk or page is a `ParquetError` instead. Everything else reaches the
//! decoder unchanged, at the cost of walking the lengths of a byte array
//! page, the blocks of a delta page, and the run headers of every page's
//! levels and dictionary indices. The non-null values of a page are
//! counted from its RLE definition levels; with the deprecated BIT_PACKED
//! levels every level counts.

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
            physical: column.physical_type(),
            type_length: column.type_length(),
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
    physical: PhysicalType,
    /// The length of a fixed-length byte array.
    type_length: i32,
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
            return dictionary(self.physical, self.type_length, buf, *num_values as usize);
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
        let indices = matches!(
            encoding,
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
        );
        if indices && !self.dictionary {
            return Err(ParquetError::General(format!(
                "a {encoding} data page comes before any dictionary page"
            )));
        }
        // a page this cannot take apart is left to the decoder, which then
        // fails on the same bytes with an error of its own
        let Some((values, present)) = values(page, self.max_def, self.max_rep)? else {
            return Ok(());
        };
        if indices {
            // a byte of bit width, then the indices as a hybrid run
            return match values.split_first() {
                Some((&width, runs)) => hybrid_headers(runs, usize::from(width), present),
                None => Ok(()),
            };
        }
        let byte_arrays = self.physical == PhysicalType::BYTE_ARRAY;
        let checked = matches!(
            encoding,
            Encoding::DELTA_BINARY_PACKED
                | Encoding::DELTA_LENGTH_BYTE_ARRAY
                | Encoding::DELTA_BYTE_ARRAY
        ) || (encoding == Encoding::PLAIN && byte_arrays);
        if !checked {
            return Ok(());
        }
        match encoding {
            Encoding::PLAIN => plain_byte_arrays(values, present),
            Encoding::DELTA_BINARY_PACKED => {
                let width = if self.physical == PhysicalType::INT64 {
                    64
                } else {
                    32
                };
                delta_integers(values, present, width)
            }
            Encoding::DELTA_LENGTH_BYTE_ARRAY if byte_arrays => {
                delta_length_byte_arrays(values, present, page.buffer().len()).map(|_| ())
            }
            Encoding::DELTA_BYTE_ARRAY
                if byte_arrays || self.physical == PhysicalType::FIXED_LEN_BYTE_ARRAY =>
            {
                delta_byte_arrays(values, present, page.buffer().len())
            }
            // the decoder refuses DELTA_LENGTH_BYTE_ARRAY of fixed-length
            // arrays unless it can read the lengths; walk them all the same
            _ => delta_integers(values, present, 32),
        }
    }
}

/// Refuses a dictionary page of `count` values that its bytes cannot hold:
/// the decoder sizes the dictionary from the count before reading it.
fn dictionary(physical: PhysicalType, type_length: i32, buf: &[u8], count: usize) -> Result<()> {
    let bits = match physical {
        PhysicalType::BYTE_ARRAY => return plain_byte_arrays(buf, count),
        PhysicalType::BOOLEAN => 1,
        PhysicalType::INT32 | PhysicalType::FLOAT => 32,
        PhysicalType::INT64 | PhysicalType::DOUBLE => 64,
        PhysicalType::INT96 => 96,
        PhysicalType::FIXED_LEN_BYTE_ARRAY => 8 * u64::from(type_length.max(0) as u32),
    };
    // values of no bytes (fixed-length arrays of length 0) take no room
    let fits = if bits == 0 {
        count <= most_values(buf.len())
    } else {
        count as u64 * bits <= buf.len() as u64 * 8
    };
    if fits {
        Ok(())
    } else {
        Err(ParquetError::General(format!(
            "a dictionary page declares {count} values but holds {} bytes",
            buf.len()
        )))
    }
}

/// The most values a delta-encoded byte array page of `bytes` bytes may
/// declare. The decoder allocates 4 bytes a declared value before reading
/// any; a value can take no bits at all (empty arrays, a miniblock of bit
/// width 0), so the count is not bounded by the page's bytes by itself. The
/// densest pages writers make hold about 230 values a byte (blocks of 2048
/// values in 8 miniblocks, all empty).
fn most_values(bytes: usize) -> usize {
    bytes.saturating_mul(256).max(1 << 16)
}

/// Checks a `DELTA_BINARY_PACKED` run of integers (`width` bits at most) of
/// a page holding `present` values: the decoder panics on a run that
/// declares none, and on a block whose size overflows (with overflow
/// checks).
fn delta_integers(data: &[u8], present: usize, width: u8) -> Result<()> {
    let Some(header) = DeltaHeader::read(data)? else {
        return Ok(());
    };
    if header.count == 0 && present > 0 {
        return Err(ParquetError::General(format!(
            "a DELTA_BINARY_PACKED page declares no values but holds {present}"
        )));
    }
    // the decoder reads no more values than the levels ask for
    let wanted = header.count.min(present);
    header.walk(data, wanted, width, None)?;
    Ok(())
}

/// Checks the lengths of a `DELTA_LENGTH_BYTE_ARRAY` page holding `present`
/// values, `page` bytes long: the decoder sizes its lengths from their
/// declared count, then slices each value out of the bytes after them
/// unchecked. Returns how many values the page declares.
fn delta_length_byte_arrays(data: &[u8], present: usize, page: usize) -> Result<usize> {
    let Some(header) = DeltaHeader::read(data)? else {
        return Ok(0);
    };
    let count = header.count;
    if count > present || count > most_values(page) {
        return Err(ParquetError::General(format!(
            "a DELTA_LENGTH_BYTE_ARRAY page declares {count} values but holds {}",
            present.min(most_values(page))
        )));
    }
    let mut total = 0u64;
    let mut each = |length: i32| {
        if length < 0 {
            return Err(ParquetError::General(format!(
                "a DELTA_LENGTH_BYTE_ARRAY page has a value of length {length}"
            )));
        }
        total += length as u64;
        Ok(())
    };
    let Some(end) = header.walk(data, count, 32, Some(&mut each))? else {
        return Ok(count);
    };
    // the decoder takes the lengths to end with their last block, even
    // where its last miniblock is cut short
    let Some(left) = data.len().checked_sub(end) else {
        return Err(ParquetError::General(format!(
            "a DELTA_LENGTH_BYTE_ARRAY page's lengths end at byte {end} of its {}",
            data.len()
        )));
    };
    if total > left as u64 {
        return Err(ParquetError::General(format!(
            "a DELTA_LENGTH_BYTE_ARRAY page's values take {total} bytes, but {left} follow \
             their lengths"
        )));
    }
    Ok(count)
}

/// Checks a `DELTA_BYTE_ARRAY` page holding `present` values, `page` bytes
/// long: its prefix lengths as [`delta_length_byte_arrays`] checks lengths
/// (the decoder sizes them from their count too, then slices the suffixes
/// out after them unchecked), and its suffixes as a `DELTA_LENGTH_BYTE_ARRAY`
/// run at least as long (the decoder panics on a value without a suffix).
fn delta_byte_arrays(data: &[u8], present: usize, page: usize) -> Result<()> {
    let Some(header) = DeltaHeader::read(data)? else {
        return Ok(());
    };
    let count = header.count;
    if count > present || count > most_values(page) {
        return Err(ParquetError::General(format!(
            "a DELTA_BYTE_ARRAY page declares {count} values but holds {}",
            present.min(most_values(page))
        )));
    }
    let Some(end) = header.walk(data, count, 32, None)? else {
        return Ok(());
    };
    let Some(suffixes) = data.get(end..) else {
        return Err(ParquetError::General(format!(
            "a DELTA_BYTE_ARRAY page's prefix lengths end at byte {end} of its {}",
            data.len()
        )));
    };
    let suffix_count = delta_length_byte_arrays(suffixes, present, page)?;
    if suffix_count < count && DeltaHeader::read(suffixes)?.is_some() {
        return Err(ParquetError::General(format!(
            "a DELTA_BYTE_ARRAY page has {count} prefixes but {suffix_count} suffixes"
        )));
    }
    Ok(())
}

/// The header of a `DELTA_BINARY_PACKED` run: `<block size in values>
/// <miniblocks per block> <total value count> <first value>`, unsigned
/// LEB128 varints but the first value (zigzag), then blocks of `<min delta
/// (zigzag)> <a bit width byte per miniblock> <the miniblocks>`, each
/// miniblock's deltas less the minimum bit-packed from the lowest bit
/// (Parquet format spec, `Encodings.md`).
struct DeltaHeader {
    /// Values per miniblock.
    per_miniblock: usize,
    miniblocks: usize,
    count: usize,
    first: i64,
    /// The header's length in bytes.
    len: usize,
}

impl DeltaHeader {
    /// The header at the start of `data`; `None` when the decoder refuses
    /// it itself (cut short, sizes not multiples of 128 and 32, a value
    /// over 63 bits).
    fn read(data: &[u8]) -> Result<Option<Self>> {
        let mut rest = data;
        let mut fields = [0u64; 4];
        for field in &mut fields {
            let Some((value, after)) = varint(rest)? else {
                return Ok(None);
            };
            *field = value;
            rest = after;
        }
        let [block, miniblocks, count, first] = fields;
        // the decoder reads each as an i64, the first three as usize
        let size = |v: u64| usize::try_from(v).ok().filter(|_| v <= i64::MAX as u64);
        let (Some(block), Some(miniblocks), Some(count)) =
            (size(block), size(miniblocks), size(count))
        else {
            return Ok(None);
        };
        if miniblocks == 0
            || block % 128 != 0
            || block % miniblocks != 0
            || (block / miniblocks) % 32 != 0
        {
            return Ok(None);
        }
        Ok(Some(Self {
            per_miniblock: block / miniblocks,
            miniblocks,
            count,
            first: ((first >> 1) as i64) ^ -((first & 1) as i64),
            len: data.len() - rest.len(),
        }))
    }

    /// Walks the first `wanted` values of the run in `data` as the decoder
    /// reads them, integers of `width` (32 or 64) bits; calls `each` with
    /// each value, decoded with wrapping arithmetic as the decoder does
    /// (32 bits only). Returns the offset the decoder takes
    /// the run to end at once it has read them (the end of their last
    /// block), or `None` when the decoder refuses the run itself.
    fn walk(
        &self,
        data: &[u8],
        wanted: usize,
        width: u8,
        mut each: Option<&mut dyn FnMut(i32) -> Result<()>>,
    ) -> Result<Option<usize>> {
        let mut at = self.len;
        if wanted == 0 {
            return Ok(Some(at));
        }
        // the decoder refuses a first value or minimum delta too wide
        let narrow = width == 32;
        if narrow && i32::try_from(self.first).is_err() {
            return Ok(None);
        }
        if let Some(each) = &mut each {
            each(self.first as i32)?;
        }
        let mut last = self.first as i32;
        let mut left = wanted - 1;
        let mut end = at;
        while left > 0 {
            let Some((min_delta, rest)) = varint(data.get(at..).unwrap_or_default())? else {
                return Ok(None);
            };
            at = data.len() - rest.len();
            let min_delta = ((min_delta >> 1) as i64) ^ -((min_delta & 1) as i64);
            if narrow && i32::try_from(min_delta).is_err() {
                return Ok(None);
            }
            let widths = &data[at.min(data.len())..(at + self.miniblocks).min(data.len())];
            at += self.miniblocks;
            // the decoder finds the block's end before reading it, from the
            // widths of the miniblocks that hold values (with overflow
            // checks, a panic when that overflows)
            let mut block_end = Some(at);
            let mut remaining = left;
            for &w in widths {
                if remaining == 0 {
                    break;
                }
                remaining = remaining.saturating_sub(self.per_miniblock);
                block_end = (usize::from(w).checked_mul(self.per_miniblock))
                    .and_then(|bits| block_end?.checked_add(bits / 8));
            }
            let Some(block_end) = block_end else {
                return Err(ParquetError::General(format!(
                    "a DELTA_BINARY_PACKED block of {} values a miniblock, bit widths \
                     {widths:?}, is too large to address",
                    self.per_miniblock
                )));
            };
            if widths.len() < self.miniblocks {
                return Ok(None);
            }
            for &w in widths {
                if left == 0 {
                    break;
                }
                if w > width {
                    return Ok(None);
                }
                let n = left.min(self.per_miniblock);
                let w = usize::from(w);
                let Some(packed) = data.get(at..at + (n * w).div_ceil(8)) else {
                    return Ok(None);
                };
                if let Some(each) = &mut each {
                    for i in 0..n {
                        let mut delta = 0u32;
                        for bit in 0..w {
                            let b = i * w + bit;
                            delta |= u32::from((packed[b / 8] >> (b % 8)) & 1) << bit;
                        }
                        last = last
                            .wrapping_add(min_delta as i32)
                            .wrapping_add(delta as i32);
                        each(last)?;
                    }
                }
                left -= n;
                at += w * self.per_miniblock / 8;
            }
            end = block_end;
            at = block_end;
        }
        Ok(Some(end))
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
/// cannot be counted); `None` when the levels cannot be taken apart. Level
/// runs whose headers the decoder would panic on are an error.
fn values(page: &Page, max_def: i16, max_rep: i16) -> Result<Option<(&[u8], usize)>> {
    let num_values = page.num_values() as usize;
    let width = |max: i16| (16 - max.leading_zeros()) as usize;
    // the levels of one kind, `None` when absent (`max` 0) or in the
    // deprecated BIT_PACKED encoding (no headers, not counted here)
    let (rep, def, values) = match page {
        Page::DataPage {
            buf,
            def_level_encoding,
            rep_level_encoding,
            ..
        } => {
            let mut at = 0;
            // RLE: a 4-byte length, then an RLE/bit-packed hybrid run
            let mut levels = |encoding: Encoding, max: i16| -> Option<Option<&[u8]>> {
                if max == 0 {
                    Some(None)
                } else if encoding == Encoding::RLE {
                    let len = u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?) as usize;
                    let section = buf.get(at + 4..(at + 4).checked_add(len)?)?;
                    at += 4 + len;
                    Some(Some(section))
                } else {
                    at = at.checked_add(num_values.checked_mul(width(max))?.div_ceil(8))?;
                    Some(None)
                }
            };
            let Some(rep) = levels(*rep_level_encoding, max_rep) else {
                return Ok(None);
            };
            let Some(def) = levels(*def_level_encoding, max_def) else {
                return Ok(None);
            };
            let Some(values) = buf.get(at..) else {
                return Ok(None);
            };
            (rep, def, values)
        }
        Page::DataPageV2 {
            buf,
            def_levels_byte_len,
            rep_levels_byte_len,
            ..
        } => {
            let rep_end = *rep_levels_byte_len as usize;
            let Some(def_end) = rep_end.checked_add(*def_levels_byte_len as usize) else {
                return Ok(None);
            };
            let (Some(rep), Some(def), Some(values)) = (
                buf.get(..rep_end),
                buf.get(rep_end..def_end),
                buf.get(def_end..),
            ) else {
                return Ok(None);
            };
            (
                (max_rep > 0).then_some(rep),
                (max_def > 0).then_some(def),
                values,
            )
        }
        _ => return Ok(None),
    };
    if let Some(rep) = rep {
        hybrid_headers(rep, width(max_rep), num_values)?;
    }
    let present = match def {
        Some(def) => count_level(def, width(max_def), max_def, num_values)?,
        None => num_values,
    };
    Ok(Some((values, present)))
}

/// How many of the first `n` levels of the RLE/bit-packed hybrid run
/// `data` (`width` bits each) are `level`, at most: levels past the end of
/// the data count as `level`. A run header longer than 10 bytes, on which
/// the decoder panics, is an error.
fn count_level(mut data: &[u8], width: usize, level: i16, n: usize) -> Result<usize> {
    let level = level as u64;
    let (mut seen, mut found) = (0usize, 0usize);
    while seen < n {
        let Some((header, rest)) = varint(data)? else {
            return Ok(found + (n - seen));
        };
        data = rest;
        let left = n - seen;
        if header & 1 == 0 {
            // a run of one value, stored in whole bytes
            let bytes = width.div_ceil(8);
            let Some(value) = data.get(..bytes) else {
                return Ok(found + left);
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
                return Ok(found + left);
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
    Ok(found)
}

/// Walks the run headers of the first `n` values of the RLE/bit-packed
/// hybrid run `data` (`width` bits each) as the decoder will: a header
/// longer than 10 bytes, on which it panics, is an error. Data that ends
/// early is the decoder's to report.
fn hybrid_headers(mut data: &[u8], width: usize, n: usize) -> Result<()> {
    let mut seen = 0usize;
    while seen < n {
        let Some((header, rest)) = varint(data)? else {
            return Ok(());
        };
        let run = usize::try_from(header >> 1).unwrap_or(usize::MAX);
        let (values, bytes) = if header & 1 == 0 {
            (run, width.div_ceil(8))
        } else {
            // groups of 8 values of `width` bits: `width` bytes a group
            (run.saturating_mul(8), run.saturating_mul(width))
        };
        let Some(rest) = rest.get(bytes..) else {
            return Ok(());
        };
        // a run of no values still moves on by its header
        seen = seen.saturating_add(values);
        data = rest;
    }
    Ok(())
}

/// An unsigned LEB128 varint as the parquet crate reads one, and the bytes
/// after it; `None` when the data ends first. The crate panics on one longer
/// than 10 bytes (an `assert!`; with overflow checks, a shift overflow).
fn varint(data: &[u8]) -> Result<Option<(u64, &[u8])>> {
    match uleb128(data) {
        Some(read) => Ok(Some(read)),
        None if data.len() > 10 => Err(ParquetError::General(format!(
            "a page holds a varint longer than 10 bytes: {:02x?}",
            &data[..11]
        ))),
        None => Ok(None),
    }
}

/// An unsigned LEB128 varint (up to 10 bytes, the bits past 64 dropped) and
/// the bytes after it.
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

    /// Where `header` starts in `file` (the bytes a test damages).
    fn find(file: &[u8], header: &[u8]) -> usize {
        file.windows(header.len())
            .position(|w| w == header)
            .unwrap_or_else(|| panic!("{header:x?} not in {file:x?}"))
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
        let at = find(&file, &header);
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
        let at = find(&file, &header);
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
        let count = |data: &[u8], n| count_level(data, 1, 1, n).unwrap();
        assert_eq!(count(&[0x06, 0x00], 3), 0);
        assert_eq!(count(&[0x06, 0x01], 3), 3);
        assert_eq!(count(&[0x03, 0b101], 8), 2);
        assert_eq!(count(&[0x03, 0b101], 2), 1);
        // cut short: every level not read may be one
        assert_eq!(count(&[0x03], 8), 8);
        assert_eq!(count(&[0x06, 0x00], 5), 2);
        assert_eq!(uleb128(&[0x80, 0x01, 7]), Some((128, &[7u8][..])));
        assert_eq!(uleb128(&[0x80]), None);
    }

    #[test]
    fn run_headers_longer_than_ten_bytes_are_errors() {
        // the decoder `assert!`s on them; ten bytes, or data that ends
        // inside a header, it reads (or reports) itself
        let long = [0xffu8; 11];
        let message = "Parquet error: a page holds a varint longer than 10 bytes";
        let e = count_level(&long, 1, 1, 8).unwrap_err().to_string();
        assert!(e.starts_with(message), "{e}");
        let e = hybrid_headers(&long, 3, 8).unwrap_err().to_string();
        assert!(e.starts_with(message), "{e}");
        assert!(hybrid_headers(&long[..10], 3, 8).is_ok());
        // the second header, after a bit-packed group of 8 three-bit values
        let mut runs = vec![0x03, 0, 0, 0];
        runs.extend(long);
        assert!(hybrid_headers(&runs, 3, 8).is_ok());
        assert!(hybrid_headers(&runs, 3, 9).is_err());
        // an RLE run of 5 (one byte of value), then the long header
        let mut runs = vec![0x0a, 7];
        runs.extend(long);
        assert!(hybrid_headers(&runs, 3, 5).is_ok());
        assert!(hybrid_headers(&runs, 3, 6).is_err());
    }

    #[test]
    fn a_page_whose_level_run_header_is_too_long_is_an_error() {
        // a dictionary-encoded page (whose values the checks do not walk)
        // of 100 values, every other one null, written by pyarrow: its
        // definition levels, one bit-packed run of 13 groups, begin with an
        // 11-byte header instead (the mode byte, then the file)
        let input =
            include_bytes!("../../../fuzz/regressions/parquet_documents/level-run-header-too-long");
        let e = read_all(input[1..].to_vec()).unwrap_err().to_string();
        assert!(e.contains("varint longer than 10 bytes"), "{e}");
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

    /// A file of one optional UTF-8 column `s`, `encoding`, dictionary off,
    /// one page holding `values` (`None` a null).
    fn byte_array_file(values: &[Option<&str>], encoding: Encoding) -> Vec<u8> {
        let schema = parse_message_type("message m { optional binary s (UTF8); }").unwrap();
        let props = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_encoding(encoding)
            .build();
        let mut out = Vec::new();
        let mut writer =
            SerializedFileWriter::new(&mut out, Arc::new(schema), Arc::new(props)).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        let present: Vec<ByteArray> = values.iter().flatten().map(|&v| v.into()).collect();
        let def: Vec<i16> = values.iter().map(|v| i16::from(v.is_some())).collect();
        column
            .typed::<ByteArrayType>()
            .write_batch(&present, Some(&def), None)
            .unwrap();
        column.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
        out
    }

    /// The column `s` of every row of `file`, read through the checks.
    fn read_strings(file: Vec<u8>) -> Result<Vec<Option<String>>> {
        use parquet::record::Field;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.parquet");
        std::fs::write(&path, file).unwrap();
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap())?;
        let group = CheckedRowGroup(reader.get_row_group(0)?);
        let mut out = Vec::new();
        for row in group.get_row_iter(None)? {
            match row?.get_column_iter().next().map(|(_, f)| f.clone()) {
                Some(Field::Str(s)) => out.push(Some(s)),
                Some(Field::Null) => out.push(None),
                other => panic!("{other:?}"),
            }
        }
        Ok(out)
    }

    /// An unsigned LEB128 varint.
    fn leb(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    /// The page's values as strings, for comparing with what was written.
    fn owned(values: &[Option<&str>]) -> Vec<Option<String>> {
        values.iter().map(|v| v.map(String::from)).collect()
    }

    #[test]
    fn delta_byte_array_pages_are_read() {
        let values = [
            Some("apple"),
            None,
            Some(""),
            Some("applesauce"),
            Some("wörld"),
            None,
        ];
        for encoding in [
            Encoding::DELTA_LENGTH_BYTE_ARRAY,
            Encoding::DELTA_BYTE_ARRAY,
        ] {
            let file = byte_array_file(&values, encoding);
            assert_eq!(read_strings(file).unwrap(), owned(&values), "{encoding}");
        }
        // more than one block of lengths
        let many: Vec<Option<&str>> = (0..700).map(|i| ["ab", "", "xyz"][i % 3].into()).collect();
        let file = byte_array_file(&many, Encoding::DELTA_LENGTH_BYTE_ARRAY);
        assert_eq!(read_strings(file).unwrap(), owned(&many));
        // only nulls
        let file = byte_array_file(&[None, None], Encoding::DELTA_LENGTH_BYTE_ARRAY);
        assert_eq!(read_strings(file).unwrap(), [None, None]);
    }

    /// The written file with its DELTA_LENGTH_BYTE_ARRAY lengths header for
    /// `ab`, `cde` (block 128, 4 miniblocks, 2 values, first 2) rewritten.
    fn damaged_lengths(count: u8, first: u8) -> Result<Vec<Option<String>>> {
        let file = byte_array_file(
            &[Some("ab"), Some("cde")],
            Encoding::DELTA_LENGTH_BYTE_ARRAY,
        );
        let header = [0x80, 0x01, 0x04, 0x02, 0x04];
        let at = find(&file, &header);
        let mut bad = file;
        bad[at + 3] = count;
        bad[at + 4] = first;
        read_strings(bad)
    }

    #[test]
    fn delta_length_pages_with_bad_lengths_are_errors() {
        assert_eq!(
            damaged_lengths(2, 4).unwrap(),
            [Some("ab".into()), Some("cde".into())]
        );
        let e = |r: Result<Vec<Option<String>>>| r.unwrap_err().to_string();
        assert_eq!(
            e(damaged_lengths(3, 4)),
            "Parquet error: a DELTA_LENGTH_BYTE_ARRAY page declares 3 values but holds 2"
        );
        // first length -1 (zigzag 1), then 0
        assert_eq!(
            e(damaged_lengths(2, 1)),
            "Parquet error: a DELTA_LENGTH_BYTE_ARRAY page has a value of length -1"
        );
        // first length 40, then 41
        assert_eq!(
            e(damaged_lengths(2, 80)),
            "Parquet error: a DELTA_LENGTH_BYTE_ARRAY page's values take 81 bytes, but 5 \
             follow their lengths"
        );
    }

    #[test]
    fn delta_lengths_past_the_page_are_errors() {
        // the fuzz inputs that found them: a mode byte, then the file
        let input =
            include_bytes!("../../../fuzz/regressions/parquet_documents/delta-length-past-end");
        assert_eq!(
            read_all(input[1..].to_vec()).unwrap_err().to_string(),
            "Parquet error: a DELTA_LENGTH_BYTE_ARRAY page's values take 112 bytes, but 16 \
             follow their lengths"
        );
        let input = include_bytes!(
            "../../../fuzz/regressions/parquet_documents/delta-length-offset-past-data"
        );
        let e = read_all(input[1..].to_vec()).unwrap_err().to_string();
        assert!(
            e.starts_with("Parquet error: a DELTA_LENGTH_BYTE_ARRAY page's lengths end at byte"),
            "{e}"
        );
    }

    /// A lengths header (block 128, 4 miniblocks) of `count` values from
    /// `first`, then one block of `min_delta` and `widths`.
    fn lengths(count: u64, first: i64, min_delta: i64, widths: [u8; 4]) -> Vec<u8> {
        let zigzag = |v: i64| ((v << 1) ^ (v >> 63)) as u64;
        let mut out = [leb(128), leb(4), leb(count), leb(zigzag(first))].concat();
        out.extend(leb(zigzag(min_delta)));
        out.extend(widths);
        out
    }

    #[test]
    fn delta_lengths_are_decoded_as_the_decoder_does() {
        // lengths 2, 3, 4: deltas 1 less the minimum 1, no bits
        let mut page = lengths(3, 2, 1, [0; 4]);
        let header = page.len();
        page.extend(b"abcdefghi");
        assert_eq!(delta_length_byte_arrays(&page, 3, 100).unwrap(), 3);
        assert_eq!(
            delta_length_byte_arrays(&page[..page.len() - 1], 3, 100)
                .unwrap_err()
                .to_string(),
            "Parquet error: a DELTA_LENGTH_BYTE_ARRAY page's values take 9 bytes, but 8 follow \
             their lengths"
        );
        // a miniblock of 8-bit deltas: 32 bytes, though the decoder reads
        // only the first; the values start after all 32
        let mut page = lengths(2, 0, 0, [8, 0, 0, 0]);
        page.push(3);
        let e = delta_length_byte_arrays(&page, 2, 100)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "Parquet error: a DELTA_LENGTH_BYTE_ARRAY page's lengths end at byte {} of its {}",
                header + 32,
                header + 1
            )
        );
        page.extend([0; 31]);
        page.extend(b"abc");
        assert_eq!(delta_length_byte_arrays(&page, 2, 100).unwrap(), 2);
        // no more values than the levels hold, nor than the page can
        assert!(delta_length_byte_arrays(&page, 1, 100).is_err());
        let e = delta_length_byte_arrays(&lengths(1 << 30, 0, 0, [0; 4]), usize::MAX, 10)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "Parquet error: a DELTA_LENGTH_BYTE_ARRAY page declares 1073741824 values but holds 65536"
        );
        // a header the decoder refuses itself is left to it
        assert_eq!(
            delta_length_byte_arrays(&[0x80, 0x01, 0x00], 1, 10).unwrap(),
            0
        );
    }

    #[test]
    fn delta_byte_arrays_need_a_suffix_for_each_prefix() {
        // prefixes 0, 1; suffixes "a", "b": "a", "ab"
        let mut page = lengths(2, 0, 1, [0; 4]);
        page.extend(lengths(2, 1, 0, [0; 4]));
        page.extend(b"ab");
        assert!(delta_byte_arrays(&page, 2, 100).is_ok());
        let mut short = lengths(2, 0, 1, [0; 4]);
        short.extend(lengths(1, 1, 0, [0; 4]));
        short.extend(b"ab");
        assert_eq!(
            delta_byte_arrays(&short, 2, 100).unwrap_err().to_string(),
            "Parquet error: a DELTA_BYTE_ARRAY page has 2 prefixes but 1 suffixes"
        );
        // prefix lengths whose block ends past the page
        let mut cut = lengths(2, 0, 0, [8, 0, 0, 0]);
        cut.push(0);
        assert!(delta_byte_arrays(&cut, 2, 100)
            .unwrap_err()
            .to_string()
            .contains("prefix lengths end at byte"));
    }

    #[test]
    fn delta_blocks_too_large_to_address_are_errors() {
        // 2^62 values a miniblock of 8 bits: the decoder's block end overflows
        let mut page = [leb(1 << 62), leb(1), leb(2), leb(0), leb(0)].concat();
        page.push(8);
        let e = delta_integers(&page, 2, 64).unwrap_err().to_string();
        assert!(e.contains("is too large to address"), "{e}");
    }

    #[test]
    fn overlong_varints_are_errors() {
        assert_eq!(varint(&[0x80; 10]).unwrap(), None);
        assert_eq!(varint(&[0x05, 1]).unwrap(), Some((5, &[1u8][..])));
        let e = varint(&[0x80; 11]).unwrap_err().to_string();
        assert!(e.contains("a varint longer than 10 bytes"), "{e}");
        let mut page = vec![0x80; 11];
        page.extend([0x01, 0x04, 0x02, 0x04]);
        assert!(delta_integers(&page, 2, 32).is_err());
    }

    #[test]
    fn dictionaries_must_hold_their_count() {
        let buf = [0u8; 16];
        assert!(dictionary(PhysicalType::INT64, 0, &buf, 2).is_ok());
        assert_eq!(
            dictionary(PhysicalType::INT64, 0, &buf, 3)
                .unwrap_err()
                .to_string(),
            "Parquet error: a dictionary page declares 3 values but holds 16 bytes"
        );
        assert!(dictionary(PhysicalType::BOOLEAN, 0, &buf, 128).is_ok());
        assert!(dictionary(PhysicalType::BOOLEAN, 0, &buf, 129).is_err());
        assert!(dictionary(PhysicalType::FIXED_LEN_BYTE_ARRAY, 4, &buf, 5).is_err());
        assert!(dictionary(PhysicalType::FIXED_LEN_BYTE_ARRAY, 0, &[], 1 << 16).is_ok());
        assert!(dictionary(PhysicalType::FIXED_LEN_BYTE_ARRAY, 0, &[], 1 << 31).is_err());
    }
}
