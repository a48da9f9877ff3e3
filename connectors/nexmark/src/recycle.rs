//! Column buffers that return to their reader when a batch is dropped.
//!
//! A reader makes one batch after another of the same shape: about a
//! megabyte of values and text per 8,192 bids, in a dozen buffers. Freed
//! to the allocator after each batch, glibc returns the top of its heap to
//! the system whenever the batch's buffers together outgrow its trim
//! threshold, and the next batch page-faults all of it back in: 343 faults
//! per batch, up to 40% of the generator's time. Here a batch's buffers are
//! Arrow buffers whose owner hands its vector back to the reader's pool
//! when the last array using it is dropped, wherever that happens, and the
//! next batch fills it again.

use std::sync::{Arc, Mutex, Weak};

use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::datatypes::{ArrowNativeType, ToByteSlice};

/// Vectors kept for reuse per pool. A reader's batches in flight hold the
/// rest; past this many, a returned vector is freed.
const MOST_KEPT: usize = 8;

/// Spare vectors of one element type.
#[derive(Debug)]
pub(crate) struct Pool<T> {
    spare: Mutex<Vec<Vec<T>>>,
}

impl<T: ArrowNativeType> Pool<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            spare: Mutex::new(Vec::new()),
        })
    }

    /// An empty vector with room for `capacity` values, reused if one is
    /// spare: the smallest that fits, else the largest. Columns of one
    /// batch differ in size (a channel name is a tenth of a URL), and
    /// taking any spare would grow every vector to the largest column's.
    pub fn take(&self, capacity: usize) -> Vec<T> {
        match self.spare(capacity) {
            Some(mut values) => {
                values.clear();
                values.reserve(capacity);
                values
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// A vector of at least `len` values, for text written at a cursor
    /// (`TextCursor`): a spare one keeps the values an earlier batch left.
    /// A new one is zeroed by the allocator, whose pages are not touched
    /// until written: a union table's ROW fields, filled on a fiftieth of
    /// the rows, or a paced batch of a few rows, take memory only for the
    /// text they hold.
    pub fn take_room(&self, len: usize) -> Vec<T> {
        match self.spare(len) {
            Some(values) if values.len() >= len => values,
            _ => vec![T::default(); len],
        }
    }

    fn spare(&self, capacity: usize) -> Option<Vec<T>> {
        // A poisoned lock only means no reuse.
        self.spare.lock().ok().and_then(|mut spare| {
            // Those that fit first, the smallest of them first; then the largest.
            let best = (0..spare.len()).min_by_key(|&i| {
                let size = spare[i].capacity();
                let short = size < capacity;
                (short, if short { usize::MAX - size } else { size })
            })?;
            Some(spare.swap_remove(best))
        })
    }

    fn give_back(&self, values: Vec<T>) {
        if let Ok(mut spare) = self.spare.lock()
            && spare.len() < MOST_KEPT
        {
            spare.push(values);
        }
    }

    /// `values` as an Arrow buffer that comes back to this pool when dropped.
    pub fn buffer(self: &Arc<Self>, values: Vec<T>) -> Buffer {
        let owner = Lent {
            values,
            pool: Arc::downgrade(self),
        };
        Buffer::from(bytes::Bytes::from_owner(owner))
    }

    pub fn scalars(self: &Arc<Self>, values: Vec<T>) -> ScalarBuffer<T> {
        let len = values.len();
        ScalarBuffer::new(self.buffer(values), 0, len)
    }
}

/// A vector lent to an Arrow buffer.
struct Lent<T: ArrowNativeType> {
    values: Vec<T>,
    /// Weak, so that batches outliving their reader free their vectors.
    pool: Weak<Pool<T>>,
}

impl<T: ArrowNativeType> AsRef<[u8]> for Lent<T> {
    fn as_ref(&self) -> &[u8] {
        self.values.to_byte_slice()
    }
}

impl<T: ArrowNativeType> Drop for Lent<T> {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give_back(std::mem::take(&mut self.values));
        }
    }
}

/// The pools of one reader: string bytes, string offsets, and 64-bit
/// values (BIGINT and TIMESTAMP).
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    pub bytes: Arc<Pool<u8>>,
    pub offsets: Arc<Pool<i32>>,
    pub numbers: Arc<Pool<i64>>,
}

impl Pools {
    pub fn new() -> Self {
        Self {
            bytes: Pool::new(),
            offsets: Pool::new(),
            numbers: Pool::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::buffer::OffsetBuffer;

    #[test]
    fn a_dropped_array_gives_its_vector_back_for_the_next_batch() {
        let pool = Pool::<i64>::new();
        let mut values = pool.take(1000);
        values.extend(0..1000);
        let address = values.as_ptr();
        let array = Int64Array::new(pool.scalars(values), None);
        assert_eq!(array.value(999), 999);
        let sliced = array.slice(10, 5);
        drop(array);
        // Still lent while any array uses it.
        let other = pool.take(1000);
        assert_ne!(other.as_ptr(), address);
        assert_eq!(sliced.value(0), 10);
        drop(sliced);
        let again = pool.take(1000);
        assert_eq!(again.as_ptr(), address);
        assert!(again.is_empty() && again.capacity() >= 1000);
    }

    #[test]
    fn the_smallest_spare_that_fits_is_taken() {
        let pool = Pool::<u8>::new();
        for capacity in [100, 1000, 10] {
            drop(pool.buffer(Vec::with_capacity(capacity)));
        }
        assert!((100..1000).contains(&pool.take(50).capacity()));
        assert!(pool.take(500).capacity() >= 1000);
        // None fits: the largest left grows.
        assert!(pool.take(5000).capacity() >= 5000);
        assert_eq!(pool.take(1).capacity(), 1);
    }

    #[test]
    fn strings_from_lent_buffers_read_back() {
        let pools = Pools::new();
        let mut bytes = pools.bytes.take(16);
        bytes.extend_from_slice(b"Googlechannel-7");
        let mut offsets = pools.offsets.take(3);
        offsets.extend([0, 6, 15]);
        let array = StringArray::try_new(
            OffsetBuffer::new(pools.offsets.scalars(offsets)),
            pools.bytes.buffer(bytes),
            None,
        )
        .expect("valid strings");
        assert_eq!(array.value(1), "channel-7");
        assert_eq!(array.len(), 2);
    }

    #[test]
    fn vectors_outliving_their_pool_are_freed() {
        let pool = Pool::<u8>::new();
        let buffer = pool.buffer(vec![1, 2, 3]);
        drop(pool);
        assert_eq!(buffer.as_slice(), &[1, 2, 3]);
    }
}
