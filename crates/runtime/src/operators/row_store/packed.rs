//! Strings of a small alphabet packed at fewer bits a byte: a column whose
//! values use at most 32 distinct ASCII bytes keeps each byte as a 4- or
//! 5-bit code of its [`Alphabet`], and its rows' byte offsets as they were.
//! Random letters and digits, hex and base-32 ids, codes and tags do;
//! Nexmark's `extra` (~70 random lowercase letters a bid, kept by every
//! regular join over bids) takes 5/8 of its bytes.
//!
//! A column's alphabet is learnt from the first batch stored after its
//! dictionary turned off, and grown when a batch brings new bytes; a column
//! whose bytes outgrow 32 stops being packed for good. Values are unpacked
//! when rows are gathered, which for a join's stored side is the rare case
//! (a row arriving after the rows it matches).

use std::sync::Arc;

use arrow::array::{Array, StringArray};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};

/// The most distinct bytes an alphabet holds: codes of 5 bits.
const MAX_SYMBOLS: usize = 32;
/// The code of a byte outside the alphabet.
const NO_CODE: u8 = u8::MAX;

/// The bytes a column's values use, each with a code of `bits` bits.
pub(super) struct Alphabet {
    codes: [u8; 256],
    symbols: Vec<u8>,
    bits: u32,
}

/// Rows of a string column packed in an [`Alphabet`].
pub(super) struct Packed {
    alphabet: Arc<Alphabet>,
    /// Row `i` is the bytes `offsets[i]..offsets[i + 1]`, numbered in the
    /// unpacked column.
    offsets: Vec<u32>,
    /// Codes, `bits` each, from the lowest bit of each word up.
    words: Vec<u64>,
    nulls: Option<NullBuffer>,
}

/// What a column's values have shown of their alphabet.
#[derive(Default)]
pub(super) enum Packer {
    /// Not tried yet.
    #[default]
    Unknown,
    Learnt(Arc<Alphabet>),
    /// More than [`MAX_SYMBOLS`] bytes, or bytes beyond ASCII.
    Off,
}

impl Packer {
    /// Rows `rows` of `values` packed, learning bytes not met before;
    /// `None` once the column's bytes are too many.
    pub(super) fn pack(&mut self, values: &StringArray, rows: &[u32]) -> Option<Packed> {
        if let Packer::Learnt(alphabet) = self
            && let Some(packed) = pack(alphabet, values, rows)
        {
            return Some(packed);
        }
        let known = match &*self {
            Packer::Off => return None,
            Packer::Unknown => None,
            Packer::Learnt(alphabet) => Some(alphabet.as_ref()),
        };
        let learnt = Alphabet::learn(known, values, rows);
        match learnt {
            Some(alphabet) => {
                let alphabet = Arc::new(alphabet);
                let packed = pack(&alphabet, values, rows);
                *self = Packer::Learnt(alphabet);
                packed
            }
            None => {
                *self = Packer::Off;
                None
            }
        }
    }

    /// Packs nothing from now on.
    pub(super) fn turn_off(&mut self) {
        *self = Packer::Off;
    }

    /// The latest alphabet, to pack merged rows again.
    pub(super) fn alphabet(&self) -> Option<&Arc<Alphabet>> {
        match self {
            Packer::Learnt(alphabet) => Some(alphabet),
            Packer::Unknown | Packer::Off => None,
        }
    }

    pub(super) fn is_off(&self) -> bool {
        matches!(self, Packer::Off)
    }
}

impl std::fmt::Debug for Packer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Packer::Unknown => f.write_str("Unknown"),
            Packer::Learnt(alphabet) => write!(f, "Learnt({} bytes)", alphabet.symbols.len()),
            Packer::Off => f.write_str("Off"),
        }
    }
}

impl Alphabet {
    /// The bytes of `known` and of rows `rows` of `values`; `None` if they
    /// are more than [`MAX_SYMBOLS`] or not all ASCII.
    fn learn(known: Option<&Alphabet>, values: &StringArray, rows: &[u32]) -> Option<Self> {
        let mut seen = [false; 256];
        if let Some(known) = known {
            known
                .symbols
                .iter()
                .for_each(|b| seen[usize::from(*b)] = true);
        }
        for row in rows {
            let row = *row as usize;
            if values.is_valid(row) {
                values
                    .value(row)
                    .bytes()
                    .for_each(|b| seen[usize::from(b)] = true);
            }
        }
        let symbols: Vec<u8> = (0..=u8::MAX).filter(|b| seen[usize::from(*b)]).collect();
        if symbols.len() > MAX_SYMBOLS || symbols.iter().any(|b| !b.is_ascii()) {
            return None;
        }
        let mut codes = [NO_CODE; 256];
        for (code, symbol) in symbols.iter().enumerate() {
            codes[usize::from(*symbol)] = code as u8;
        }
        // At least one bit, so that an alphabet of one byte still counts.
        let bits = symbols.len().next_power_of_two().trailing_zeros().max(1);
        Some(Self {
            codes,
            symbols,
            bits,
        })
    }
}

/// Rows `rows` of `values` in `alphabet`; `None` if a byte is not in it.
pub(super) fn pack(alphabet: &Arc<Alphabet>, values: &StringArray, rows: &[u32]) -> Option<Packed> {
    let bits = alphabet.bits;
    let mut offsets = Vec::with_capacity(rows.len() + 1);
    offsets.push(0u32);
    let mut end = 0u32;
    let lengths = rows.iter().map(|r| {
        values
            .is_valid(*r as usize)
            .then(|| values.value_length(*r as usize))
    });
    let total: usize = lengths.flatten().map(|l| l as usize).sum();
    let mut stream = BitStream {
        words: Vec::with_capacity((total * bits as usize).div_ceil(64)),
        word: 0,
        filled: 0,
    };
    for row in rows {
        let row = *row as usize;
        if values.is_valid(row) {
            let value = values.value(row).as_bytes();
            let packed = match bits {
                5 => stream.pack::<5>(&alphabet.codes, value),
                4 => stream.pack::<4>(&alphabet.codes, value),
                _ => stream.pack_any(&alphabet.codes, value, bits),
            };
            if !packed {
                return None;
            }
            end = end.checked_add(u32::try_from(value.len()).ok()?)?;
        }
        offsets.push(end);
    }
    let mut words = stream.words;
    if stream.filled > 0 {
        words.push(stream.word);
    }
    let nulls = values
        .nulls()
        .map(|nulls| NullBuffer::from_iter(rows.iter().map(|r| nulls.is_valid(*r as usize))));
    Some(Packed {
        alphabet: Arc::clone(alphabet),
        offsets,
        words,
        nulls,
    })
}

/// The codes of `piece`'s bytes (at most a word's worth), `bits` each,
/// and the bits of all of them OR-ed (NO_CODE's top bit if one is missing).
#[inline(always)]
fn word_of(codes: &[u8; 256], piece: &[u8], bits: u32) -> (u64, u8) {
    let (mut word, mut missing) = (0u64, 0u8);
    for (i, byte) in piece.iter().enumerate() {
        let code = codes[usize::from(*byte)];
        missing |= code;
        word |= u64::from(code) << (i as u32 * bits);
    }
    (word, missing)
}

/// Codes written from the lowest bit of each word up.
struct BitStream {
    words: Vec<u64>,
    /// The word being filled, and its bits filled.
    word: u64,
    filled: u32,
}

impl BitStream {
    /// Appends the codes of `value`'s bytes, `BITS` each; false if a byte
    /// has none. A word's worth of codes is looked up, then appended at
    /// once; with `BITS` known, the lookups of a word unroll.
    fn pack<const BITS: u32>(&mut self, codes: &[u8; 256], value: &[u8]) -> bool {
        let per_word = (64 / BITS) as usize;
        let mut pieces = value.chunks_exact(per_word);
        let mut missing = 0u8;
        for piece in &mut pieces {
            let (word, piece_missing) = word_of(codes, piece, BITS);
            missing |= piece_missing;
            self.append(word, per_word as u32 * BITS);
        }
        // Codes are below 32; only NO_CODE has the top bit.
        missing & 0x80 == 0 && self.pack_any(codes, pieces.remainder(), BITS)
    }

    /// [`BitStream::pack`] for any code width.
    fn pack_any(&mut self, codes: &[u8; 256], value: &[u8], bits: u32) -> bool {
        for piece in value.chunks((64 / bits) as usize) {
            let (word, missing) = word_of(codes, piece, bits);
            if missing & 0x80 != 0 {
                return false;
            }
            self.append(word, piece.len() as u32 * bits);
        }
        true
    }

    /// Appends the low `n` bits of `codes` (1 to 64; the rest are 0).
    fn append(&mut self, codes: u64, n: u32) {
        self.word |= codes << self.filled;
        let total = self.filled + n;
        if total < 64 {
            self.filled = total;
            return;
        }
        self.words.push(self.word);
        // The bits of `codes` that did not fit start the next word.
        let spill = total - 64;
        self.word = if spill == 0 { 0 } else { codes >> (n - spill) };
        self.filled = spill;
    }
}

impl Packed {
    pub(super) fn is_valid(&self, row: usize) -> bool {
        self.nulls.as_ref().is_none_or(|n| n.is_valid(row))
    }

    /// Row `row`'s value, appended to `out` (empty for NULL).
    pub(super) fn value_into(&self, row: usize, out: &mut String) {
        let (Some(start), Some(end)) = (self.offsets.get(row), self.offsets.get(row + 1)) else {
            return;
        };
        let bits = self.alphabet.bits as usize;
        let mask = (1u64 << bits) - 1;
        for at in *start as usize..*end as usize {
            let bit = at * bits;
            let (word, shift) = (bit / 64, bit % 64);
            let mut code = self.words.get(word).map_or(0, |w| w >> shift);
            if shift + bits > 64 {
                code |= self.words.get(word + 1).map_or(0, |w| w << (64 - shift));
            }
            if let Some(symbol) = self.alphabet.symbols.get((code & mask) as usize) {
                out.push(char::from(*symbol));
            }
        }
    }

    /// Every row, unpacked in one pass over the codes.
    pub(super) fn unpack(&self) -> Option<StringArray> {
        let total = self.offsets.last().map_or(0, |end| *end as usize);
        let bits = self.alphabet.bits;
        let mask = (1u64 << bits) - 1;
        let mut bytes = Vec::with_capacity(total);
        let (mut buffer, mut held) = (0u128, 0u32);
        let mut words = self.words.iter();
        while bytes.len() < total {
            if held < bits {
                buffer |= u128::from(*words.next()?) << held;
                held += 64;
            }
            let code = (buffer as u64 & mask) as usize;
            bytes.push(*self.alphabet.symbols.get(code)?);
            buffer >>= bits;
            held -= bits;
        }
        let offsets = self
            .offsets
            .iter()
            .map(|o| i32::try_from(*o).ok())
            .collect::<Option<Vec<i32>>>()?;
        StringArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from_vec(bytes),
            self.nulls.clone(),
        )
        .ok()
    }

    /// Bytes of `self`'s values unpacked, to size a builder.
    pub(super) fn value_length(&self, row: usize) -> usize {
        match (self.offsets.get(row), self.offsets.get(row + 1)) {
            (Some(start), Some(end)) => (end - start) as usize,
            _ => 0,
        }
    }
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("rows", &(self.offsets.len() - 1))
            .field("bits", &self.alphabet.bits)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpack(packed: &Packed, rows: usize) -> Vec<Option<String>> {
        (0..rows)
            .map(|r| {
                let mut value = String::new();
                packed.value_into(r, &mut value);
                packed.is_valid(r).then_some(value)
            })
            .collect()
    }

    #[test]
    fn values_of_every_alphabet_size_unpack_as_they_were() {
        for symbols in [1usize, 2, 3, 15, 16, 17, 31, 32] {
            let alphabet: Vec<char> = ('!'..='~').take(symbols).collect();
            // Lengths 0 to 70, NULL every 11th row; codes cross word ends.
            let values: Vec<Option<String>> = (0..400usize)
                .map(|r| {
                    let text = (0..r % 71)
                        .map(|i| alphabet[(r * 7 + i * 13) % symbols])
                        .collect();
                    (r % 11 != 5).then_some(text)
                })
                .collect();
            let array = StringArray::from(values.clone());
            let rows: Vec<u32> = (0..400).rev().step_by(3).collect();
            let mut packer = Packer::default();
            let packed = packer.pack(&array, &rows).expect("a small alphabet");
            let expected: Vec<Option<String>> =
                rows.iter().map(|r| values[*r as usize].clone()).collect();
            assert_eq!(unpack(&packed, rows.len()), expected, "{symbols} symbols");
            let whole = packed.unpack().expect("unpacked");
            assert_eq!(
                whole,
                StringArray::from(expected),
                "{symbols} symbols, in one pass"
            );
            let bits = symbols.next_power_of_two().trailing_zeros().max(1);
            assert_eq!(packed.alphabet.bits, bits);
        }
    }

    #[test]
    fn an_alphabet_grows_with_new_bytes_and_turns_off_past_32() {
        let mut packer = Packer::default();
        let letters = StringArray::from_iter_values(["abc", "cab", ""]);
        let first = packer.pack(&letters, &[0, 1, 2]).expect("packed");
        // A new byte: the alphabet grows, and what was packed stays readable.
        let more = StringArray::from_iter_values(["abz"]);
        let second = packer.pack(&more, &[0]).expect("packed");
        assert_eq!(
            unpack(&first, 3),
            vec![Some("abc".into()), Some("cab".into()), Some(String::new())]
        );
        assert_eq!(unpack(&second, 1), vec![Some("abz".into())]);
        // Outside ASCII, or beyond 32 bytes: off for good.
        let wide = StringArray::from_iter_values(["ü"]);
        assert!(packer.pack(&wide, &[0]).is_none());
        assert!(packer.is_off());
        assert!(packer.pack(&letters, &[0]).is_none());
        let mut packer = Packer::default();
        let many: String = ('!'..='~').take(33).collect();
        assert!(
            packer
                .pack(&StringArray::from_iter_values([many]), &[0])
                .is_none()
        );
        assert!(packer.is_off());
    }
}
