//! How a table's columns map onto Nexmark events, and the batch builder.
//!
//! Two table shapes are accepted:
//! - one kind of event (`'table' = 'bid'`), with flat columns named after
//!   the event's fields (`auction`, `bidder`, `price`, `dateTime`, ...);
//! - nexmark-flink's union table (no `'table'` option): `event_type INT`
//!   and one `ROW<...>` column per kind (`person`, `auction`, `bid`), of
//!   which only the event's own is set.
//!
//! Field names match case-insensitively and with or without underscores,
//! so `dateTime`, `datetime` and `date_time` are one field. A table may
//! declare any subset of the fields, in any order, with any type the
//! generated one casts to.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, Int32Builder, Int64Array, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::{can_cast_types, cast};
use arrow::datatypes::{DataType, Field, Fields, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use weir_connector::ConnectorError;
use weir_format::display::sql_type_name;

use crate::model::{
    Auction, Bid, BidChoices, Channel, Channels, EventAt, EventKind, Model, ModelConfig, Person,
    Sequencer, TextCursor,
};
use crate::recycle::Pools;

/// The type a field is generated as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    BigInt,
    String,
    Timestamp,
}

impl FieldType {
    fn data_type(self) -> DataType {
        match self {
            FieldType::BigInt => DataType::Int64,
            FieldType::String => DataType::Utf8,
            FieldType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }
}

const PERSON_FIELDS: [(&str, FieldType); 8] = [
    ("id", FieldType::BigInt),
    ("name", FieldType::String),
    ("emailAddress", FieldType::String),
    ("creditCard", FieldType::String),
    ("city", FieldType::String),
    ("state", FieldType::String),
    ("dateTime", FieldType::Timestamp),
    ("extra", FieldType::String),
];

const AUCTION_FIELDS: [(&str, FieldType); 10] = [
    ("id", FieldType::BigInt),
    ("itemName", FieldType::String),
    ("description", FieldType::String),
    ("initialBid", FieldType::BigInt),
    ("reserve", FieldType::BigInt),
    ("dateTime", FieldType::Timestamp),
    ("expires", FieldType::Timestamp),
    ("seller", FieldType::BigInt),
    ("category", FieldType::BigInt),
    ("extra", FieldType::String),
];

/// The indexes of the bid's fields in `BID_FIELDS`.
const BID_AUCTION: usize = 0;
const BID_BIDDER: usize = 1;
const BID_CHANNEL: usize = 3;
const BID_URL: usize = 4;

const BID_FIELDS: [(&str, FieldType); 7] = [
    ("auction", FieldType::BigInt),
    ("bidder", FieldType::BigInt),
    ("price", FieldType::BigInt),
    ("channel", FieldType::String),
    ("url", FieldType::String),
    ("dateTime", FieldType::Timestamp),
    ("extra", FieldType::String),
];

fn fields_of(kind: EventKind) -> &'static [(&'static str, FieldType)] {
    match kind {
        EventKind::Person => &PERSON_FIELDS,
        EventKind::Auction => &AUCTION_FIELDS,
        EventKind::Bid => &BID_FIELDS,
    }
}

/// `dateTime`, `datetime` and `date_time` are the same field.
fn same_name(declared: &str, field: &str) -> bool {
    let mut declared = declared.chars().filter(|c| *c != '_');
    let mut field = field.chars();
    loop {
        match (declared.next(), field.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(&b) => {}
            _ => return false,
        }
    }
}

/// One field's value, borrowed from its event.
enum Value<'a> {
    Int(i64),
    Str(&'a str),
    /// ASCII text cut from a pool.
    Bytes(&'a [u8]),
    Timestamp(i64),
    /// A bid's channel name and URL, written out by [`Channels`].
    ChannelName(Channel),
    ChannelUrl(Channel),
}

/// An event whose fields can be read by their index in `fields_of`.
trait Event {
    fn value(&self, field: usize) -> Value<'_>;

    /// A BIGINT or TIMESTAMP field's value.
    #[inline]
    fn number(&self, field: usize) -> i64 {
        match self.value(field) {
            Value::Int(v) | Value::Timestamp(v) => v,
            _ => 0,
        }
    }

    /// Appends a STRING field's bytes to `out`.
    #[inline]
    fn write_text(&self, field: usize, channels: &Channels, out: &mut TextCursor<'_>) {
        self.value(field).write_text(channels, out);
    }
}

impl Value<'_> {
    fn is_text(&self) -> bool {
        !matches!(self, Value::Int(_) | Value::Timestamp(_))
    }

    /// Appends a string value's bytes to `out`; nothing for a number.
    #[inline]
    fn write_text(self, channels: &Channels, out: &mut TextCursor<'_>) {
        match self {
            Value::Str(s) => out.put(s.as_bytes()),
            Value::Bytes(b) => out.put(b),
            Value::ChannelName(c) => channels.write_name(c, out),
            Value::ChannelUrl(c) => channels.write_url(c, out),
            Value::Int(_) | Value::Timestamp(_) => {}
        }
    }
}

impl Event for Person<'_> {
    fn value(&self, field: usize) -> Value<'_> {
        match field {
            0 => Value::Int(self.id),
            1 => Value::Str(&self.name),
            2 => Value::Str(&self.email_address),
            3 => Value::Str(&self.credit_card),
            4 => Value::Str(self.city),
            5 => Value::Str(self.state),
            6 => Value::Timestamp(self.date_time),
            _ => Value::Bytes(self.extra),
        }
    }
}

impl Event for Auction<'_> {
    fn value(&self, field: usize) -> Value<'_> {
        match field {
            0 => Value::Int(self.id),
            1 => Value::Str(self.item_name),
            2 => Value::Str(self.description),
            3 => Value::Int(self.initial_bid),
            4 => Value::Int(self.reserve),
            5 => Value::Timestamp(self.date_time),
            6 => Value::Timestamp(self.expires),
            7 => Value::Int(self.seller),
            8 => Value::Int(self.category),
            _ => Value::Bytes(self.extra),
        }
    }
}

impl Event for Bid<'_> {
    fn value(&self, field: usize) -> Value<'_> {
        match field {
            0 => Value::Int(self.auction),
            1 => Value::Int(self.bidder),
            2 => Value::Int(self.price),
            3 => Value::ChannelName(self.channel),
            4 => Value::ChannelUrl(self.channel),
            5 => Value::Timestamp(self.date_time),
            _ => Value::Bytes(self.extra),
        }
    }
}

/// A declared column (or ROW field) bound to an event field.
#[derive(Debug, Clone)]
pub(crate) struct BoundField {
    kind: EventKind,
    /// Index into `fields_of(kind)`.
    index: usize,
    generated: FieldType,
    /// The declared type, which the generated values are cast to.
    declared: DataType,
}

impl BoundField {
    fn bind(
        table: &str,
        kind: EventKind,
        column: &str,
        declared: &DataType,
    ) -> Result<Self, ConnectorError> {
        let fields = fields_of(kind);
        let Some(index) = fields.iter().position(|(name, _)| same_name(column, name)) else {
            let valid: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
            return Err(ConnectorError::Unsupported {
                connector: crate::CONNECTOR.to_string(),
                what: format!(
                    "cannot fill column '{column}' of table '{table}': a {} has the fields {}",
                    kind.name(),
                    valid.join(", ")
                ),
            });
        };
        let generated = fields[index].1;
        check_cast(table, column, &generated.data_type(), declared)?;
        Ok(Self {
            kind,
            index,
            generated,
            declared: declared.clone(),
        })
    }

    /// A builder sized for `capacity` rows, so that it does not grow (and
    /// copy) while a batch is made, on vectors from the reader's pools.
    fn builder(&self, capacity: usize, config: &ModelConfig, pools: &Pools) -> FieldBuilder {
        let values = match self.generated {
            FieldType::BigInt => Values::Int(pools.numbers.take(capacity)),
            FieldType::String => Values::Str(StrValues::with_capacity(
                capacity,
                capacity * self.typical_len(config),
                pools,
            )),
            FieldType::Timestamp => Values::Timestamp(pools.numbers.take(capacity)),
        };
        FieldBuilder {
            values,
            valid: Vec::new(),
        }
    }
}

impl BoundField {
    /// About the most bytes the string field takes in most events.
    fn typical_len(&self, config: &ModelConfig) -> usize {
        // `extra` pads an event to its average size, ±20%.
        let padding = |average: u64, fixed: u64| (average.saturating_sub(fixed) * 6 / 5) as usize;
        match (self.kind, fields_of(self.kind)[self.index].0) {
            (EventKind::Bid, "extra") => padding(config.avg_bid_bytes, 32),
            (EventKind::Auction, "extra") => padding(config.avg_auction_bytes, 48),
            (EventKind::Person, "extra") => padding(config.avg_person_bytes, 40),
            (EventKind::Bid, "url") => 64,
            (EventKind::Auction, "description") => 100,
            (EventKind::Person, "creditCard") => 19,
            _ => 16,
        }
    }
}

fn check_cast(
    table: &str,
    column: &str,
    generated: &DataType,
    declared: &DataType,
) -> Result<(), ConnectorError> {
    if generated == declared || can_cast_types(generated, declared) {
        return Ok(());
    }
    Err(ConnectorError::Unsupported {
        connector: crate::CONNECTOR.to_string(),
        what: format!(
            "cannot fill column '{column}' of table '{table}': it is {} but Nexmark makes {}",
            sql_type_name(declared),
            sql_type_name(generated)
        ),
    })
}

/// One field's values for a batch, in plain vectors: appending a value is
/// a push, without arrow builders' per-value null bookkeeping. Only the
/// union table's ROW fields have nulls (on other kinds' events).
struct FieldBuilder {
    values: Values,
    /// Empty until the first null; then one entry per value.
    valid: Vec<bool>,
}

enum Values {
    Int(Vec<i64>),
    Str(StrValues),
    Timestamp(Vec<i64>),
}

/// A string column's text and the offset after each value.
struct StrValues {
    offsets: Vec<i32>,
    /// The text is `bytes[..end]`; the rest is room (see [`TextCursor`]).
    bytes: Vec<u8>,
    end: usize,
    /// Every piece of the text came from sources checked to be ASCII when
    /// they were made, so the text need not be checked again.
    ascii: bool,
}

/// A value's end as an offset; one past 2 GiB fails the batch in `finish`.
#[inline]
fn offset(end: usize) -> i32 {
    i32::try_from(end).unwrap_or(i32::MAX)
}

impl StrValues {
    fn with_capacity(values: usize, bytes: usize, pools: &Pools) -> Self {
        let mut offsets = pools.offsets.take(values + 1);
        offsets.push(0);
        Self {
            offsets,
            bytes: pools.bytes.take_room(bytes),
            end: 0,
            ascii: false,
        }
    }

    /// Appends one value, written by `write`.
    #[inline]
    fn append(&mut self, write: impl FnOnce(&mut TextCursor<'_>)) {
        let mut out = TextCursor::new(&mut self.bytes, self.end);
        write(&mut out);
        if out.end != self.end {
            // Text of unknown pieces, to be checked.
            self.ascii = false;
        }
        self.end = out.end;
        self.offsets.push(offset(self.end));
    }

    /// Appends a value for each of the `count` `values`, written by
    /// `write`, in one loop that keeps the cursor and the offsets' place in
    /// registers.
    #[inline(always)]
    fn extend<T>(
        &mut self,
        values: impl Iterator<Item = T>,
        count: usize,
        mut write: impl FnMut(T, &mut TextCursor<'_>),
    ) {
        let from = self.offsets.len();
        self.offsets.resize(from + count, 0);
        let mut out = TextCursor::new(&mut self.bytes, self.end);
        let mut written = 0;
        for (slot, value) in self.offsets[from..].iter_mut().zip(values) {
            write(value, &mut out);
            *slot = offset(out.end);
            written += 1;
        }
        self.end = out.end;
        self.offsets.truncate(from + written);
    }

    fn finish(
        &mut self,
        nulls: Option<NullBuffer>,
        pools: &Pools,
    ) -> Result<ArrayRef, ConnectorError> {
        let end = self.end;
        if i32::try_from(end).is_err() {
            return Err(ConnectorError::Unsupported {
                connector: crate::CONNECTOR.to_string(),
                what: "a batch of one string column over 2 GiB: lower the average event sizes"
                    .to_string(),
            });
        }
        let offsets = pools.offsets.scalars(std::mem::take(&mut self.offsets));
        // SAFETY: the offsets start at zero and each is `offset` of the
        // cursor's end after a value, which never moves back (pieces only
        // move it on) and is below 2^31 (checked above): they ascend, as
        // `OffsetBuffer` requires, without a pass over them to check.
        let offsets = unsafe { OffsetBuffer::new_unchecked(offsets) };
        let room = std::mem::take(&mut self.bytes);
        // ASCII text is valid, and checking for it is several times faster
        // than arrow's UTF-8 validation (a tenth of a bid's time); text made
        // only of pieces known to be ASCII needs no check at all.
        let ascii = self.ascii || room.get(..end).is_some_and(<[u8]>::is_ascii);
        let sound = ascii
            && offsets.last().is_some_and(|last| *last as usize == end)
            && nulls
                .as_ref()
                .is_none_or(|nulls| nulls.len() == offsets.len() - 1);
        // The whole vector goes back to the pool with its room.
        let bytes = pools.bytes.buffer(room).slice_with_length(0, end);
        if sound {
            // SAFETY: ASCII text is UTF-8 with a character boundary at every
            // byte; the offsets ascend from zero (above) and end at the
            // text's end; the nulls, if any, have one entry per value.
            return Ok(Arc::new(unsafe {
                StringArray::new_unchecked(offsets, bytes, nulls)
            }));
        }
        Ok(Arc::new(StringArray::try_new(offsets, bytes, nulls)?))
    }
}

impl FieldBuilder {
    #[inline]
    fn append(&mut self, value: Value<'_>, channels: &Channels) {
        let appended = match (&mut self.values, value) {
            (Values::Int(v), Value::Int(x)) | (Values::Timestamp(v), Value::Timestamp(x)) => {
                v.push(x);
                true
            }
            (Values::Str(s), value) if value.is_text() => {
                s.append(|out| value.write_text(channels, out));
                true
            }
            _ => false,
        };
        // Bound fields always agree with their events' values.
        if !appended {
            return self.append_null();
        }
        if !self.valid.is_empty() {
            self.valid.push(true);
        }
    }

    /// Appends field `field` of every event, a column at a time: one
    /// tight loop per field rather than a dispatch per value.
    fn fill<E: Event>(&mut self, events: &[E], field: usize, channels: &Channels) {
        match &mut self.values {
            Values::Int(v) | Values::Timestamp(v) => {
                v.extend(events.iter().map(|e| e.number(field)));
            }
            Values::Str(s) => {
                for event in events {
                    s.append(|out| event.write_text(field, channels, out));
                }
            }
        }
        if !self.valid.is_empty() {
            self.valid.resize(self.valid.len() + events.len(), true);
        }
    }

    fn append_null(&mut self) {
        let len = match &mut self.values {
            Values::Int(v) | Values::Timestamp(v) => {
                v.push(0);
                v.len()
            }
            Values::Str(s) => {
                s.append(|_| {});
                s.offsets.len() - 1
            }
        };
        if self.valid.is_empty() {
            self.valid.resize(len - 1, true);
        }
        self.valid.push(false);
    }

    /// The builder's values as an array; it is left empty.
    fn finish(&mut self, pools: &Pools) -> Result<ArrayRef, ConnectorError> {
        let valid = std::mem::take(&mut self.valid);
        let nulls = (!valid.is_empty()).then(|| NullBuffer::from(valid));
        let numbers = |v: &mut Vec<i64>| pools.numbers.scalars(std::mem::take(v));
        Ok(match &mut self.values {
            Values::Int(v) => Arc::new(Int64Array::new(numbers(v), nulls)),
            Values::Timestamp(v) => Arc::new(TimestampMillisecondArray::new(numbers(v), nulls)),
            Values::Str(s) => s.finish(nulls, pools)?,
        })
    }
}

/// Which events a table holds and how its columns are filled.
#[derive(Debug, Clone)]
pub(crate) enum TableShape {
    /// One kind of event, one column per field.
    Kind {
        kind: EventKind,
        columns: Vec<BoundField>,
    },
    /// All events, nexmark-flink's union table.
    Union { columns: Vec<UnionColumn> },
}

/// A column of the union table.
#[derive(Debug, Clone)]
pub(crate) enum UnionColumn {
    /// `event_type`: 0 person, 1 auction, 2 bid.
    EventType { declared: DataType },
    /// The `ROW` of one kind, set only on that kind's events.
    Row {
        kind: EventKind,
        fields: Vec<BoundField>,
        declared: Fields,
    },
}

impl TableShape {
    /// Binds every column of `schema`, failing on one Nexmark cannot fill.
    pub fn bind(
        table: &str,
        kind: Option<EventKind>,
        schema: &SchemaRef,
    ) -> Result<Self, ConnectorError> {
        match kind {
            Some(kind) => {
                let columns = schema
                    .fields()
                    .iter()
                    .map(|f| BoundField::bind(table, kind, f.name(), f.data_type()))
                    .collect::<Result<_, _>>()?;
                Ok(TableShape::Kind { kind, columns })
            }
            None => {
                let columns = schema
                    .fields()
                    .iter()
                    .map(|f| UnionColumn::bind(table, f))
                    .collect::<Result<_, _>>()?;
                Ok(TableShape::Union { columns })
            }
        }
    }

    /// The kind of events the table holds; `None` for all.
    pub fn kind(&self) -> Option<EventKind> {
        match self {
            TableShape::Kind { kind, .. } => Some(*kind),
            TableShape::Union { .. } => None,
        }
    }

    /// The same shape with only the columns at `projection`.
    pub fn project(&self, projection: &[usize]) -> Self {
        match self {
            TableShape::Kind { kind, columns } => TableShape::Kind {
                kind: *kind,
                columns: projection.iter().map(|i| columns[*i].clone()).collect(),
            },
            TableShape::Union { columns } => TableShape::Union {
                columns: projection.iter().map(|i| columns[*i].clone()).collect(),
            },
        }
    }
}

impl UnionColumn {
    fn bind(table: &str, field: &Field) -> Result<Self, ConnectorError> {
        let name = field.name();
        if same_name(name, "event_type") || same_name(name, "eventType") {
            check_cast(table, name, &DataType::Int32, field.data_type())?;
            return Ok(UnionColumn::EventType {
                declared: field.data_type().clone(),
            });
        }
        let Some(kind) = EventKind::ALL
            .into_iter()
            .find(|k| same_name(name, k.name()))
        else {
            return Err(ConnectorError::Unsupported {
                connector: crate::CONNECTOR.to_string(),
                what: format!(
                    "cannot fill column '{name}' of table '{table}': without 'table' the columns \
                     are event_type, person, auction and bid (or set 'table' to person, auction \
                     or bid for one kind's flat columns)"
                ),
            });
        };
        let DataType::Struct(declared) = field.data_type() else {
            return Err(ConnectorError::Unsupported {
                connector: crate::CONNECTOR.to_string(),
                what: format!(
                    "cannot fill column '{name}' of table '{table}': it must be a ROW<...> of {} fields",
                    kind.name()
                ),
            });
        };
        let fields = declared
            .iter()
            .map(|f| BoundField::bind(table, kind, f.name(), f.data_type()))
            .collect::<Result<_, _>>()?;
        Ok(UnionColumn::Row {
            kind,
            fields,
            declared: declared.clone(),
        })
    }
}

/// Events of a one-kind table are made this many at a time, then each
/// column is filled from them; few enough that they stay in the cache.
const CHUNK: usize = 256;

/// Builds one batch of a table's rows: a bid table's a column at a time
/// when the batch is finished, a person or auction table's a chunk of
/// events at a time, the union table's event by event.
pub(crate) struct BatchBuilder<'a> {
    model: &'a Model,
    /// Where the columns' vectors come from and return to.
    pools: &'a Pools,
    /// The kind of every event, when the table holds one kind.
    kind: Option<EventKind>,
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    rows: usize,
    /// A person or auction table's events not made yet.
    chunk: Vec<EventAt>,
    sequencer: Sequencer,
    /// A bid table's runs of consecutive bids, made when the batch is.
    bid_runs: Vec<Range<u64>>,
}

/// A field's values, to be cast to the declared type.
struct FieldColumn {
    index: usize,
    builder: FieldBuilder,
    declared: DataType,
}

impl FieldColumn {
    fn new(field: &BoundField, capacity: usize, config: &ModelConfig, pools: &Pools) -> Self {
        Self {
            index: field.index,
            builder: field.builder(capacity, config, pools),
            declared: field.declared.clone(),
        }
    }

    fn finish(&mut self, pools: &Pools) -> Result<ArrayRef, ConnectorError> {
        cast_to(self.builder.finish(pools)?, &self.declared)
    }
}

enum ColumnBuilder {
    Field(FieldColumn),
    EventType {
        builder: Int32Builder,
        declared: DataType,
    },
    Row {
        kind: EventKind,
        fields: Vec<FieldColumn>,
        valid: Vec<bool>,
        declared: Fields,
    },
}

impl ColumnBuilder {
    fn finish(&mut self, pools: &Pools) -> Result<ArrayRef, ConnectorError> {
        match self {
            ColumnBuilder::Field(column) => column.finish(pools),
            ColumnBuilder::EventType { builder, declared } => {
                cast_to(ArrayBuilder::finish(builder), declared)
            }
            ColumnBuilder::Row {
                fields,
                valid,
                declared,
                ..
            } => {
                let children = fields
                    .iter_mut()
                    .map(|field| field.finish(pools))
                    .collect::<Result<Vec<_>, _>>()?;
                let nulls = NullBuffer::from(std::mem::take(valid));
                Ok(Arc::new(StructArray::try_new(
                    declared.clone(),
                    children,
                    Some(nulls),
                )?))
            }
        }
    }
}

/// Fills a one-kind table's columns from `events`.
fn fill_columns<E: Event>(columns: &mut [ColumnBuilder], events: &[E], channels: &Channels) {
    for column in columns {
        if let ColumnBuilder::Field(f) = column {
            f.builder.fill(events, f.index, channels);
        }
    }
}

/// Fills a bid table's columns from runs of consecutive bids, a column
/// at a time: each of a bid's fields is worked out from its event alone,
/// so only the columns the table has (a query reads) are made.
fn fill_bids(columns: &mut [ColumnBuilder], runs: &[Range<u64>], model: &Model) {
    let (config, channels) = (&model.config, model.channels());
    let choices: Vec<BidChoices> = runs
        .iter()
        .map(|run| model.bid_choices(config.position(run.start)))
        .collect();
    let rows = runs.iter().map(|run| run.end - run.start).sum::<u64>() as usize;
    // The bids' channels, drawn once for the name and the URL columns.
    let mut picked: Vec<Channel> = Vec::new();
    for column in columns {
        let ColumnBuilder::Field(field) = column else {
            continue;
        };
        let builder = &mut field.builder;
        let text_of_channels = matches!(field.index, BID_CHANNEL | BID_URL);
        if let Values::Str(s) = &mut builder.values {
            // A bid's text is letters and channel names and URLs only.
            s.ascii = s.end == 0 && model.bid_text_is_ascii();
            if text_of_channels && picked.is_empty() {
                picked.reserve(rows);
                for run in runs {
                    picked.extend(run.clone().map(|id| model.bid_channel(id)));
                }
            }
        }
        // A channel's table entry is loaded this many bids ahead, so that
        // it has come from memory when it is written.
        const AHEAD: usize = 16;
        let ahead = |i: usize| picked.get(i + AHEAD).copied();
        let values = &mut builder.values;
        match (values, field.index) {
            (Values::Str(s), BID_CHANNEL) => {
                s.extend(picked.iter().enumerate(), rows, |(i, channel), out| {
                    channels.prefetch_name(ahead(i));
                    channels.write_name(*channel, out);
                });
            }
            (Values::Str(s), BID_URL) => {
                s.extend(picked.iter().enumerate(), rows, |(i, channel), out| {
                    channels.prefetch_url(ahead(i));
                    channels.write_url(*channel, out);
                });
            }
            (values, index) => {
                for (run, choices) in runs.iter().zip(&choices) {
                    let ids = run.clone();
                    let len = (run.end - run.start) as usize;
                    match (&mut *values, index) {
                        (Values::Int(v), BID_AUCTION) => {
                            v.extend(ids.map(model.bid_auctions(choices)))
                        }
                        (Values::Int(v), BID_BIDDER) => {
                            v.extend(ids.map(model.bid_bidders(choices)))
                        }
                        (Values::Int(v), _) => v.extend(ids.map(model.bid_prices())),
                        (Values::Timestamp(v), _) => v.extend(config.clock(run.start).take(len)),
                        (Values::Str(s), _) => s.extend(ids, len, model.bid_extras()),
                    }
                }
            }
        }
        if !builder.valid.is_empty() {
            builder.valid.resize(builder.valid.len() + rows, true);
        }
    }
}

fn cast_to(array: ArrayRef, declared: &DataType) -> Result<ArrayRef, ConnectorError> {
    if array.data_type() == declared {
        Ok(array)
    } else {
        Ok(cast(&array, declared)?)
    }
}

impl<'a> BatchBuilder<'a> {
    pub fn new(
        model: &'a Model,
        pools: &'a Pools,
        shape: &TableShape,
        schema: SchemaRef,
        capacity: usize,
    ) -> Self {
        let columns = match shape {
            TableShape::Kind { columns, .. } => columns
                .iter()
                .map(|field| {
                    ColumnBuilder::Field(FieldColumn::new(field, capacity, &model.config, pools))
                })
                .collect(),
            TableShape::Union { columns } => columns
                .iter()
                .map(|column| match column {
                    UnionColumn::EventType { declared } => ColumnBuilder::EventType {
                        builder: Int32Builder::with_capacity(capacity),
                        declared: declared.clone(),
                    },
                    UnionColumn::Row {
                        kind,
                        fields,
                        declared,
                    } => ColumnBuilder::Row {
                        kind: *kind,
                        fields: fields
                            .iter()
                            .map(|field| FieldColumn::new(field, capacity, &model.config, pools))
                            .collect(),
                        valid: Vec::with_capacity(capacity),
                        declared: declared.clone(),
                    },
                })
                .collect(),
        };
        Self {
            model,
            pools,
            kind: shape.kind(),
            schema,
            columns,
            rows: 0,
            chunk: Vec::with_capacity(CHUNK),
            sequencer: Sequencer::default(),
            bid_runs: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Adds the events with ids `ids`, which must be of the table's kind
    /// when the table holds one kind.
    pub fn push_run(&mut self, ids: Range<u64>) {
        self.rows += (ids.end - ids.start) as usize;
        if self.columns.is_empty() {
            return;
        }
        if self.kind == Some(EventKind::Bid) {
            self.bid_runs.push(ids);
            return;
        }
        let model = self.model;
        for event_id in ids {
            let event = self.sequencer.next(&model.config, event_id);
            if self.kind.is_some() {
                self.chunk.push(event);
                if self.chunk.len() == CHUNK {
                    self.make_chunk();
                }
                continue;
            }
            let kind = model.config.kind_of(event_id);
            match kind {
                EventKind::Person => self.push_event(kind, &model.person_at(event)),
                EventKind::Auction => self.push_event(kind, &model.auction_at(event)),
                EventKind::Bid => self.push_event(kind, &model.bid_at(event)),
            }
        }
    }

    /// Makes the chunk's events and fills every column from them.
    fn make_chunk(&mut self) {
        let model = self.model;
        let events = &self.chunk;
        match self.kind {
            Some(EventKind::Person) => {
                let made: Vec<Person<'_>> = events.iter().map(|e| model.person_at(*e)).collect();
                fill_columns(&mut self.columns, &made, model.channels());
            }
            Some(EventKind::Auction) => {
                let made: Vec<Auction<'_>> = events.iter().map(|e| model.auction_at(*e)).collect();
                fill_columns(&mut self.columns, &made, model.channels());
            }
            Some(EventKind::Bid) | None => {}
        }
        self.chunk.clear();
    }

    /// Generic over the event, so each kind's field reads inline.
    fn push_event(&mut self, kind: EventKind, event: &impl Event) {
        let channels = self.model.channels();
        for column in &mut self.columns {
            match column {
                ColumnBuilder::Field(f) => f.builder.append(event.value(f.index), channels),
                ColumnBuilder::EventType { builder, .. } => builder.append_value(kind.event_type()),
                ColumnBuilder::Row {
                    kind: row_kind,
                    fields,
                    valid,
                    ..
                } => {
                    let mine = *row_kind == kind;
                    valid.push(mine);
                    for f in fields {
                        if mine {
                            f.builder.append(event.value(f.index), channels);
                        } else {
                            f.builder.append_null();
                        }
                    }
                }
            }
        }
    }

    /// The batch of the rows pushed. The columns' vectors become the
    /// batch's: a builder makes one batch.
    pub fn finish(mut self) -> Result<RecordBatch, ConnectorError> {
        self.make_chunk();
        if self.kind == Some(EventKind::Bid) {
            fill_bids(&mut self.columns, &self.bid_runs, self.model);
        }
        let rows = self.rows;
        let pools = self.pools;
        let arrays = self
            .columns
            .iter_mut()
            .map(|column| column.finish(pools))
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            arrays,
            &options,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::{Int64Type, Schema, TimestampMillisecondType};

    use crate::model::written;

    /// The bid table's columns, made a column at a time, against the bids
    /// of the union table, made one at a time, at rates where event time
    /// steps by less and by more than a millisecond.
    #[test]
    fn bid_columns_hold_the_bids_made_one_at_a_time() -> Result<(), ConnectorError> {
        for rate in [7, 10_000, 3_000_000] {
            let model = Model::new(ModelConfig {
                events_per_second: rate,
                ..ModelConfig::for_tests()
            });
            let config = &model.config;
            let fields: Vec<Field> = BID_FIELDS
                .iter()
                .map(|(name, generated)| Field::new(*name, generated.data_type(), true))
                .collect();
            let schema: SchemaRef = Arc::new(Schema::new(fields));
            let shape = TableShape::bind("bid", Some(EventKind::Bid), &schema)?;
            let pools = Pools::new();
            let mut builder = BatchBuilder::new(&model, &pools, &shape, Arc::clone(&schema), 64);
            let (total, bids) = (config.total_proportion(), config.offsets(EventKind::Bid));
            let mut runs: Vec<Range<u64>> = (0..60)
                .map(|epoch| epoch * total + bids.start..epoch * total + bids.end)
                .collect();
            runs.push(1000 * total + 20..1000 * total + 31);
            for run in &runs {
                builder.push_run(run.clone());
            }
            let batch = builder.finish()?;
            let ids: Vec<u64> = runs.iter().flat_map(Range::clone).collect();
            assert_eq!(batch.num_rows(), ids.len());
            let number = |column: usize| batch.column(column).as_primitive::<Int64Type>();
            let text = |column: usize| batch.column(column).as_string::<i32>();
            let times = batch.column(5).as_primitive::<TimestampMillisecondType>();
            let channels = model.channels();
            for (row, id) in ids.iter().enumerate() {
                let bid = model.bid_at(config.at(*id));
                assert_eq!(number(0).value(row), bid.auction, "event {id}");
                assert_eq!(number(1).value(row), bid.bidder, "event {id}");
                assert_eq!(number(2).value(row), bid.price, "event {id}");
                let name = written(|out| channels.write_name(bid.channel, out));
                assert_eq!(text(3).value(row), name, "event {id}");
                let url = written(|out| channels.write_url(bid.channel, out));
                assert_eq!(text(4).value(row), url, "event {id}");
                assert_eq!(times.value(row), bid.date_time, "event {id} at rate {rate}");
                assert_eq!(text(6).value(row).as_bytes(), bid.extra, "event {id}");
            }
        }
        Ok(())
    }
}
