//! The in-memory index of one pipeline's journal, and the task that keeps it current.
//!
//! Entries are numbered by *row*: their journal index less the index's origin (the
//! journal's first index when the index was started), which fits 32 bits. Each
//! filterable value has a posting list of the rows that carry it: a sorted vector while
//! it is short, a compressed bitmap ([`roaring`]) once it is long. (A bitmap spends some
//! 50 bytes per 65,536-row chunk it touches, so a user or an address seen a few hundred
//! times across ten million rows costs a tenth as much as a vector.) Addresses are also
//! posted per IPv4 /16 and IPv6 /48, so that a wide CIDR block unions a few dense lists
//! instead of every address in it; a narrower block is a range scan of an ordered map.
//!
//! Times live in blocks of [`BLOCK_SLOTS`] consecutive journal indexes, each with its
//! smallest and largest time, so a time range skips or takes whole blocks and looks at
//! single times only in blocks that straddle its bounds. Every [`POSITION_STRIDE`]
//! indexes a block also keeps where a record sits in the journal, so fetching any entry
//! steps over at most that many frame headers.
//!
//! A query intersects the posting lists of its filters (the union of a filter's values
//! first), then walks the result from the newest entry down (or the oldest up), checking
//! time, until it has a page and knows whether more follow. A page ends at an entry's
//! journal index, and the next page starts strictly after it, so paging neither skips nor
//! repeats entries however many are added meanwhile.
//!
//! [`follow`] builds the index from the journal's first record and then tails it; when
//! retention purges the front of the journal, the index drops what was purged. Should
//! rows run out (2^32 records since the origin, which retention keeps from ever being
//! in memory at once), the index starts again from a newer origin.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use roaring::{MultiOps, RoaringBitmap};
use tokio_util::sync::CancellationToken;

use super::fields::EntryFields;
use crate::event::Severity;
use crate::journal::{Journal, JournalError, JournalReader, RecordPosition};
use crate::pipeline::frame::Frame;

/// Journal indexes per time block.
pub const BLOCK_SLOTS: u64 = 4096;
/// Journal indexes per kept record position.
pub const POSITION_STRIDE: u64 = 16;
/// A posting list longer than this becomes a bitmap.
const FEW_ROWS: usize = 4096;

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
    pub identity: Vec<String>,
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

/// The rows of one value, ascending.
#[derive(Debug, Clone)]
enum Posting {
    Few(Vec<u32>),
    Many(RoaringBitmap),
}

impl Posting {
    fn push(&mut self, row: u32) {
        match self {
            Posting::Few(rows) => {
                if rows.last().is_none_or(|&last| row > last) {
                    rows.push(row);
                }
                if rows.len() > FEW_ROWS {
                    let bitmap = RoaringBitmap::from_sorted_iter(rows.iter().copied());
                    *self = Posting::Many(bitmap.unwrap_or_default());
                }
            }
            Posting::Many(bitmap) => {
                if bitmap.try_push(row).is_err() {
                    bitmap.insert(row);
                }
            }
        }
    }

    /// Drops the rows below `row`; whether any are left.
    fn keep_from(&mut self, row: u32) -> bool {
        match self {
            Posting::Few(rows) => {
                rows.drain(..rows.partition_point(|&r| r < row));
                rows.shrink_to(rows.len() * 5 / 4);
                !rows.is_empty()
            }
            Posting::Many(bitmap) => {
                bitmap.remove_range(..row);
                !bitmap.is_empty()
            }
        }
    }
}

fn post<K: Eq + std::hash::Hash>(postings: &mut HashMap<K, Posting>, key: K, row: u32) {
    match postings.get_mut(&key) {
        Some(p) => p.push(row),
        None => {
            postings.insert(key, Posting::Few(vec![row]));
        }
    }
}

fn post_ordered<K: Ord>(postings: &mut BTreeMap<K, Posting>, key: K, row: u32) {
    match postings.get_mut(&key) {
        Some(p) => p.push(row),
        None => {
            postings.insert(key, Posting::Few(vec![row]));
        }
    }
}

/// The union of posting lists, borrowed when it is one bitmap; `None` when there is none.
fn union<'a>(postings: impl Iterator<Item = &'a Posting>) -> Option<Cow<'a, RoaringBitmap>> {
    let mut many: Vec<&RoaringBitmap> = Vec::new();
    let mut few: Vec<u32> = Vec::new();
    let (mut lists, mut few_lists) = (0, 0);
    for p in postings {
        lists += 1;
        match p {
            Posting::Many(bitmap) => many.push(bitmap),
            Posting::Few(rows) => {
                few_lists += 1;
                few.extend_from_slice(rows);
            }
        }
    }
    match (lists, few_lists, many.as_slice()) {
        (0, _, _) => return None,
        (1, 0, [one]) => return Some(Cow::Borrowed(one)),
        _ => {}
    }
    if few_lists > 1 {
        few.sort_unstable();
        few.dedup();
    }
    let mut out = RoaringBitmap::from_sorted_iter(few).unwrap_or_default();
    if !many.is_empty() {
        out |= many.into_iter().union();
    }
    Some(Cow::Owned(out))
}

type Postings = HashMap<Box<str>, Posting>;

/// The index of one journal; see the [module docs](self).
#[derive(Default)]
pub struct Index {
    /// The journal index of row 0.
    origin: u64,
    /// The journal index of the first slot of `blocks[0]`.
    base: u64,
    /// The next journal index to be indexed.
    end: u64,
    blocks: VecDeque<Block>,
    entries: RoaringBitmap,
    event_type: Postings,
    severity: [RoaringBitmap; 5],
    user_id: Postings,
    action: Postings,
    status: Postings,
    identity: Postings,
    ipv4: BTreeMap<u32, Posting>,
    /// Per IPv4 /16.
    ipv4_wide: BTreeMap<u16, Posting>,
    ipv6: BTreeMap<u128, Posting>,
    /// Per IPv6 /48.
    ipv6_wide: BTreeMap<u64, Posting>,
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

/// The index has no row for a journal index this far past its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowsExhausted;

impl Index {
    /// An empty index whose first record will be `first`.
    pub fn new(first: u64) -> Index {
        Index {
            origin: first,
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

    fn row(&self, index: u64) -> Option<u32> {
        u32::try_from(index.checked_sub(self.origin)?).ok()
    }

    /// Adds the record at journal index `index`, read at `position`. Records come in
    /// index order; indexes skipped (lost to damage) stay empty, and a record already
    /// indexed is ignored. Fails, changing nothing, when `index` is past the last row.
    pub fn push(
        &mut self,
        index: u64,
        item: Item,
        position: Option<RecordPosition>,
    ) -> Result<(), RowsExhausted> {
        if index < self.end {
            return Ok(());
        }
        let row = self.row(index).ok_or(RowsExhausted)?;
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
            Item::Entry(f) => self.add_entry(row, f),
            Item::Checkpoint { size } => {
                if self.checkpoints.last().is_none_or(|&last| size > last) {
                    self.checkpoints.push(size);
                }
            }
            Item::Other => {}
        }
        Ok(())
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

    fn add_entry(&mut self, row: u32, f: EntryFields) {
        if self.entries.try_push(row).is_err() {
            self.entries.insert(row);
        }
        for (postings, value) in [
            (&mut self.event_type, f.event_type),
            (&mut self.user_id, f.user_id),
            (&mut self.action, f.action),
            (&mut self.status, f.status),
            (&mut self.identity, f.identity),
        ] {
            if let Some(v) = value {
                match postings.get_mut(v.as_str()) {
                    Some(p) => p.push(row),
                    None => post(postings, v.into_boxed_str(), row),
                }
            }
        }
        if let Some(s) = f.severity {
            self.severity[s as usize].insert(row);
        }
        match f.ip {
            Some(IpAddr::V4(a)) => {
                let a = u32::from(a);
                post_ordered(&mut self.ipv4, a, row);
                post_ordered(&mut self.ipv4_wide, (a >> 16) as u16, row);
            }
            Some(IpAddr::V6(a)) => {
                let a = u128::from(a);
                post_ordered(&mut self.ipv6, a, row);
                post_ordered(&mut self.ipv6_wide, (a >> 80) as u64, row);
            }
            None => {}
        }
    }

    /// Forgets every record below `first` (the journal's first index after a purge).
    pub fn purge_before(&mut self, first: u64) {
        let Some(row) = first.checked_sub(self.origin) else {
            return;
        };
        let row = u32::try_from(row).unwrap_or(u32::MAX);
        if self.entries.min().is_some_and(|min| min < row) {
            self.entries.remove_range(..row);
            for p in &mut self.severity {
                p.remove_range(..row);
            }
            for postings in [
                &mut self.event_type,
                &mut self.user_id,
                &mut self.action,
                &mut self.status,
                &mut self.identity,
            ] {
                postings.retain(|_, p| p.keep_from(row));
            }
            self.ipv4.retain(|_, p| p.keep_from(row));
            self.ipv4_wide.retain(|_, p| p.keep_from(row));
            self.ipv6.retain(|_, p| p.keep_from(row));
            self.ipv6_wide.retain(|_, p| p.keep_from(row));
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
        // Rows from `low` to `high`, inclusive, as the floor and the cursor allow.
        let mut low = floor.max(self.origin);
        let mut high = self.origin + u64::from(u32::MAX);
        match (page.order, page.after) {
            (Order::NewestFirst, Some(after)) => high = high.min(after.saturating_sub(1)),
            (Order::OldestFirst, Some(after)) => low = low.max(after.saturating_add(1)),
            (_, None) => {}
        }
        if matches!((page.order, page.after), (Order::NewestFirst, Some(0))) || low > high {
            return found;
        }
        let (Some(low), Some(high)) = (self.row(low), self.row(high)) else {
            return found;
        };
        walk.advance_to(low);
        walk.advance_back_to(high);
        let timed = filter.start.is_some() || filter.end.is_some();
        let (start, end) = (filter.start.unwrap_or(0), filter.end.unwrap_or(u64::MAX));
        loop {
            let next = match page.order {
                Order::NewestFirst => walk.next_back(),
                Order::OldestFirst => walk.next(),
            };
            let Some(row) = next else { break };
            let index = self.origin + u64::from(row);
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
                    Order::NewestFirst => match self.row(first).and_then(|r| r.checked_sub(1)) {
                        Some(r) => walk.advance_back_to(r),
                        None => break,
                    },
                    Order::OldestFirst => match self.row(first + BLOCK_SLOTS) {
                        Some(r) => walk.advance_to(r),
                        None => break,
                    },
                },
            }
        }
        found
    }

    /// The entries passing every value filter, or `None` when none can.
    fn candidates(&self, f: &Filter) -> Option<Cow<'_, RoaringBitmap>> {
        let mut sets: Vec<Cow<'_, RoaringBitmap>> = Vec::new();
        for (postings, wanted) in [
            (&self.event_type, &f.event_type),
            (&self.user_id, &f.user_id),
            (&self.action, &f.action),
            (&self.status, &f.status),
            (&self.identity, &f.identity),
        ] {
            if !wanted.is_empty() {
                sets.push(union(
                    wanted.iter().filter_map(|v| postings.get(v.as_str())),
                )?);
            }
        }
        if !f.severity.is_empty() {
            let chosen: Vec<&RoaringBitmap> = f
                .severity
                .iter()
                .map(|&s| &self.severity[s as usize])
                .collect();
            sets.push(match chosen.as_slice() {
                [one] => Cow::Borrowed(*one),
                _ => Cow::Owned(chosen.into_iter().union()),
            });
        }
        if !f.ip.is_empty() {
            let mut lists: Vec<&Posting> = Vec::new();
            for range in &f.ip {
                self.postings_in(*range, &mut lists);
            }
            sets.push(union(lists.into_iter())?);
        }
        if sets.len() <= 1 {
            return Some(sets.pop().unwrap_or(Cow::Borrowed(&self.entries)));
        }
        sets.sort_by_key(|s| s.len());
        let all = sets.iter().map(|s| s.as_ref()).intersection();
        (!all.is_empty()).then_some(Cow::Owned(all))
    }

    /// The posting lists that together hold the addresses in `range`: whole /16 or /48
    /// lists for the part of the range they fill, single addresses for the rest.
    fn postings_in<'a>(&'a self, range: IpRange, out: &mut Vec<&'a Posting>) {
        match range {
            IpRange::V4(lo, hi) => {
                let (first, last) = whole_buckets(u128::from(lo), u128::from(hi), 16);
                match (first, last) {
                    (Some(f), Some(l)) if f <= l => {
                        out.extend(self.ipv4_wide.range(f as u16..=l as u16).map(|(_, p)| p));
                        let (f, l) = ((f as u32) << 16, ((l as u32) << 16) | 0xffff);
                        if lo < f {
                            out.extend(self.ipv4.range(lo..f).map(|(_, p)| p));
                        }
                        if l < hi {
                            out.extend(self.ipv4.range(l + 1..=hi).map(|(_, p)| p));
                        }
                    }
                    _ => out.extend(self.ipv4.range(lo..=hi).map(|(_, p)| p)),
                }
            }
            IpRange::V6(lo, hi) => {
                let (first, last) = whole_buckets(lo, hi, 80);
                match (first, last) {
                    (Some(f), Some(l)) if f <= l => {
                        out.extend(self.ipv6_wide.range(f as u64..=l as u64).map(|(_, p)| p));
                        let (f, l) = (f << 80, (l << 80) | ((1u128 << 80) - 1));
                        if lo < f {
                            out.extend(self.ipv6.range(lo..f).map(|(_, p)| p));
                        }
                        if l < hi {
                            out.extend(self.ipv6.range(l + 1..=hi).map(|(_, p)| p));
                        }
                    }
                    _ => out.extend(self.ipv6.range(lo..=hi).map(|(_, p)| p)),
                }
            }
        }
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

/// The buckets (`value >> shift`) lying wholly within `lo..=hi`: the first and the last.
fn whole_buckets(lo: u128, hi: u128, shift: u32) -> (Option<u128>, Option<u128>) {
    let size = 1u128 << shift;
    let first = if lo.is_multiple_of(size) {
        Some(lo >> shift)
    } else {
        (lo >> shift).checked_add(1)
    };
    let last = if hi % size == size - 1 {
        Some(hi >> shift)
    } else {
        (hi >> shift).checked_sub(1)
    };
    (first, last)
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
        let mut read = tokio::task::spawn_blocking(move || {
            let batch = read_batch(&name, &mut reader);
            (reader, batch)
        });
        let (back, (batch, at_end)) = tokio::select! {
            r = &mut read => match r { Ok(r) => r, Err(_) => return },
            _ = stop.cancelled() => {
                // The read is short; waiting for it lets go of the journal before the
                // daemon may open it again.
                let _ = read.await;
                return;
            }
        };
        reader = back;
        let mut restart = None;
        {
            let mut index = index.write();
            for (at, item, position) in batch {
                if index.push(at, item, position).is_err() {
                    // Out of rows: keep the newest half of the row space.
                    let origin = at
                        .saturating_sub(u64::from(u32::MAX / 2))
                        .max(journal.first_index());
                    tracing::warn!(%pipeline, origin, "query index out of rows; indexing again from a newer record");
                    *index = Index::new(origin);
                    restart = Some(origin);
                    break;
                }
            }
            index.purge_before(journal.first_index());
            if at_end && !caught_up_once {
                caught_up_once = true;
                tracing::info!(%pipeline, entries = index.len(), "query index caught up with the journal");
            }
        }
        metrics::gauge!("vellum_query_index_entries", "pipeline" => pipeline.clone())
            .set(index.read().len() as f64);
        if let Some(origin) = restart {
            match journal.reader(origin) {
                Ok(r) => reader = r,
                Err(e) => {
                    tracing::error!(%pipeline, error = %e, "query index cannot read the journal; queries see nothing new");
                    return;
                }
            }
            continue;
        }
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
            identity: (!h.is_multiple_of(5)).then(|| format!("spiffe://t/gw{}", h % 3)),
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
                index
                    .push(i, Item::Checkpoint { size: i }, position)
                    .unwrap();
            } else {
                index.push(i, Item::Entry(fields(i)), position).unwrap();
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
                    && any(&f.identity, &e.identity)
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
        let n = 5 * BLOCK_SLOTS + 123;
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
                identity: vec!["spiffe://t/gw1".into(), "spiffe://t/gw2".into()],
                status: vec!["failure".into()],
                ..Filter::default()
            },
            Filter {
                start: Some(t(n) + 100),
                ..Filter::default()
            },
        ];
        for f in &filters {
            let expected = scan(&entries, f, 0);
            for limit in [13, 1000] {
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
            index.push(i, Item::Entry(fields(i)), None).unwrap();
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
        assert!(index.user_id.values().all(|p| match p {
            Posting::Few(rows) => rows.iter().all(|&r| u64::from(r) >= floor),
            Posting::Many(b) => b.min().is_some_and(|m| u64::from(m) >= floor),
        }));
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
        index
            .push(10 * BLOCK_SLOTS + 5, Item::Entry(fields(1)), None)
            .unwrap();
        assert_eq!(
            all_pages(&index, &Filter::default(), Order::NewestFirst, 10, 0),
            [10 * BLOCK_SLOTS + 5]
        );
    }

    #[test]
    fn long_and_short_posting_lists_and_address_buckets_are_both_used() {
        let (index, _) = build(5 * BLOCK_SLOTS);
        let kinds = |p: &Postings| {
            let many = p.values().filter(|p| matches!(p, Posting::Many(_))).count();
            (many, p.len() - many)
        };
        assert_eq!(
            kinds(&index.event_type),
            (3, 0),
            "thousands of rows each: bitmaps"
        );
        assert_eq!(kinds(&index.user_id), (0, 13), "hundreds each: vectors");
        assert_eq!(index.ipv4_wide.len(), 3);
        assert_eq!(
            index.ipv6_wide.len(),
            2,
            "odd hashes only: 2001:db8:1:: and 2001:db8:3::"
        );
        let mut lists = Vec::new();
        index.postings_in(net("10.0.0.0/8"), &mut lists);
        assert_eq!(lists.len(), 3, "the /16 lists, not every address");
        lists.clear();
        index.postings_in(net("10.1.0.0/24"), &mut lists);
        assert_eq!(
            lists.len(),
            index.ipv4.range(0x0a01_0000..=0x0a01_00ff).count()
        );
        assert_eq!(
            whole_buckets(0x0a00_0000, 0x0aff_ffff, 16),
            (Some(0x0a00), Some(0x0aff))
        );
        assert_eq!(
            whole_buckets(0x0a00_0001, 0x0a01_fffe, 16),
            (Some(0x0a01), Some(0x0a00))
        );
    }

    #[test]
    fn rows_are_counted_from_the_origin_and_run_out_after_2_pow_32() {
        let origin = 7_000_000_000;
        let mut index = Index::new(origin);
        index
            .push(origin + 3, Item::Entry(fields(3)), None)
            .unwrap();
        index
            .push(origin + 9, Item::Entry(fields(9)), None)
            .unwrap();
        let page = PageRequest {
            order: Order::NewestFirst,
            after: None,
            limit: 10,
        };
        let hits: Vec<u64> = index
            .search(&Filter::default(), &page, 0)
            .hits
            .iter()
            .map(|h| h.index)
            .collect();
        assert_eq!(hits, [origin + 9, origin + 3]);
        let after = PageRequest {
            after: Some(origin + 9),
            ..page
        };
        assert_eq!(index.search(&Filter::default(), &after, 0).hits.len(), 1);
        let before_origin = PageRequest {
            after: Some(5),
            ..page
        };
        assert!(
            index
                .search(&Filter::default(), &before_origin, 0)
                .hits
                .is_empty()
        );
        let last = origin + u64::from(u32::MAX);
        assert_eq!(
            index.push(last + 1, Item::Entry(fields(1)), None),
            Err(RowsExhausted)
        );
        index.push(last, Item::Entry(fields(1)), None).unwrap();
        assert_eq!(index.len(), 3);
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
            index.push(i, Item::Entry(fields(i)), at(i)).unwrap();
        }
        index.push(150, Item::Entry(fields(1)), None).unwrap(); // already indexed: ignored
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
