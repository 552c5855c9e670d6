//! The in-memory index of one pipeline's journal, and the task that keeps it current.
//!
//! Records are identified by their journal index. Each filterable value has a posting
//! list, a compressed bitmap of the journal indexes of the entries that carry it
//! ([`roaring`]); addresses are kept in ordered maps (IPv4 and IPv6 apart) so that a CIDR
//! range is a range scan. Times live in blocks of [`BLOCK_SLOTS`] consecutive journal
//! indexes, each with its smallest and largest time, so a time range skips or takes
//! whole blocks and looks at single times only in blocks that straddle its bounds. Every
//! [`POSITION_STRIDE`] indexes a block also keeps where a record sits in the journal, so
//! fetching any entry steps over at most that many frame headers.
//!
//! A query intersects the posting lists of its filters (the union of a filter's values
//! first), then walks the result from the newest entry down (or the oldest up), checking
//! time, until it has a page and knows whether more follow. A page ends at an entry's
//! journal index, and the next page starts strictly after it, so paging neither skips nor
//! repeats entries however many are added meanwhile.
//!
//! [`follow`] builds the index from the journal's first record and then tails it; when
//! retention purges the front of the journal, the index drops what was purged.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use roaring::{MultiOps, RoaringTreemap};
use tokio_util::sync::CancellationToken;

use super::fields::EntryFields;
use crate::event::Severity;
use crate::journal::{Journal, JournalError, JournalReader, RecordPosition};
use crate::pipeline::frame::Frame;

/// Journal indexes per time block.
pub const BLOCK_SLOTS: u64 = 4096;
/// Journal indexes per kept record position.
pub const POSITION_STRIDE: u64 = 16;

/// What a query selects. Lists are alternatives (any of them); filters combine (all).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Unix nanoseconds, inclusive.
    pub start: Option<u64>,
    /// Unix nanoseconds, exclusive.
    pub end: Option<u64>,
    pub event_type: Vec<String>,
    pub severity: Vec<Severity>,
    pub user_id: Vec<String>,
    pub action: Vec<String>,
    pub status: Vec<String>,
    pub ip: Vec<IpRange>,
}

/// An inclusive range of addresses of one family (a CIDR block, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpRange {
    V4(u32, u32),
    V6(u128, u128),
}

impl IpRange {
    /// The block of `net`; IPv4-mapped IPv6 blocks (`::ffff:10.0.0.0/104`) as IPv4, as
    /// addresses are indexed.
    pub fn from_net(net: ipnet::IpNet) -> IpRange {
        match net.trunc() {
            ipnet::IpNet::V4(n) => IpRange::V4(n.network().into(), n.broadcast().into()),
            ipnet::IpNet::V6(n) => match (n.network().to_ipv4_mapped(), n.prefix_len()) {
                (Some(v4), prefix) if prefix >= 96 => {
                    let net = ipnet::Ipv4Net::new(v4, prefix - 96).unwrap_or_default();
                    IpRange::V4(net.network().into(), net.broadcast().into())
                }
                _ => IpRange::V6(n.network().into(), n.broadcast().into()),
            },
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip.to_canonical()) {
            (IpRange::V4(lo, hi), IpAddr::V4(a)) => (*lo..=*hi).contains(&u32::from(a)),
            (IpRange::V6(lo, hi), IpAddr::V6(a)) => (*lo..=*hi).contains(&u128::from(a)),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

/// Which page of the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub order: Order,
    /// The journal index the previous page ended at: this page starts strictly after it.
    pub after: Option<u64>,
    pub limit: usize,
}

/// One entry found: its journal index and where to start looking for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub index: u64,
    pub near: Option<RecordPosition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub hits: Vec<Hit>,
    /// Whether entries past the last hit match too.
    pub more: bool,
}

/// What a journal record is, to the index.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Entry(EntryFields),
    Checkpoint {
        size: u64,
    },
    /// Not an entry the index can read (a malformed record); it takes its slot only.
    Other,
}

type Postings = HashMap<Box<str>, RoaringTreemap>;

/// The index of one journal; see the [module docs](self).
#[derive(Default)]
pub struct Index {
    /// The journal index of the first slot of `blocks[0]`.
    base: u64,
    /// The next journal index to be indexed.
    end: u64,
    blocks: VecDeque<Block>,
    entries: RoaringTreemap,
    event_type: Postings,
    severity: [RoaringTreemap; 5],
    user_id: Postings,
    action: Postings,
    status: Postings,
    ipv4: BTreeMap<u32, RoaringTreemap>,
    ipv6: BTreeMap<u128, RoaringTreemap>,
    /// Sizes of the checkpoints seen, ascending.
    checkpoints: Vec<u64>,
}

/// [`BLOCK_SLOTS`] consecutive journal indexes.
struct Block {
    first: u64,
    /// Time of each slot so far (0 for slots that are not entries).
    times: Vec<u64>,
    /// Per [`POSITION_STRIDE`] slots, the position of the first record read among them.
    positions: Vec<Option<RecordPosition>>,
    /// Bounds of the entries' times; `min > max` while the block has no entry.
    min_time: u64,
    max_time: u64,
}

impl Block {
    fn new(first: u64) -> Block {
        Block {
            first,
            times: Vec::new(),
            positions: Vec::new(),
            min_time: u64::MAX,
            max_time: 0,
        }
    }
}

enum TimeCheck {
    Match,
    NoMatch,
    /// No entry of the block holding the candidate is in the range.
    SkipBlock {
        first: u64,
    },
}

impl Index {
    /// An empty index whose first record will be `first`.
    pub fn new(first: u64) -> Index {
        Index {
            base: first,
            end: first,
            ..Index::default()
        }
    }

    /// The next journal index the index expects: everything below it has been read.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Entries indexed.
    pub fn len(&self) -> u64 {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds the record at journal index `index`, read at `position`. Records come in
    /// index order; indexes skipped (lost to damage) stay empty, and a record already
    /// indexed is ignored.
    pub fn push(&mut self, index: u64, item: Item, position: Option<RecordPosition>) {
        if index < self.end {
            return;
        }
        if self.entries.is_empty() && self.blocks.len() <= 1 && index > self.end {
            // Nothing worth keeping before a jump (a purge the reader met): start afresh.
            self.blocks.clear();
            self.base = index;
        }
        let time = match &item {
            Item::Entry(f) => Some(f.time),
            _ => None,
        };
        self.place(index, time, position);
        self.end = index + 1;
        match item {
            Item::Entry(f) => self.add_entry(index, f),
            Item::Checkpoint { size } => {
                if self.checkpoints.last().is_none_or(|&last| size > last) {
                    self.checkpoints.push(size);
                }
            }
            Item::Other => {}
        }
    }

    /// Records the slot's time and, first in its stride, its position.
    fn place(&mut self, index: u64, time: Option<u64>, position: Option<RecordPosition>) {
        let k = ((index - self.base) / BLOCK_SLOTS) as usize;
        while self.blocks.len() <= k {
            let first = self.base + self.blocks.len() as u64 * BLOCK_SLOTS;
            self.blocks.push_back(Block::new(first));
        }
        let block = &mut self.blocks[k];
        let slot = (index - block.first) as usize;
        block.times.resize(slot, 0);
        block.times.push(time.unwrap_or(0));
        if let Some(t) = time {
            block.min_time = block.min_time.min(t);
            block.max_time = block.max_time.max(t);
        }
        let group = slot / POSITION_STRIDE as usize;
        if block.positions.len() <= group {
            block.positions.resize(group + 1, None);
        }
        if block.positions[group].is_none() {
            block.positions[group] = position;
        }
    }

    fn add_entry(&mut self, index: u64, f: EntryFields) {
        self.entries.insert(index);
        let post = |postings: &mut Postings, value: Option<String>| {
            if let Some(v) = value {
                postings
                    .entry(v.into_boxed_str())
                    .or_default()
                    .insert(index);
            }
        };
        post(&mut self.event_type, f.event_type);
        post(&mut self.user_id, f.user_id);
        post(&mut self.action, f.action);
        post(&mut self.status, f.status);
        if let Some(s) = f.severity {
            self.severity[s as usize].insert(index);
        }
        match f.ip {
            Some(IpAddr::V4(a)) => {
                self.ipv4.entry(a.into()).or_default().insert(index);
            }
            Some(IpAddr::V6(a)) => {
                self.ipv6.entry(a.into()).or_default().insert(index);
            }
            None => {}
        }
    }

    /// Forgets every record below `first` (the journal's first index after a purge).
    pub fn purge_before(&mut self, first: u64) {
        if self.entries.min().is_some_and(|min| min < first) {
            self.entries.remove_range(..first);
            for postings in [
                &mut self.event_type,
                &mut self.user_id,
                &mut self.action,
                &mut self.status,
            ] {
                postings.retain(|_, p| {
                    p.remove_range(..first);
                    !p.is_empty()
                });
            }
            for p in &mut self.severity {
                p.remove_range(..first);
            }
            self.ipv4.retain(|_, p| {
                p.remove_range(..first);
                !p.is_empty()
            });
            self.ipv6.retain(|_, p| {
                p.remove_range(..first);
                !p.is_empty()
            });
        }
        while self
            .blocks
            .front()
            .is_some_and(|b| b.first + BLOCK_SLOTS <= first)
        {
            self.blocks.pop_front();
            self.base += BLOCK_SLOTS;
        }
        if self.blocks.is_empty() {
            self.end = self.end.max(first);
            self.base = self.end;
        }
    }

    /// The size of the first checkpoint that covers entry `seq` (size > seq).
    pub fn checkpoint_covering(&self, seq: u64) -> Option<u64> {
        let at = self.checkpoints.partition_point(|&size| size <= seq);
        self.checkpoints.get(at).copied()
    }

    /// A page of the entries matching `filter`, none below `floor` (the journal's
    /// first index, which may have moved since the index last looked).
    pub fn search(&self, filter: &Filter, page: &PageRequest, floor: u64) -> Found {
        let mut found = Found::default();
        let Some(candidates) = self.candidates(filter) else {
            return found;
        };
        let mut walk = candidates.iter();
        walk.advance_to(floor);
        match (page.order, page.after) {
            (Order::NewestFirst, Some(0)) => return found,
            (Order::NewestFirst, Some(after)) => walk.advance_back_to(after - 1),
            (Order::OldestFirst, Some(u64::MAX)) => return found,
            (Order::OldestFirst, Some(after)) => walk.advance_to((after + 1).max(floor)),
            (_, None) => {}
        }
        let timed = filter.start.is_some() || filter.end.is_some();
        let (start, end) = (filter.start.unwrap_or(0), filter.end.unwrap_or(u64::MAX));
        loop {
            let next = match page.order {
                Order::NewestFirst => walk.next_back(),
                Order::OldestFirst => walk.next(),
            };
            let Some(index) = next else { break };
            let check = if timed {
                self.check_time(index, start, end)
            } else {
                TimeCheck::Match
            };
            match check {
                TimeCheck::Match => {
                    if found.hits.len() == page.limit {
                        found.more = true;
                        break;
                    }
                    found.hits.push(Hit {
                        index,
                        near: self.position_near(index),
                    });
                }
                TimeCheck::NoMatch => {}
                TimeCheck::SkipBlock { first } => match page.order {
                    Order::NewestFirst if first == 0 => break,
                    Order::NewestFirst => walk.advance_back_to(first - 1),
                    Order::OldestFirst => walk.advance_to(first + BLOCK_SLOTS),
                },
            }
        }
        found
    }

    /// The entries passing every value filter, or `None` when none can.
    fn candidates(&self, f: &Filter) -> Option<Cow<'_, RoaringTreemap>> {
        let mut sets: Vec<Cow<'_, RoaringTreemap>> = Vec::new();
        for (postings, wanted) in [
            (&self.event_type, &f.event_type),
            (&self.user_id, &f.user_id),
            (&self.action, &f.action),
            (&self.status, &f.status),
        ] {
            if !wanted.is_empty() {
                sets.push(union(
                    wanted.iter().filter_map(|v| postings.get(v.as_str())),
                )?);
            }
        }
        if !f.severity.is_empty() {
            sets.push(union(
                f.severity.iter().map(|&s| &self.severity[s as usize]),
            )?);
        }
        if !f.ip.is_empty() {
            let maps = f
                .ip
                .iter()
                .flat_map(|range| -> Box<dyn Iterator<Item = _>> {
                    match *range {
                        IpRange::V4(lo, hi) => Box::new(self.ipv4.range(lo..=hi).map(|(_, p)| p)),
                        IpRange::V6(lo, hi) => Box::new(self.ipv6.range(lo..=hi).map(|(_, p)| p)),
                    }
                });
            sets.push(union(maps)?);
        }
        if sets.len() <= 1 {
            return Some(sets.pop().unwrap_or(Cow::Borrowed(&self.entries)));
        }
        sets.sort_by_key(|s| s.len());
        let both = sets.iter().map(|s| s.as_ref()).intersection();
        (!both.is_empty()).then_some(Cow::Owned(both))
    }

    fn block_of(&self, index: u64) -> Option<&Block> {
        let k = index.checked_sub(self.base)? / BLOCK_SLOTS;
        self.blocks.get(usize::try_from(k).ok()?)
    }

    fn check_time(&self, index: u64, start: u64, end: u64) -> TimeCheck {
        let Some(block) = self.block_of(index) else {
            return TimeCheck::NoMatch;
        };
        if block.max_time < start || block.min_time >= end {
            return TimeCheck::SkipBlock { first: block.first };
        }
        if block.min_time >= start && block.max_time < end {
            return TimeCheck::Match;
        }
        match block.times.get((index - block.first) as usize) {
            Some(t) if (start..end).contains(t) => TimeCheck::Match,
            _ => TimeCheck::NoMatch,
        }
    }

    fn position_near(&self, index: u64) -> Option<RecordPosition> {
        let block = self.block_of(index)?;
        let group = (index - block.first) / POSITION_STRIDE;
        block.positions.get(group as usize).copied().flatten()
    }
}

/// The union of posting lists, borrowed when there is one; `None` when there is none.
fn union<'a>(maps: impl Iterator<Item = &'a RoaringTreemap>) -> Option<Cow<'a, RoaringTreemap>> {
    let maps: Vec<&RoaringTreemap> = maps.collect();
    match maps.len() {
        0 => None,
        1 => Some(Cow::Borrowed(maps[0])),
        _ => Some(Cow::Owned(maps.into_iter().union())),
    }
}

/// An index shared by its follower and the API.
#[derive(Clone, Default)]
pub struct SharedIndex(Arc<RwLock<Index>>);

impl SharedIndex {
    pub fn new(index: Index) -> SharedIndex {
        SharedIndex(Arc::new(RwLock::new(index)))
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        // Nothing panics while holding the lock with the index half-changed.
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records read from the journal per batch (parsed off the lock, then inserted at once).
const BATCH_RECORDS: usize = 8192;

/// How often the follower looks for a purge when no commit wakes it.
const PURGE_CHECK: Duration = Duration::from_secs(10);

/// Builds `index` from `journal`'s first record, then keeps it current until `stop`.
pub async fn follow(
    pipeline: String,
    journal: Journal,
    index: SharedIndex,
    stop: CancellationToken,
) {
    let mut committed = journal.subscribe();
    let mut reader = match journal.reader(index.read().end().max(journal.first_index())) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%pipeline, error = %e, "query index cannot read the journal; queries see nothing new");
            return;
        }
    };
    let mut purge_check = tokio::time::interval(PURGE_CHECK);
    let mut caught_up_once = false;
    loop {
        committed.borrow_and_update();
        let name = pipeline.clone();
        let read = tokio::task::spawn_blocking(move || {
            let batch = read_batch(&name, &mut reader);
            (reader, batch)
        });
        let (back, (batch, at_end)) = tokio::select! {
            r = read => match r { Ok(r) => r, Err(_) => return },
            _ = stop.cancelled() => return,
        };
        reader = back;
        {
            let mut index = index.write();
            for (at, item, position) in batch {
                index.push(at, item, position);
            }
            index.purge_before(journal.first_index());
            if at_end && !caught_up_once {
                caught_up_once = true;
                tracing::info!(%pipeline, entries = index.len(), "query index caught up with the journal");
            }
        }
        metrics::gauge!("vellum_query_index_entries", "pipeline" => pipeline.clone())
            .set(index.read().len() as f64);
        if at_end {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = committed.changed() => {}
                _ = purge_check.tick() => {}
            }
        }
    }
}

/// Up to [`BATCH_RECORDS`] records, decoded; and whether the committed end was reached.
fn read_batch(
    pipeline: &str,
    reader: &mut JournalReader,
) -> (Vec<(u64, Item, Option<RecordPosition>)>, bool) {
    let mut batch = Vec::with_capacity(256);
    while batch.len() < BATCH_RECORDS {
        match reader.next() {
            None => return (batch, true),
            Some(Ok((at, payload))) => {
                let item = match Frame::decode(&payload) {
                    Ok(Frame::Entry { line, .. }) => match EntryFields::from_line(line) {
                        Some(fields) => Item::Entry(fields),
                        None => {
                            count_skipped(pipeline, "unreadable_entry");
                            Item::Other
                        }
                    },
                    Ok(Frame::Checkpoint(c)) => Item::Checkpoint { size: c.size },
                    Err(_) => {
                        count_skipped(pipeline, "unknown_record");
                        Item::Other
                    }
                };
                batch.push((at, item, reader.last_position()));
            }
            // The journal reports lost records once and reads on past them.
            Some(Err(
                e @ (JournalError::Damaged { .. }
                | JournalError::Gap { .. }
                | JournalError::Purged { .. }),
            )) => {
                if !matches!(e, JournalError::Purged { .. }) {
                    tracing::warn!(%pipeline, error = %e, "query index: journal records lost");
                    count_skipped(pipeline, "journal_damage");
                }
            }
            Some(Err(e)) => {
                tracing::warn!(%pipeline, error = %e, "query index: cannot read the journal; retrying at the next commit");
                return (batch, true);
            }
        }
    }
    (batch, false)
}

fn count_skipped(pipeline: &str, reason: &'static str) {
    metrics::counter!("vellum_query_index_skipped_total", "pipeline" => pipeline.to_string(), "reason" => reason)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random entry for journal index `i`.
    fn fields(i: u64) -> EntryFields {
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
        EntryFields {
            time: 1_000 + i * 10 + (h % 7),
            event_type: Some(
                ["authentication", "security", "model_request"][(h % 3) as usize].into(),
            ),
            severity: (h % 6 != 5).then(|| Severity::ALL[(h % 5) as usize]),
            user_id: Some(format!("u{}", h % 13)),
            action: (!h.is_multiple_of(4)).then(|| format!("a{}", h % 5)),
            status: Some(["success", "failure", "403"][(h % 3) as usize].into()),
            ip: Some(if h.is_multiple_of(2) {
                IpAddr::from([10, (h % 3) as u8, 0, (h % 200) as u8])
            } else {
                format!("2001:db8:{:x}::{:x}", h % 4, h % 500)
                    .parse()
                    .unwrap()
            }),
        }
    }

    /// Journal indexes 0..n: every 50th a checkpoint, the rest entries.
    fn build(n: u64) -> (Index, Vec<(u64, EntryFields)>) {
        let mut index = Index::new(0);
        let mut entries = Vec::new();
        for i in 0..n {
            let position = Some(RecordPosition {
                segment: i / 1000 * 1000,
                offset: i % 1000 * 100,
            });
            if i % 50 == 49 {
                index.push(i, Item::Checkpoint { size: i }, position);
            } else {
                index.push(i, Item::Entry(fields(i)), position);
                entries.push((i, fields(i)));
            }
        }
        (index, entries)
    }

    /// What a filter selects, computed by testing every entry one by one.
    fn scan(entries: &[(u64, EntryFields)], f: &Filter, floor: u64) -> Vec<u64> {
        let any = |wanted: &[String], v: &Option<String>| {
            wanted.is_empty() || v.as_ref().is_some_and(|v| wanted.contains(v))
        };
        entries
            .iter()
            .filter(|(i, e)| {
                *i >= floor
                    && f.start.is_none_or(|s| e.time >= s)
                    && f.end.is_none_or(|end| e.time < end)
                    && any(&f.event_type, &e.event_type)
                    && any(&f.user_id, &e.user_id)
                    && any(&f.action, &e.action)
                    && any(&f.status, &e.status)
                    && (f.severity.is_empty()
                        || e.severity.is_some_and(|s| f.severity.contains(&s)))
                    && (f.ip.is_empty()
                        || e.ip.is_some_and(|ip| f.ip.iter().any(|r| r.contains(ip))))
            })
            .map(|(i, _)| *i)
            .collect()
    }

    /// Every page of a search, following `after` as the API's cursor does.
    fn all_pages(index: &Index, f: &Filter, order: Order, limit: usize, floor: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = index.search(
                f,
                &PageRequest {
                    order,
                    after,
                    limit,
                },
                floor,
            );
            assert!(page.hits.len() <= limit);
            out.extend(page.hits.iter().map(|h| h.index));
            if !page.more {
                return out;
            }
            assert_eq!(page.hits.len(), limit, "a page before the last is full");
            after = page.hits.last().map(|h| h.index);
        }
    }

    fn net(s: &str) -> IpRange {
        IpRange::from_net(s.parse().unwrap())
    }

    #[test]
    fn searches_match_a_scan_of_every_entry_in_both_orders_across_pages() {
        let n = 3 * BLOCK_SLOTS + 123;
        let (index, entries) = build(n);
        let t = |i: u64| 1_000 + i * 10;
        let filters = vec![
            Filter::default(),
            Filter {
                user_id: vec!["u3".into()],
                ..Filter::default()
            },
            Filter {
                user_id: vec!["u3".into(), "u4".into(), "nobody".into()],
                ..Filter::default()
            },
            Filter {
                event_type: vec!["security".into()],
                severity: vec![Severity::High, Severity::Critical],
                start: Some(t(1000) + 3),
                end: Some(t(9000)),
                ..Filter::default()
            },
            Filter {
                start: Some(t(4095)),
                end: Some(t(4097)),
                ..Filter::default()
            },
            Filter {
                action: vec!["a1".into()],
                status: vec!["403".into()],
                ..Filter::default()
            },
            Filter {
                ip: vec![net("10.1.0.0/16")],
                ..Filter::default()
            },
            Filter {
                ip: vec![net("2001:db8:2::/48"), net("10.0.0.7/32")],
                user_id: vec!["u5".into()],
                ..Filter::default()
            },
            Filter {
                ip: vec![net("::ffff:10.2.0.0/112")],
                ..Filter::default()
            },
            Filter {
                user_id: vec!["nobody".into()],
                ..Filter::default()
            },
            Filter {
                start: Some(t(n) + 100),
                ..Filter::default()
            },
        ];
        for f in &filters {
            let expected = scan(&entries, f, 0);
            for limit in [1, 7, 100, 1000] {
                let newest = all_pages(&index, f, Order::NewestFirst, limit, 0);
                let mut reversed = expected.clone();
                reversed.reverse();
                assert_eq!(newest, reversed, "{f:?} limit {limit}");
                assert_eq!(
                    all_pages(&index, f, Order::OldestFirst, limit, 0),
                    expected,
                    "{f:?}"
                );
            }
        }
        // The filters above are not all trivially empty or full.
        let sizes: Vec<usize> = filters.iter().map(|f| scan(&entries, f, 0).len()).collect();
        assert!(
            sizes
                .iter()
                .filter(|&&s| s > 0 && s < entries.len())
                .count()
                >= 7,
            "{sizes:?}"
        );
    }

    #[test]
    fn pages_started_before_new_entries_neither_skip_nor_repeat() {
        let (mut index, _) = build(1000);
        let f = Filter {
            user_id: vec!["u2".into()],
            ..Filter::default()
        };
        let page = PageRequest {
            order: Order::NewestFirst,
            after: None,
            limit: 10,
        };
        let first = index.search(&f, &page, 0);
        let before: Vec<u64> = all_pages(&index, &f, Order::NewestFirst, 10, 0);
        for i in 1000..3000 {
            index.push(i, Item::Entry(fields(i)), None);
        }
        let mut rest = Vec::new();
        let mut after = first.hits.last().map(|h| h.index);
        loop {
            let p = index.search(&f, &PageRequest { after, ..page }, 0);
            rest.extend(p.hits.iter().map(|h| h.index));
            if !p.more {
                break;
            }
            after = p.hits.last().map(|h| h.index);
        }
        let mut seen: Vec<u64> = first.hits.iter().map(|h| h.index).collect();
        seen.extend(rest);
        assert_eq!(seen, before);
    }

    #[test]
    fn purged_ranges_disappear_and_the_floor_hides_what_is_not_dropped_yet() {
        let (mut index, entries) = build(4 * BLOCK_SLOTS);
        let f = Filter {
            status: vec!["failure".into()],
            ..Filter::default()
        };
        let floor = BLOCK_SLOTS + 100;
        let expected = scan(&entries, &f, floor);
        assert_eq!(
            all_pages(&index, &f, Order::OldestFirst, 500, floor),
            expected
        );
        index.purge_before(floor);
        assert_eq!(all_pages(&index, &f, Order::OldestFirst, 500, 0), expected);
        assert_eq!(index.blocks.len(), 3, "the first whole block is dropped");
        assert!(
            index
                .user_id
                .values()
                .all(|p| p.min().is_some_and(|m| m >= floor))
        );
        let expected: Vec<u64> = entries
            .iter()
            .map(|e| e.0)
            .filter(|&i| i >= floor)
            .collect();
        assert_eq!(
            all_pages(&index, &Filter::default(), Order::OldestFirst, 1000, 0),
            expected
        );
        // Purging everything leaves an index that takes records from the new front.
        index.purge_before(10 * BLOCK_SLOTS);
        assert!(index.is_empty());
        index.push(10 * BLOCK_SLOTS + 5, Item::Entry(fields(1)), None);
        assert_eq!(
            all_pages(&index, &Filter::default(), Order::NewestFirst, 10, 0),
            [10 * BLOCK_SLOTS + 5]
        );
    }

    #[test]
    fn checkpoints_cover_the_entries_below_their_size() {
        let (index, _) = build(200);
        // Checkpoints at journal indexes 49, 99, … with sizes 49, 99, 149, 199.
        assert_eq!(index.checkpoint_covering(0), Some(49));
        assert_eq!(index.checkpoint_covering(48), Some(49));
        assert_eq!(index.checkpoint_covering(49), Some(99));
        assert_eq!(index.checkpoint_covering(198), Some(199));
        assert_eq!(index.checkpoint_covering(199), None);
    }

    #[test]
    fn positions_are_those_of_a_record_at_or_before_the_hit_and_gaps_stay_empty() {
        let mut index = Index::new(100);
        let at = |i: u64| {
            Some(RecordPosition {
                segment: 0,
                offset: i * 10,
            })
        };
        for i in (100..200).filter(|i| !(120..140).contains(i)) {
            index.push(i, Item::Entry(fields(i)), at(i));
        }
        index.push(150, Item::Entry(fields(1)), None); // already indexed: ignored
        let hits = index
            .search(
                &Filter::default(),
                &PageRequest {
                    order: Order::OldestFirst,
                    after: None,
                    limit: 1000,
                },
                0,
            )
            .hits;
        assert_eq!(hits.len(), 80);
        assert_eq!(
            hits[0],
            Hit {
                index: 100,
                near: at(100)
            }
        );
        for h in hits {
            let near = h.near.unwrap().offset / 10;
            assert!(near <= h.index && h.index - near < POSITION_STRIDE, "{h:?}");
            assert!(!(120..140).contains(&h.index));
        }
    }

    #[test]
    fn mapped_ipv6_blocks_are_ipv4_and_plain_ipv6_blocks_hold_no_ipv4() {
        assert_eq!(
            net("::ffff:10.0.0.0/104"),
            IpRange::V4(0x0a00_0000, 0x0aff_ffff)
        );
        assert_eq!(net("10.0.0.9/8"), IpRange::V4(0x0a00_0000, 0x0aff_ffff));
        assert!(!net("::/0").contains("10.0.0.1".parse().unwrap()));
        assert!(net("::/0").contains("::1".parse().unwrap()));
        assert!(net("10.0.0.0/8").contains("::ffff:10.0.0.1".parse().unwrap()));
    }
}
