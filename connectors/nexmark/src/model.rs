//! The Nexmark event model: which event an id is, and its fields.
//!
//! The rules are the Nexmark generator's (as in Beam and nexmark-flink):
//! events come in epochs of `person + auction + bid` proportion (1:3:46 by
//! default); person and auction ids count up with their events; a bid goes
//! to a hot auction (the first of the latest hundred) with probability
//! `1 - 1/bid.hot-ratio.auctions`, otherwise to one of the auctions still
//! in flight; bidders and sellers are hot or drawn from the active people
//! the same way; prices are log-uniform between 1 and 10^6 dollars (in
//! cents); event time advances by `1/first-event.rate` seconds per event.
//!
//! Unlike nexmark-flink, whose per-event random generator is unseeded, every
//! draw is a function of `(seed, event id)`: the stream is the same at any
//! parallelism and in every run, and the three tables (person, auction,
//! bid) agree because each computes only its own events of one shared
//! sequence. A person or an auction draws its fields in turn from a
//! generator seeded by its event. A bid, 92% of the stream, draws each
//! field from a hash of its own key and the event id ([`BidKeys`]): every
//! field is a function of the event alone, so a batch's columns are made
//! one at a time, and only those a query reads.

use std::ops::Range;

/// Person and auction ids start here, so small runs still join.
pub(crate) const FIRST_PERSON_ID: i64 = 1000;
pub(crate) const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: u64 = 5;

/// How many people are likely to bid or sell at any time.
const NUM_ACTIVE_PEOPLE: u64 = 1000;
/// How many auctions are likely to be open at any time.
const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
/// Ids a little ahead of the latest person or auction may be chosen, so
/// that a bid can come before the auction it is for, as in real streams.
const ID_LEAD: u64 = 10;
/// Hot auctions, bidders and sellers are the first (bidders: second) of
/// each batch of this many.
const HOT_BATCH: u64 = 100;

const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const CHANNELS: u64 = 10_000;

const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];

/// The bytes of a bid's four numbers, which its `extra` pads to the
/// average bid size.
const BID_NUMBER_BYTES: u64 = 32;
/// Random strings are at least this long, as in Nexmark.
const MIN_STRING_LENGTH: u64 = 3;
/// `extra` pieces up to this long are copied as one block of this size.
const LETTER_BLOCK: usize = 96;
/// Bytes of pre-drawn text that strings are cut from.
const MIN_POOL_BYTES: usize = 1 << 16;

/// The kind of an event; `event_type` 0, 1 and 2 in nexmark-flink's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Person,
    Auction,
    Bid,
}

impl EventKind {
    pub const ALL: [EventKind; 3] = [EventKind::Person, EventKind::Auction, EventKind::Bid];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Person => "person",
            EventKind::Auction => "auction",
            EventKind::Bid => "bid",
        }
    }

    pub fn event_type(self) -> i32 {
        match self {
            EventKind::Person => 0,
            EventKind::Auction => 1,
            EventKind::Bid => 2,
        }
    }
}

/// What shapes the generated stream; the connector's options.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelConfig {
    pub person_proportion: u64,
    pub auction_proportion: u64,
    pub bid_proportion: u64,
    pub hot_auction_ratio: u64,
    pub hot_bidders_ratio: u64,
    pub hot_sellers_ratio: u64,
    pub avg_person_bytes: u64,
    pub avg_auction_bytes: u64,
    pub avg_bid_bytes: u64,
    /// Events per second of event time.
    pub events_per_second: u64,
    /// The event time of event 0, in milliseconds since the epoch.
    pub base_time_millis: i64,
    pub seed: u64,
}

impl ModelConfig {
    pub fn total_proportion(&self) -> u64 {
        self.person_proportion + self.auction_proportion + self.bid_proportion
    }

    /// The range of offsets within an epoch that events of `kind` take.
    pub fn offsets(&self, kind: EventKind) -> std::ops::Range<u64> {
        let persons = self.person_proportion;
        let auctions = persons + self.auction_proportion;
        match kind {
            EventKind::Person => 0..persons,
            EventKind::Auction => persons..auctions,
            EventKind::Bid => auctions..self.total_proportion(),
        }
    }

    pub fn kind_of(&self, event_id: u64) -> EventKind {
        let offset = event_id % self.total_proportion();
        if offset < self.person_proportion {
            EventKind::Person
        } else if offset < self.person_proportion + self.auction_proportion {
            EventKind::Auction
        } else {
            EventKind::Bid
        }
    }

    /// The event time of an event, in milliseconds.
    pub fn timestamp(&self, event_id: u64) -> i64 {
        // 128-bit division is slow; it is needed only past 1.8e16 events.
        let millis = match event_id.checked_mul(1000) {
            Some(scaled) => u128::from(scaled / self.events_per_second),
            None => u128::from(event_id) * 1000 / u128::from(self.events_per_second),
        };
        self.base_time_millis
            .saturating_add(i64::try_from(millis).unwrap_or(i64::MAX))
    }

    /// The event times of events `first`, `first + 1`, ...
    pub fn clock(&self, first: u64) -> Clock {
        let rate = self.events_per_second;
        Clock {
            millis: self.timestamp(first),
            remainder: (u128::from(first) * 1000 % u128::from(rate)) as u64,
            rate,
            step: (1000 / rate) as i64,
            step_remainder: 1000 % rate,
        }
    }

    /// An event's id, position and time, worked out from scratch.
    pub fn at(&self, event_id: u64) -> EventAt {
        EventAt {
            id: event_id,
            at: self.position(event_id),
            millis: self.timestamp(event_id),
        }
    }

    /// Where an event falls in the epochs, computed once per event.
    pub fn position(&self, event_id: u64) -> Position {
        let total = self.total_proportion();
        Position {
            epoch: event_id / total,
            offset: event_id % total,
        }
    }

    /// The latest person id (base 0) as of an event: its own id when the
    /// event is a person.
    fn last_person(&self, at: Position) -> u64 {
        at.epoch * self.person_proportion + at.offset.min(self.person_proportion - 1)
    }

    /// The latest auction id (base 0) as of an event: its own id when the
    /// event is an auction.
    fn last_auction(&self, at: Position) -> u64 {
        let Position {
            mut epoch,
            mut offset,
        } = at;
        if offset < self.person_proportion {
            // Before this epoch's auctions: the last one of the epoch before.
            if epoch == 0 {
                return 0;
            }
            epoch -= 1;
            offset = self.auction_proportion - 1;
        } else if offset >= self.person_proportion + self.auction_proportion {
            offset = self.auction_proportion - 1;
        } else {
            offset -= self.person_proportion;
        }
        epoch * self.auction_proportion + offset
    }

    /// The people likely to bid or sell, the active ones and a few ahead
    /// of the latest: the first and how many.
    #[inline]
    fn people_choice(&self, at: Position) -> (u64, u64) {
        let people = self.last_person(at) + 1;
        let active = people.min(NUM_ACTIVE_PEOPLE);
        (people - active, active + ID_LEAD)
    }

    /// The auctions likely in flight, and a few ahead of the latest: the
    /// first and how many.
    #[inline]
    fn auction_choice(&self, at: Position) -> (u64, u64) {
        let last = self.last_auction(at);
        let first = last.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
        (first, last - first + 1 + ID_LEAD)
    }
}

/// The event times of consecutive events, stepped rather than divided out.
#[derive(Debug)]
pub(crate) struct Clock {
    millis: i64,
    /// `id * 1000 % rate` of the next event.
    remainder: u64,
    rate: u64,
    /// Each event's time is `1000 / rate` ms after the last one's...
    step: i64,
    /// ... and `1000 % rate` more in units of `1 / rate` ms.
    step_remainder: u64,
}

impl Iterator for Clock {
    type Item = i64;

    #[inline]
    fn next(&mut self) -> Option<i64> {
        let millis = self.millis;
        self.remainder += self.step_remainder;
        let carry = self.remainder >= self.rate;
        if carry {
            self.remainder -= self.rate;
        }
        self.millis = millis.saturating_add(self.step + i64::from(carry));
        Some(millis)
    }

    /// Endless, so that `take(n)` knows its length.
    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

/// What a bid's auction and bidder are chosen from; the same for all bids
/// of an epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BidChoices {
    auction: HotOrOther,
    bidder: HotOrOther,
}

/// An id chosen as Nexmark chooses a bid's auction or bidder: the hot one,
/// unless a draw below `hot_ratio` is 0; then one of the `count` from
/// `first`.
#[derive(Debug, Clone, Copy)]
struct HotOrOther {
    hot: u64,
    hot_ratio: u64,
    first: u64,
    count: u64,
}

impl HotOrOther {
    #[inline]
    fn pick(&self, key: Key, event_id: u64) -> u64 {
        let (hot, other) = key.two_below(event_id, self.hot_ratio, self.count);
        select(hot > 0, self.hot, self.first + other)
    }
}

/// `if pick { a } else { b }` as arithmetic, which the compiler keeps free
/// of branches where it turns an `if` into one.
#[inline(always)]
fn select(pick: bool, a: u64, b: u64) -> u64 {
    let mask = u64::from(pick).wrapping_neg();
    (a & mask) | (b & !mask)
}

/// An event's epoch and its offset within the epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position {
    epoch: u64,
    offset: u64,
}

/// An event's id with its position in the epochs and its event time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventAt {
    pub id: u64,
    at: Position,
    millis: i64,
}

/// Works out [`EventAt`] for ascending event ids by stepping from the last
/// one, without the two 64-bit divisions per event that `ModelConfig::at`
/// takes (a quarter of a bid's cost): a batch's ids are close together.
#[derive(Debug, Default)]
pub(crate) struct Sequencer {
    last: Option<EventAt>,
    /// `last.id * 1000 % events_per_second`: event time's remainder.
    remainder: u64,
}

impl Sequencer {
    pub fn next(&mut self, config: &ModelConfig, id: u64) -> EventAt {
        let total = config.total_proportion();
        let rate = config.events_per_second;
        let stepped = self.last.and_then(|last| {
            let delta = id.checked_sub(last.id).filter(|d| *d < total)?;
            // Past 1.8e16 events, `timestamp` works in 128 bits; so does this.
            id.checked_mul(1000)?;
            let mut at = last.at;
            at.offset += delta;
            if at.offset >= total {
                at.offset -= total;
                at.epoch += 1;
            }
            let mut millis = last.millis;
            let mut remainder = self.remainder + delta * 1000;
            if remainder >= rate {
                // Event time moved on by a millisecond or more.
                millis = millis.saturating_add((remainder / rate) as i64);
                remainder %= rate;
            }
            Some((EventAt { id, at, millis }, remainder))
        });
        let (event, remainder) = stepped.unwrap_or_else(|| {
            let remainder = id.checked_mul(1000).map_or(0, |scaled| scaled % rate);
            (config.at(id), remainder)
        });
        self.last = Some(event);
        self.remainder = remainder;
        event
    }
}

/// A small counter-based generator: every event gets its own, seeded from
/// the table's seed and the event id, so events can be made in any order
/// and on any subtask with the same result.
pub(crate) struct EventRng(u64);

impl EventRng {
    pub fn new(seed: u64, event_id: u64) -> Self {
        Self(splitmix(
            seed ^ event_id.wrapping_mul(0xD1B5_4A32_D192_ED03),
        ))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }

    /// Uniform in `0..n` (`n` > 0), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        below(self.next_u64(), n)
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in `0..n` from 64 random bits, by multiply-shift.
#[inline]
fn below(bits: u64, n: u64) -> u64 {
    ((u128::from(bits) * u128::from(n)) >> 64) as u64
}

/// One kind of draw of a bid, as a random function of the event id:
/// wyrand's output for the counter `key + id * step`, which is one
/// 128-bit multiply, against a dozen dependent operations per draw of
/// [`EventRng`].
#[derive(Debug, Clone, Copy)]
struct Key(u64);

impl Key {
    const STEP: u64 = 0xA076_1D64_78BD_642F;

    fn new(seed: u64, draw: u64) -> Self {
        Self(splitmix(seed ^ splitmix(draw)))
    }

    #[inline]
    fn bits(self, event_id: u64) -> u64 {
        let s = self.0.wrapping_add(event_id.wrapping_mul(Self::STEP));
        let t = u128::from(s) * u128::from(s ^ 0xE703_7ED1_A0B4_28DB);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Two draws, uniform in `0..n` and `0..m` (both > 0), from one
    /// output: multiply-shift reads mostly the top bits of its input, so
    /// the first draw is from the output's upper half and the second from
    /// its lower half, turned to the top.
    #[inline]
    fn two_below(self, event_id: u64, n: u64, m: u64) -> (u64, u64) {
        let bits = self.bits(event_id);
        (below(bits, n), below(bits.rotate_left(32), m))
    }
}

/// The keys of a bid's draws: whether the auction is a hot one and which
/// one otherwise; the same for the bidder and the channel; the price. (The
/// `extra` padding's is in [`ExtraDraw`].)
#[derive(Debug)]
pub(crate) struct BidKeys {
    auction: Key,
    bidder: Key,
    price: Key,
    channel: Key,
}

impl BidKeys {
    fn new(seed: u64) -> Self {
        let key = |draw| Key::new(seed, draw);
        Self {
            auction: key(1),
            bidder: key(2),
            price: key(3),
            channel: key(4),
        }
    }
}

/// Steps of the price table, a power of two.
const PRICE_STEP_BITS: u32 = 10;
const PRICE_STEPS: usize = 1 << PRICE_STEP_BITS;
/// The exponent each step of the price table covers.
const PRICE_STEP: f64 = 6.0 * std::f64::consts::LN_10 / PRICE_STEPS as f64;

/// Draws log-uniform prices in cents between 1 and 10^6 dollars: 10^(6u)
/// for a uniform u, as e^x with x below 6 ln 10. libm's `exp` took a tenth
/// of a bid's time; here x splits into a table step and a remainder d below
/// one step (0.0135), whose e^d a five-term Taylor series gives to within
/// 4e-12 of itself, far below a cent at 10^8 cents.
#[derive(Debug)]
struct PriceTable {
    /// `e^(k * PRICE_STEP)` in cents, for k in 0..=PRICE_STEPS.
    steps: Box<[f64]>,
}

impl PriceTable {
    fn new() -> Self {
        let steps = (0..=PRICE_STEPS)
            .map(|k| (k as f64 * PRICE_STEP).exp() * 100.0)
            .collect();
        Self { steps }
    }

    fn draw(&self, rng: &mut EventRng) -> i64 {
        price(&self.steps, rng.next_u64())
    }
}

/// The price of 64 random bits, from the steps of a [`PriceTable`].
#[inline]
fn price(steps: &[f64], bits: u64) -> i64 {
    // A unit draw's 53 bits times PRICE_STEPS: the top bits are the
    // step and the rest the fraction of a step, taken apart as integers
    // rather than through conversions between floats and integers.
    let step = (bits >> (64 - PRICE_STEP_BITS)) as usize;
    let fraction_bits = 53 - PRICE_STEP_BITS;
    let fraction = ((bits >> 11) & ((1 << fraction_bits) - 1)) as i64 as f64;
    let d = fraction * (PRICE_STEP / (1u64 << fraction_bits) as f64);
    let e_d = 1.0 + d * (1.0 + d * (0.5 + d * (1.0 / 6.0 + d * (1.0 / 24.0))));
    let base = steps.get(step).copied().unwrap_or(1e8);
    // Rounded to the nearest integer by adding 2^52, which leaves no
    // bits for a fraction, and read from the bits: no call into libm's
    // `round`, nor the checks of a saturating `as` (prices are far
    // below 2^52).
    const ROUNDER: f64 = (1u64 << 52) as f64;
    ((base * e_d + ROUNDER).to_bits() - ROUNDER.to_bits()) as i64
}

/// Text drawn once per table, which random strings are cut from: cheaper
/// than drawing every character, with the same character distribution.
#[derive(Debug)]
pub(crate) struct TextPool {
    /// Lowercase letters, for `extra` padding. Bytes rather than a `str`,
    /// so that cutting a piece does not read the pool to check for
    /// character boundaries (those reads missed the cache on most bids).
    /// Pieces start in the first `letter_count`; `LETTER_BLOCK` more
    /// follow, so that a short piece is copied as one whole block.
    letters: Vec<u8>,
    letter_count: usize,
    /// Lowercase letters with one in 13 a space, for names and descriptions.
    spaced: String,
    channels: Channels,
}

impl TextPool {
    /// `longest` is the longest string that will be cut from the pool.
    pub fn new(seed: u64, longest: usize) -> Self {
        let size = MIN_POOL_BYTES.max(longest.saturating_mul(4));
        let mut rng = EventRng::new(seed, u64::MAX);
        let mut letters: Vec<u8> = (0..size).map(|_| letter(&mut rng)).collect();
        letters.extend_from_within(..LETTER_BLOCK.min(size));
        let spaced = (0..size)
            .map(|_| {
                if rng.below(13) == 0 {
                    ' '
                } else {
                    char::from(letter(&mut rng))
                }
            })
            .collect();
        let channels = Channels::new(seed, &mut rng);
        Self {
            letters,
            letter_count: size,
            spaced,
            channels,
        }
    }

    /// A string of 3 to `max_length - 1` letters and spaces, trimmed.
    fn string(&self, rng: &mut EventRng, max_length: u64) -> &str {
        let len = (MIN_STRING_LENGTH + rng.below(max_length - MIN_STRING_LENGTH)) as usize;
        cut(&self.spaced, rng, len).trim_matches(' ')
    }

    /// Letters that pad an event of `current` bytes to `average` bytes on
    /// average (±20%), as Nexmark's `extra` field.
    fn extra(&self, rng: &mut EventRng, current: u64, average: u64) -> &[u8] {
        if current > average {
            return b"";
        }
        let length = ExtraLength::new(current, average);
        let spread = length.spread;
        let len = length.least + if spread == 0 { 0 } else { rng.below(spread) };
        let pool = self.letter_count;
        self.letters(cut_range(pool, len as usize, |n| rng.below(n)))
    }

    /// The letters at `cut`.
    fn letters(&self, cut: Range<usize>) -> &[u8] {
        self.letters.get(cut).unwrap_or_default()
    }

    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// Whether every piece of text a bid's columns are made of is ASCII:
    /// the letters and the channels' names and URLs.
    fn bid_text_is_ascii(&self) -> bool {
        self.letters.is_ascii() && self.channels.is_ascii()
    }
}

/// The channel a bid came through: one of `CHANNELS` numbered ones, or
/// (from `CHANNELS` on) a hot one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Channel(u32);

/// Channel names and URLs. A channel's name, and the parts of its URL
/// (one of a few base URLs, shared, and the digits of its `channel_id`),
/// are 16 bytes each in a table of all 10,004 channels, so that writing
/// either is a load and a copy or two, the same for hot and numbered
/// channels: half of the bids come through a hot channel, at random, and
/// a branch between the two would be mispredicted on half of them. As in
/// nexmark-flink, a numbered channel's URL carries its number's bits
/// reversed as `channel_id` nine times in ten.
#[derive(Debug)]
pub(crate) struct Channels {
    /// Each channel's name, little-endian, its length in the last byte.
    names: Vec<u128>,
    /// Each channel's URL: its base URL's index in `urls` (from bit 96),
    /// how many digits its `channel_id` has (bits 80 to 88; 0 for none),
    /// and the digits, little-endian (from bit 0).
    url_parts: Vec<u128>,
    /// The base URLs numbered channels share, then the hot channels'.
    urls: Vec<Padded<URL_BLOCK>>,
}

/// Base URLs are at most 55 bytes long.
const URL_BLOCK: usize = 64;

/// A piece of text padded to `N` bytes, so that it is appended as one
/// block (see [`TextCursor::put_block`]).
#[derive(Debug, Clone, Copy)]
struct Padded<const N: usize> {
    block: [u8; N],
    len: usize,
}

impl<const N: usize> Padded<N> {
    /// `text`, cut to `N` bytes (on a character boundary).
    fn new(text: &str) -> Self {
        let mut len = text.len().min(N);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        let mut block = [0; N];
        block[..len].copy_from_slice(&text.as_bytes()[..len]);
        Self { block, len }
    }

    #[inline(always)]
    fn write(&self, out: &mut TextCursor<'_>) {
        out.put_block(&self.block, self.len);
    }
}

/// How many base URLs the numbered channels share.
const BASE_URLS: usize = 256;

/// Up to 15 bytes of text, little-endian, with its length in the last byte.
fn short_text(text: &str) -> u128 {
    let mut block = [0; 16];
    let len = text.len().min(15);
    block[..len].copy_from_slice(&text.as_bytes()[..len]);
    block[15] = len as u8;
    u128::from_le_bytes(block)
}

impl Channels {
    fn new(seed: u64, rng: &mut EventRng) -> Self {
        let hot_urls: Vec<String> = HOT_CHANNELS.iter().map(|_| base_url(rng)).collect();
        let base_urls: Vec<String> = (0..BASE_URLS).map(|_| base_url(rng)).collect();
        let numbered = (0..CHANNELS as u32).map(|n| {
            let draw = splitmix(seed ^ u64::from(n).wrapping_mul(0xA24B_AED4_963E_E407));
            let base = (draw >> 32) as usize % BASE_URLS;
            let id = if !draw.is_multiple_of(10) {
                (n as i32).reverse_bits().unsigned_abs().to_string()
            } else {
                String::new()
            };
            let digits = short_text(&id) & ((1 << 80) - 1);
            let name = short_text(&format!("channel-{n}"));
            (
                name,
                (base as u128) << 96 | (id.len() as u128) << 80 | digits,
            )
        });
        let hot = HOT_CHANNELS
            .iter()
            .enumerate()
            .map(|(i, name)| (short_text(name), ((BASE_URLS + i) as u128) << 96));
        let (names, url_parts) = numbered.chain(hot).unzip();
        Self {
            names,
            url_parts,
            urls: base_urls
                .iter()
                .chain(&hot_urls)
                .map(|url| Padded::new(url))
                .collect(),
        }
    }

    /// Whether every name and URL is ASCII.
    fn is_ascii(&self) -> bool {
        let names = self.names.iter().all(|name| {
            let len = (name >> 120) as usize;
            name.to_le_bytes().get(..len).is_some_and(<[u8]>::is_ascii)
        });
        let ids = self.url_parts.iter().all(|parts| {
            let digits = (parts >> 80) as u8 as usize;
            parts
                .to_le_bytes()
                .get(..digits)
                .is_some_and(<[u8]>::is_ascii)
        });
        let urls = self
            .urls
            .iter()
            .all(|url| url.block.get(..url.len).is_some_and(<[u8]>::is_ascii));
        names && ids && urls
    }

    /// Starts loading the name of `channel`, if any, into the cache.
    #[inline(always)]
    pub fn prefetch_name(&self, channel: Option<Channel>) {
        if let Some(entry) = channel.and_then(|c| self.names.get(c.0 as usize)) {
            weir_common::hint::prefetch(std::ptr::from_ref(entry).cast());
        }
    }

    /// Starts loading the URL parts of `channel`, if any, into the cache.
    #[inline(always)]
    pub fn prefetch_url(&self, channel: Option<Channel>) {
        if let Some(entry) = channel.and_then(|c| self.url_parts.get(c.0 as usize)) {
            weir_common::hint::prefetch(std::ptr::from_ref(entry).cast());
        }
    }

    /// Appends the channel's name to `out`.
    #[inline(always)]
    pub fn write_name(&self, channel: Channel, out: &mut TextCursor<'_>) {
        let name = self.names.get(channel.0 as usize).copied().unwrap_or(0);
        out.put_u128(name, (name >> 120) as usize);
    }

    /// Appends the channel's URL to `out`.
    #[inline(always)]
    pub fn write_url(&self, channel: Channel, out: &mut TextCursor<'_>) {
        let parts = self.url_parts.get(channel.0 as usize).copied().unwrap_or(0);
        if let Some(base) = self.urls.get((parts >> 96) as usize) {
            base.write(out);
        }
        let digits = (parts >> 80) as u8 as usize;
        let prefix = u128::from_le_bytes(*b"&channel_id=\0\0\0\0");
        // Arithmetic, not `if`, which compiles to a branch here.
        out.put_u128(prefix, 12 * digits.min(1));
        // The bits past the digits are written into the room but not kept.
        out.put_u128(parts, digits);
    }
}

fn letter(rng: &mut EventRng) -> u8 {
    b'a' + rng.below(26) as u8
}

/// `len` bytes of `pool` from a random offset; the pool is ASCII, so any
/// byte range is a string.
fn cut<'a>(pool: &'a str, rng: &mut EventRng, len: usize) -> &'a str {
    pool.get(cut_range(pool.len(), len, |n| rng.below(n)))
        .unwrap_or_default()
}

/// `len` bytes (at most `pool`) from a random offset of a pool of `pool`
/// bytes; `below(n)` draws uniformly in `0..n`.
#[inline]
fn cut_range(pool: usize, len: usize, below: impl FnOnce(u64) -> u64) -> Range<usize> {
    let len = len.min(pool);
    let start = below((pool - len + 1) as u64) as usize;
    start..start + len
}

/// Appends `letters[cut]`, as one block when it is short.
#[inline(always)]
fn write_letters(letters: &[u8], cut: Range<usize>, out: &mut TextCursor<'_>) {
    let len = cut.len();
    let block = letters
        .get(cut.start..)
        .and_then(|from| from.first_chunk::<LETTER_BLOCK>());
    match block {
        Some(block) if len <= LETTER_BLOCK => out.put_block(block, len),
        _ => out.put(letters.get(cut).unwrap_or_default()),
    }
}

/// Appends text to a string column: its text is `bytes[..end]`, and the
/// bytes after it are room, zeros or text of an earlier batch.
///
/// Short pieces are written as whole blocks of a fixed size, a few vector
/// moves instead of a call to `memmove`, and the cursor moves on by their
/// length only. The cursor is a local value, kept in a register; a
/// `Vec`'s length, stored after every piece and loaded for the next one,
/// made one long chain of dependent memory operations of a column.
pub(crate) struct TextCursor<'a> {
    bytes: &'a mut Vec<u8>,
    pub end: usize,
}

impl<'a> TextCursor<'a> {
    pub fn new(bytes: &'a mut Vec<u8>, end: usize) -> Self {
        Self { bytes, end }
    }

    /// The room for `len` bytes at the cursor, grown if need be.
    #[inline(always)]
    fn room(&mut self, len: usize) -> &mut [u8] {
        let end = self.end + len;
        if end > self.bytes.len() {
            // Not a method of the cursor, so that the cursor's address is
            // never taken and its `end` stays in a register.
            grow(self.bytes, end);
        }
        self.bytes.get_mut(self.end..end).unwrap_or_default()
    }

    /// Appends the first `len` (at most `N`) bytes of `block`.
    #[inline(always)]
    pub fn put_block<const N: usize>(&mut self, block: &[u8; N], len: usize) {
        let room = self.room(N);
        if room.len() == N {
            room.copy_from_slice(block);
            self.end += len.min(N);
        }
    }

    /// Appends the first `len` (at most 16) bytes of little-endian `text`
    /// straight from registers. Text put together in a block on the stack
    /// and copied out whole would be stored in pieces and loaded in one,
    /// which stalls the processor's store-to-load forwarding (a tenth of a
    /// bid's time in each URL).
    #[inline(always)]
    pub fn put_u128(&mut self, text: u128, len: usize) {
        let room = self.room(16);
        if let Some((low, high)) = room.split_at_mut_checked(8)
            && high.len() == 8
        {
            low.copy_from_slice(&(text as u64).to_le_bytes());
            high.copy_from_slice(&((text >> 64) as u64).to_le_bytes());
            self.end += len.min(16);
        }
    }

    /// Appends `text`, of any length.
    #[inline]
    pub fn put(&mut self, text: &[u8]) {
        let room = self.room(text.len());
        if room.len() == text.len() {
            room.copy_from_slice(text);
            self.end += text.len();
        }
    }
}

/// Grows `bytes` to at least `len`, to twice its length or more.
#[cold]
fn grow(bytes: &mut Vec<u8>, len: usize) {
    let len = len.max(bytes.len() * 2);
    bytes.resize(len, 0);
}

/// A URL such as `https://www.nexmark.com/abc_d/efghi/jk_lm/item.htm?query=1`.
fn base_url(rng: &mut EventRng) -> String {
    let mut url = String::from("https://www.nexmark.com/");
    for _ in 0..3 {
        let len = MIN_STRING_LENGTH + rng.below(5 - MIN_STRING_LENGTH);
        for _ in 0..len {
            url.push(if rng.below(13) == 0 {
                '_'
            } else {
                char::from(letter(rng))
            });
        }
        url.push('/');
    }
    url.push_str("item.htm?query=1");
    url
}

/// A person who joined the auction site.
#[derive(Debug, PartialEq)]
pub(crate) struct Person<'a> {
    pub id: i64,
    pub name: String,
    pub email_address: String,
    pub credit_card: String,
    pub city: &'static str,
    pub state: &'static str,
    pub date_time: i64,
    pub extra: &'a [u8],
}

/// An item put up for auction.
#[derive(Debug, PartialEq)]
pub(crate) struct Auction<'a> {
    pub id: i64,
    pub item_name: &'a str,
    pub description: &'a str,
    pub initial_bid: i64,
    pub reserve: i64,
    pub date_time: i64,
    pub expires: i64,
    pub seller: i64,
    pub category: i64,
    pub extra: &'a [u8],
}

/// A bid on an auction.
#[derive(Debug, PartialEq)]
pub(crate) struct Bid<'a> {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: Channel,
    pub date_time: i64,
    pub extra: &'a [u8],
}

/// Makes the events of one table from their ids.
#[derive(Debug)]
pub(crate) struct Model {
    pub config: ModelConfig,
    pool: TextPool,
    prices: PriceTable,
    bid_keys: BidKeys,
    bid_extra: ExtraDraw,
    bid_text_ascii: bool,
}

/// Where a bid's `extra` is cut from the text pool of `pool` letters, and
/// how long it is (padding the bid to the average size).
#[derive(Debug, Clone, Copy)]
struct ExtraDraw {
    key: Key,
    length: ExtraLength,
    pool: usize,
}

impl ExtraDraw {
    #[inline]
    fn cut(&self, event_id: u64) -> Range<usize> {
        // As `Key::two_below`, the second bound known after the first draw.
        let bits = self.key.bits(event_id);
        let len = self.length.least + below(bits, self.length.spread);
        cut_range(self.pool, len as usize, |n| below(bits.rotate_left(32), n))
    }
}

/// How long an `extra` is: `least` plus a draw below `spread`, which pads
/// an event of some bytes to the average size, ±20%.
#[derive(Debug, Clone, Copy)]
struct ExtraLength {
    least: u64,
    spread: u64,
}

impl ExtraLength {
    fn new(current: u64, average: u64) -> Self {
        let wanted = average.saturating_sub(current);
        // 20% of `wanted`, rounded half up, in integers.
        let delta = (wanted * 2 + 5) / 10;
        Self {
            least: wanted - delta,
            spread: 2 * delta,
        }
    }
}

impl Model {
    pub fn channels(&self) -> &Channels {
        self.pool.channels()
    }

    pub fn new(config: ModelConfig) -> Self {
        let longest = config
            .avg_person_bytes
            .max(config.avg_auction_bytes)
            .max(config.avg_bid_bytes)
            .saturating_mul(2);
        let pool = TextPool::new(config.seed, usize::try_from(longest).unwrap_or(usize::MAX));
        Self {
            bid_text_ascii: pool.bid_text_is_ascii(),
            bid_keys: BidKeys::new(config.seed),
            bid_extra: ExtraDraw {
                key: Key::new(config.seed, 5),
                length: ExtraLength::new(BID_NUMBER_BYTES, config.avg_bid_bytes),
                pool: pool.letter_count,
            },
            config,
            pool,
            prices: PriceTable::new(),
        }
    }

    fn rng(&self, event_id: u64) -> EventRng {
        EventRng::new(self.config.seed, event_id)
    }

    /// The person of event `event_id`, which must be a person event.
    #[cfg(test)]
    pub fn person(&self, event_id: u64) -> Person<'_> {
        self.person_at(self.config.at(event_id))
    }

    /// The person of event `event`, which must be a person event.
    pub fn person_at(&self, event: EventAt) -> Person<'_> {
        let c = &self.config;
        let mut rng = self.rng(event.id);
        let id = c.last_person(event.at) as i64 + FIRST_PERSON_ID;
        let name = format!(
            "{} {}",
            FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize],
            LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize]
        );
        let email_address = format!(
            "{}@{}.com",
            self.pool.string(&mut rng, 7),
            self.pool.string(&mut rng, 5)
        );
        let credit_card = format!(
            "{:04} {:04} {:04} {:04}",
            rng.below(10_000),
            rng.below(10_000),
            rng.below(10_000),
            rng.below(10_000)
        );
        let city = US_CITIES[rng.below(US_CITIES.len() as u64) as usize];
        let state = US_STATES[rng.below(US_STATES.len() as u64) as usize];
        let current =
            8 + name.len() + email_address.len() + credit_card.len() + city.len() + state.len();
        let extra = self
            .pool
            .extra(&mut rng, current as u64, c.avg_person_bytes);
        Person {
            id,
            name,
            email_address,
            credit_card,
            city,
            state,
            date_time: event.millis,
            extra,
        }
    }

    /// The auction of event `event_id`, which must be an auction event.
    #[cfg(test)]
    pub fn auction(&self, event_id: u64) -> Auction<'_> {
        self.auction_at(self.config.at(event_id))
    }

    /// The auction of event `event`, which must be an auction event.
    pub fn auction_at(&self, event: EventAt) -> Auction<'_> {
        let c = &self.config;
        let event_id = event.id;
        let mut rng = self.rng(event_id);
        let at = event.at;
        let id = c.last_auction(at) as i64 + FIRST_AUCTION_ID;
        let seller = if rng.below(c.hot_sellers_ratio) > 0 {
            (c.last_person(at) / HOT_BATCH) * HOT_BATCH
        } else {
            let (first, count) = c.people_choice(at);
            first + rng.below(count)
        } as i64
            + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES) as i64;
        let initial_bid = self.prices.draw(&mut rng);
        let date_time = event.millis;
        // Auctions last about as long as it takes to open the next
        // NUM_IN_FLIGHT_AUCTIONS ones, so about that many are open at once.
        let events_ahead = NUM_IN_FLIGHT_AUCTIONS * c.total_proportion() / c.auction_proportion;
        let horizon = c.timestamp(event_id + events_ahead) - date_time;
        let length = 1 + rng.below((horizon.max(0) as u64 * 2).max(1)) as i64;
        let item_name = self.pool.string(&mut rng, 20);
        let description = self.pool.string(&mut rng, 100);
        let reserve = initial_bid + self.prices.draw(&mut rng);
        let current = 8 + item_name.len() + description.len() + 40;
        let extra = self
            .pool
            .extra(&mut rng, current as u64, c.avg_auction_bytes);
        Auction {
            id,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time,
            expires: date_time + length,
            seller,
            category,
            extra,
        }
    }

    /// The bid of event `event_id`, which must be a bid event.
    #[cfg(test)]
    pub fn bid(&self, event_id: u64) -> Bid<'_> {
        self.bid_at(self.config.at(event_id))
    }

    /// The bid of event `event`, which must be a bid event.
    pub fn bid_at(&self, event: EventAt) -> Bid<'_> {
        let (id, choices) = (event.id, self.bid_choices(event.at));
        Bid {
            auction: self.bid_auctions(&choices)(id),
            bidder: self.bid_bidders(&choices)(id),
            price: self.bid_prices()(id),
            channel: self.bid_channel(id),
            date_time: event.millis,
            extra: self.pool.letters(self.bid_extra(id)),
        }
    }

    // Each of a bid's fields below is worked out from its event id alone
    // (and, for the auction and the bidder, what they are chosen from, the
    // same for all bids of an epoch), so that a batch's bid columns are
    // made one at a time. Where a draw picks between two values, both are
    // worked out and one is selected by arithmetic: a branch would be
    // mispredicted on half of the bids.

    /// What the auction and the bidder of bids at `at` are chosen from.
    #[inline]
    pub fn bid_choices(&self, at: Position) -> BidChoices {
        let c = &self.config;
        let (first_auction, auctions) = c.auction_choice(at);
        let (first_person, people) = c.people_choice(at);
        BidChoices {
            auction: HotOrOther {
                hot: (c.last_auction(at) / HOT_BATCH) * HOT_BATCH,
                hot_ratio: c.hot_auction_ratio,
                first: first_auction,
                count: auctions,
            },
            bidder: HotOrOther {
                // The second of the batch, so hot bidders are not hot sellers.
                hot: (c.last_person(at) / HOT_BATCH) * HOT_BATCH + 1,
                hot_ratio: c.hot_bidders_ratio,
                first: first_person,
                count: people,
            },
        }
    }

    // The three below return what a column's loop calls per bid, holding
    // its key and choices by value, so that they stay in registers: read
    // through `self`, they are loaded again after every value stored.

    /// Bids' auctions: the latest hot one, or one of those in flight.
    #[inline]
    pub fn bid_auctions(&self, choices: &BidChoices) -> impl Fn(u64) -> i64 + use<> {
        let (key, choice) = (self.bid_keys.auction, choices.auction);
        move |id| choice.pick(key, id) as i64 + FIRST_AUCTION_ID
    }

    /// Bids' bidders: the latest hot one, or one of the active people.
    #[inline]
    pub fn bid_bidders(&self, choices: &BidChoices) -> impl Fn(u64) -> i64 + use<> {
        let (key, choice) = (self.bid_keys.bidder, choices.bidder);
        move |id| choice.pick(key, id) as i64 + FIRST_PERSON_ID
    }

    /// Bids' prices.
    #[inline]
    pub fn bid_prices(&self) -> impl Fn(u64) -> i64 + '_ {
        let (key, steps) = (self.bid_keys.price, &self.prices.steps[..]);
        move |id| price(steps, key.bits(id))
    }

    /// Half of the bids come through one of the hot channels.
    #[inline]
    pub fn bid_channel(&self, id: u64) -> Channel {
        // As `Key::two_below`, the count depending on the first draw.
        let bits = self.bid_keys.channel.bits(id);
        let hot = below(bits, 2) > 0;
        let count = select(hot, HOT_CHANNELS.len() as u64, CHANNELS);
        let first = select(hot, CHANNELS, 0);
        Channel((first + below(bits.rotate_left(32), count)) as u32)
    }

    /// Where a bid's `extra` is in the text pool.
    #[inline]
    pub fn bid_extra(&self, id: u64) -> Range<usize> {
        self.bid_extra.cut(id)
    }

    /// Writes bids' `extra`, holding what it reads by value (see
    /// `bid_auctions`).
    #[inline]
    pub fn bid_extras(&self) -> impl Fn(u64, &mut TextCursor<'_>) + '_ {
        let (draw, letters) = (self.bid_extra, &self.pool.letters[..]);
        move |id, out| write_letters(letters, draw.cut(id), out)
    }

    /// Whether the text of bid columns is known to be ASCII, so that it
    /// need not be checked (see `TextPool::bid_text_is_ascii`).
    pub fn bid_text_is_ascii(&self) -> bool {
        self.bid_text_ascii
    }
}

#[cfg(test)]
impl ModelConfig {
    /// Nexmark's defaults, at 10,000 events a second from time 0.
    pub(crate) fn for_tests() -> Self {
        Self {
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            hot_auction_ratio: 2,
            hot_bidders_ratio: 4,
            hot_sellers_ratio: 4,
            avg_person_bytes: 200,
            avg_auction_bytes: 500,
            avg_bid_bytes: 100,
            events_per_second: 10_000,
            base_time_millis: 0,
            seed: 0,
        }
    }
}

/// The text `write` appends, for tests.
#[cfg(test)]
pub(crate) fn written(write: impl FnOnce(&mut TextCursor<'_>)) -> String {
    let mut bytes = Vec::new();
    let mut out = TextCursor::new(&mut bytes, 0);
    write(&mut out);
    let end = out.end;
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ModelConfig {
        ModelConfig::for_tests()
    }

    #[test]
    fn kinds_follow_the_proportions() {
        let c = config();
        let kinds: Vec<EventKind> = (0..50).map(|id| c.kind_of(id)).collect();
        assert_eq!(kinds[0], EventKind::Person);
        assert!(kinds[1..4].iter().all(|k| *k == EventKind::Auction));
        assert!(kinds[4..].iter().all(|k| *k == EventKind::Bid));
        assert_eq!(c.kind_of(50), EventKind::Person);
        assert_eq!(c.offsets(EventKind::Bid), 4..50);
    }

    #[test]
    fn ids_count_up_with_their_events() {
        let model = Model::new(config());
        assert_eq!(model.person(0).id, 1000);
        assert_eq!(model.person(50).id, 1001);
        assert_eq!(model.auction(1).id, 1000);
        assert_eq!(model.auction(3).id, 1002);
        assert_eq!(model.auction(51).id, 1003);
    }

    #[test]
    fn event_time_advances_at_the_rate() {
        let c = config();
        assert_eq!(c.timestamp(0), 0);
        assert_eq!(c.timestamp(10), 1);
        assert_eq!(c.timestamp(10_000), 1000);
    }

    #[test]
    fn table_prices_match_libm_prices() {
        let table = PriceTable::new();
        let mut rng = EventRng::new(11, 0);
        for _ in 0..100_000 {
            let mut copy = EventRng(rng.0);
            let unit = (copy.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let exact = (unit * 6.0 * std::f64::consts::LN_10).exp() * 100.0;
            let drawn = table.draw(&mut rng);
            assert!(
                (drawn as f64 - exact).abs() <= 0.5 + exact * 1e-11,
                "{drawn} {exact}"
            );
            assert!((100..=100_000_000).contains(&drawn), "{drawn}");
        }
    }

    #[test]
    fn the_sequencer_agrees_with_working_each_event_out() {
        for rate in [1, 7, 10_000, 10_000_000] {
            let c = ModelConfig {
                events_per_second: rate,
                base_time_millis: -5,
                ..config()
            };
            let mut sequencer = Sequencer::default();
            let mut rng = EventRng::new(3, 0);
            let mut id = 0;
            for _ in 0..20_000 {
                // Mostly small steps, sometimes a jump to another chunk.
                id += match rng.below(100) {
                    0 => 1 + rng.below(1_000_000),
                    _ => rng.below(60),
                };
                let stepped = sequencer.next(&c, id);
                let worked_out = c.at(id);
                assert_eq!(
                    (stepped.at.epoch, stepped.at.offset, stepped.millis),
                    (worked_out.at.epoch, worked_out.at.offset, worked_out.millis),
                    "event {id} at rate {rate}"
                );
            }
            let huge = u64::MAX / 999;
            assert_eq!(sequencer.next(&c, huge).millis, c.timestamp(huge));
            assert_eq!(sequencer.next(&c, huge + 1).millis, c.timestamp(huge + 1));
        }
    }

    #[test]
    fn events_are_deterministic_and_seeded() {
        let model = Model::new(config());
        assert_eq!(model.bid(1234), model.bid(1234));
        let other = Model::new(ModelConfig {
            seed: 7,
            ..config()
        });
        let differ = (4..50).any(|id| model.bid(id).price != other.bid(id).price);
        assert!(differ);
    }

    #[test]
    fn bids_refer_to_existing_or_nearly_existing_auctions_and_people() {
        let model = Model::new(config());
        for id in (100_000..101_000).filter(|id| config().kind_of(*id) == EventKind::Bid) {
            let bid = model.bid(id);
            let last_auction =
                config().last_auction(config().position(id)) as i64 + FIRST_AUCTION_ID;
            assert!(bid.auction <= last_auction + ID_LEAD as i64);
            assert!(bid.auction >= last_auction - NUM_IN_FLIGHT_AUCTIONS as i64);
            let last_person = config().last_person(config().position(id)) as i64 + FIRST_PERSON_ID;
            assert!(bid.bidder <= last_person + ID_LEAD as i64);
            assert!((1..=100_000_000).contains(&bid.price));
        }
    }

    #[test]
    fn sizes_average_out_to_the_configured_bytes() {
        let model = Model::new(config());
        let bids: Vec<u64> = (0..50_000u64)
            .filter(|id| config().kind_of(*id) == EventKind::Bid)
            .collect();
        let extra: usize = bids.iter().map(|id| model.bid(*id).extra.len()).sum();
        let average = extra as f64 / bids.len() as f64 + 32.0;
        assert!((95.0..105.0).contains(&average), "{average}");
        let auction = model.auction(1);
        assert!(auction.expires > auction.date_time);
        assert!(auction.item_name.len() < 20);
        assert!(model.person(0).credit_card.len() == 19);
    }

    #[test]
    fn hot_auctions_dominate() {
        let model = Model::new(config());
        let bids: Vec<Bid<'_>> = (500_000..510_000u64)
            .filter(|id| config().kind_of(*id) == EventKind::Bid)
            .map(|id| model.bid(id))
            .collect();
        let hot = bids.iter().filter(|b| b.auction % 100 == 0).count();
        // Half go to the hot auction, and a few of the others hit it too.
        let share = hot as f64 / bids.len() as f64;
        assert!((0.45..0.6).contains(&share), "{share}");
    }

    #[test]
    fn a_text_cursor_keeps_only_the_length_of_each_block() {
        let mut bytes = vec![b'#'; 8];
        let mut out = TextCursor::new(&mut bytes, 2);
        out.put_block(b"abcdefgh", 3);
        out.put_u128(u128::from_le_bytes(*b"0123456789abcdef"), 4);
        out.put(b"xyz");
        out.put_block(b"ignored", 0);
        // Past the vector's length: it grows.
        out.put_block(&[b'q'; LETTER_BLOCK], 90);
        out.put(&[b'r'; 300]);
        let end = out.end;
        let mut expected = b"##abc0123xyz".to_vec();
        expected.extend([b'q'; 90]);
        expected.extend([b'r'; 300]);
        assert_eq!(&bytes[..end], &expected[..]);
        assert!(bytes.len() >= end);
    }

    #[test]
    fn channels_are_named_and_addressed_as_in_nexmark_flink() {
        let model = Model::new(config());
        let channels = model.channels();
        let mut with_id = 0;
        for n in 0..CHANNELS as u32 {
            let channel = Channel(n);
            assert_eq!(
                written(|out| channels.write_name(channel, out)),
                format!("channel-{n}")
            );
            let url = written(|out| channels.write_url(channel, out));
            assert!(url.starts_with("https://www.nexmark.com/"), "{url}");
            let id = (n as i32).reverse_bits().unsigned_abs();
            if let Some((base, tail)) = url.split_once("&channel_id=") {
                assert!(base.ends_with("/item.htm?query=1"), "{url}");
                assert_eq!(tail, id.to_string());
                with_id += 1;
            } else {
                assert!(url.ends_with("/item.htm?query=1"), "{url}");
            }
        }
        // Nine in ten numbered channels carry their id.
        assert!((8_800..9_200).contains(&with_id), "{with_id}");
        for (i, name) in HOT_CHANNELS.iter().enumerate() {
            let channel = Channel(CHANNELS as u32 + i as u32);
            assert_eq!(written(|out| channels.write_name(channel, out)), *name);
            let url = written(|out| channels.write_url(channel, out));
            assert!(url.ends_with("/item.htm?query=1"), "{url}");
        }
        assert!(model.bid_text_is_ascii());
    }

    #[test]
    fn half_of_the_bids_come_through_hot_channels_and_the_rest_spread() {
        let model = Model::new(config());
        let mut hot = 0;
        let mut numbered = std::collections::HashSet::new();
        for id in 0..40_000 {
            let channel = model.bid_channel(id);
            if u64::from(channel.0) >= CHANNELS {
                assert!(u64::from(channel.0) < CHANNELS + HOT_CHANNELS.len() as u64);
                hot += 1;
            } else {
                numbered.insert(channel.0);
            }
        }
        assert!((19_000..21_000).contains(&hot), "{hot}");
        // 20,000 draws from 10,000 channels leave about 1,350 unseen.
        assert!(
            (8_400..8_900).contains(&numbered.len()),
            "{}",
            numbered.len()
        );
        let lengths = ExtraLength::new(BID_NUMBER_BYTES, 100);
        let (least, most) = (lengths.least, lengths.least + lengths.spread);
        for id in 0..10_000 {
            let len = model.bid_extra(id).len() as u64;
            assert!((least..most).contains(&len), "{len}");
        }
    }
}
