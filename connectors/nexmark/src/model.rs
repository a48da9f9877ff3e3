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
//! event draws from its own generator seeded by `(seed, event id)`: the
//! stream is the same at any parallelism and in every run, and the three
//! tables (person, auction, bid) agree because each computes only its own
//! events of one shared sequence.

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

/// Random strings are at least this long, as in Nexmark.
const MIN_STRING_LENGTH: u64 = 3;
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

    /// One of the active people, or one a little ahead of the latest.
    fn random_person(&self, at: Position, rng: &mut EventRng) -> u64 {
        let people = self.last_person(at) + 1;
        let active = people.min(NUM_ACTIVE_PEOPLE);
        people - active + rng.below(active + ID_LEAD)
    }

    /// One of the auctions likely in flight, or one a little ahead.
    fn random_auction(&self, at: Position, rng: &mut EventRng) -> u64 {
        let last = self.last_auction(at);
        let first = last.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
        first + rng.below(last - first + 1 + ID_LEAD)
    }
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
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Steps of the price table.
const PRICE_STEPS: usize = 1024;
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
        let scaled = rng.unit() * PRICE_STEPS as f64;
        let step = scaled as usize;
        let d = (scaled - step as f64) * PRICE_STEP;
        let e_d = 1.0 + d * (1.0 + d * (0.5 + d * (1.0 / 6.0 + d * (1.0 / 24.0))));
        let base = self.steps.get(step).copied().unwrap_or(1e8);
        // Adding a half and truncating rounds a positive value as `round`
        // does, without its call into libm.
        (base * e_d + 0.5) as i64
    }
}

/// Text drawn once per table, which random strings are cut from: cheaper
/// than drawing every character, with the same character distribution.
#[derive(Debug)]
pub(crate) struct TextPool {
    /// Lowercase letters, for `extra` padding. Bytes rather than a `str`,
    /// so that cutting a piece does not read the pool to check for
    /// character boundaries (those reads missed the cache on most bids).
    letters: Vec<u8>,
    /// Lowercase letters with one in 13 a space, for names and descriptions.
    spaced: String,
    channels: Channels,
}

impl TextPool {
    /// `longest` is the longest string that will be cut from the pool.
    pub fn new(seed: u64, longest: usize) -> Self {
        let size = MIN_POOL_BYTES.max(longest.saturating_mul(4));
        let mut rng = EventRng::new(seed, u64::MAX);
        let letters = (0..size).map(|_| letter(&mut rng)).collect();
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
        let wanted = average - current;
        // 20% of `wanted`, rounded half up, in integers.
        let delta = (wanted * 2 + 5) / 10;
        let len = wanted - delta + if delta == 0 { 0 } else { rng.below(2 * delta) };
        cut_bytes(&self.letters, rng, len as usize)
    }

    /// Half of the bids come through one of the hot channels.
    fn channel(&self, rng: &mut EventRng) -> Channel {
        let index = if rng.below(2) > 0 {
            CHANNELS + rng.below(HOT_CHANNELS.len() as u64)
        } else {
            rng.below(CHANNELS)
        };
        Channel(index as u32)
    }

    pub fn channels(&self) -> &Channels {
        &self.channels
    }
}

/// The channel a bid came through: one of `CHANNELS` numbered ones, or
/// (from `CHANNELS` on) a hot one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Channel(u32);

/// Channel names and URLs, written out when a batch's column is filled
/// rather than kept per channel: a table of 10,000 names and URLs (about
/// 1 MB) missed the cache on most bids, while these few base URLs stay in
/// it. As in nexmark-flink, a numbered channel's URL carries its number's
/// bits reversed as `channel_id` nine times in ten.
#[derive(Debug)]
pub(crate) struct Channels {
    seed: u64,
    hot_urls: [String; HOT_CHANNELS.len()],
    base_urls: Vec<String>,
}

/// A hot channel's index in `HOT_CHANNELS`, or a numbered channel's number.
enum Which {
    Hot(usize),
    Numbered(u32),
}

/// How many base URLs the numbered channels share.
const BASE_URLS: usize = 256;

impl Channels {
    fn new(seed: u64, rng: &mut EventRng) -> Self {
        Self {
            seed,
            hot_urls: [(); HOT_CHANNELS.len()].map(|_| base_url(rng)),
            base_urls: (0..BASE_URLS).map(|_| base_url(rng)).collect(),
        }
    }

    fn which(channel: Channel) -> Which {
        match u64::from(channel.0).checked_sub(CHANNELS) {
            Some(hot) => Which::Hot(hot as usize),
            None => Which::Numbered(channel.0),
        }
    }

    /// Appends the channel's name to `out`.
    pub fn write_name(&self, channel: Channel, out: &mut Vec<u8>) {
        match Self::which(channel) {
            Which::Hot(hot) => {
                out.extend_from_slice(HOT_CHANNELS.get(hot).map_or("", |n| n).as_bytes())
            }
            Which::Numbered(n) => {
                out.extend_from_slice(b"channel-");
                out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            }
        }
    }

    /// Appends the channel's URL to `out`.
    pub fn write_url(&self, channel: Channel, out: &mut Vec<u8>) {
        match Self::which(channel) {
            Which::Hot(hot) => {
                out.extend_from_slice(self.hot_urls.get(hot).map_or("", |u| u).as_bytes())
            }
            Which::Numbered(n) => {
                let draw = splitmix(self.seed ^ u64::from(n).wrapping_mul(0xA24B_AED4_963E_E407));
                let base = &self.base_urls[(draw >> 32) as usize % BASE_URLS];
                out.extend_from_slice(base.as_bytes());
                if draw % 10 > 0 {
                    out.extend_from_slice(b"&channel_id=");
                    let id = (n as i32).reverse_bits().unsigned_abs();
                    out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
                }
            }
        }
    }
}

fn letter(rng: &mut EventRng) -> u8 {
    b'a' + rng.below(26) as u8
}

/// `len` bytes of `pool` from a random offset; the pool is ASCII, so any
/// byte range is a string.
fn cut<'a>(pool: &'a str, rng: &mut EventRng, len: usize) -> &'a str {
    pool.get(cut_range(pool.len(), rng, len))
        .unwrap_or_default()
}

/// `len` bytes of `pool` from a random offset.
fn cut_bytes<'a>(pool: &'a [u8], rng: &mut EventRng, len: usize) -> &'a [u8] {
    pool.get(cut_range(pool.len(), rng, len))
        .unwrap_or_default()
}

fn cut_range(pool: usize, rng: &mut EventRng, len: usize) -> std::ops::Range<usize> {
    let len = len.min(pool);
    let start = rng.below((pool - len + 1) as u64) as usize;
    start..start + len
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
            c.random_person(at, &mut rng)
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
        let c = &self.config;
        let mut rng = self.rng(event.id);
        let at = event.at;
        let auction = if rng.below(c.hot_auction_ratio) > 0 {
            (c.last_auction(at) / HOT_BATCH) * HOT_BATCH
        } else {
            c.random_auction(at, &mut rng)
        } as i64
            + FIRST_AUCTION_ID;
        let bidder = if rng.below(c.hot_bidders_ratio) > 0 {
            // The second of the batch, so hot bidders are not hot sellers.
            (c.last_person(at) / HOT_BATCH) * HOT_BATCH + 1
        } else {
            c.random_person(at, &mut rng)
        } as i64
            + FIRST_PERSON_ID;
        let price = self.prices.draw(&mut rng);
        let channel = self.pool.channel(&mut rng);
        let extra = self.pool.extra(&mut rng, 32, c.avg_bid_bytes);
        Bid {
            auction,
            bidder,
            price,
            channel,
            date_time: event.millis,
            extra,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ModelConfig {
        ModelConfig {
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
            let exact = (copy.unit() * 6.0 * std::f64::consts::LN_10).exp() * 100.0;
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
}
