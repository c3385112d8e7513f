//! A read-through cache of `documents` rows by id, in front of the hottest
//! read (every SignedUrl, Thumbnail, Delete, Metadata and GetDocument starts
//! with it). A hit costs a hash lookup instead of a trip through the pool to
//! a database connection (on SQLite, a hand-off to the connection's own
//! thread and back, twice).
//!
//! Correctness rests on three rules:
//! - every write that changes or removes a row in this process invalidates
//!   it after it committed (`Database::delete_document`,
//!   `Database::receive_event`), and on PostgreSQL notifies the other
//!   replicas, which invalidate it when the notification arrives;
//! - a row read from the database is stored only if no invalidation
//!   happened since the read began (a generation counter, checked and
//!   bumped under one lock), so a read racing a delete cannot put the
//!   deleted row back;
//! - on PostgreSQL the cache serves and stores rows only while this
//!   process listens for the other replicas' changes: it starts suspended,
//!   resumes (empty) once the listener is connected, is cleared when the
//!   listener reconnects (notifications may have been lost) and suspended
//!   when the listener fails, until it is back;
//! - entries expire after a TTL, which bounds staleness if all else fails.
//!
//! Missing rows are not cached: a NOT_FOUND always asks the database.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::db::DocumentRow;

/// Default number of rows kept.
pub const DEFAULT_ENTRIES: usize = 10_000;
/// Default time a row is served from memory before it is read again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// See the module documentation.
pub struct DocumentCache {
    /// `None` when the cache is disabled (zero entries).
    rows: Option<quick_cache::sync::Cache<String, Cached>>,
    ttl: Duration,
    /// Bumped by every invalidation. Held while storing a row, so a store
    /// and an invalidation never interleave.
    generation: Mutex<u64>,
    /// Whether rows may be served and stored (see the module docs);
    /// changed only under the generation lock.
    live: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Clone)]
struct Cached {
    row: DocumentRow,
    stored_at: Instant,
}

/// A ticket taken before reading a row from the database: the row may be
/// stored only if nothing was invalidated since.
#[derive(Debug, Clone, Copy)]
pub struct ReadTicket(u64);

/// Hit and miss counters, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    /// Whether rows are served and stored (see [`DocumentCache::suspend`]).
    pub live: bool,
}

impl DocumentCache {
    /// A cache of at most `entries` rows (0 disables it), each served for
    /// at most `ttl`.
    pub fn new(entries: usize, ttl: Duration) -> Self {
        let enabled = entries > 0 && !ttl.is_zero();
        Self {
            rows: enabled.then(|| quick_cache::sync::Cache::new(entries)),
            ttl,
            generation: Mutex::new(0),
            live: AtomicBool::new(true),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached row, if present and younger than the TTL.
    pub fn get(&self, id: &str) -> Option<DocumentRow> {
        let rows = self.rows.as_ref()?;
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        match rows.get(id) {
            Some(cached) if cached.stored_at.elapsed() < self.ttl => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(cached.row)
            }
            _ => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Taken before a database read whose row may be stored.
    pub fn ticket(&self) -> ReadTicket {
        ReadTicket(*self.generation())
    }

    /// Stores `row`, read under `ticket`, unless an invalidation happened
    /// since the ticket was taken.
    pub fn store(&self, ticket: ReadTicket, row: &DocumentRow) {
        let Some(rows) = &self.rows else { return };
        let generation = self.generation();
        if *generation == ticket.0 && self.live.load(Ordering::Acquire) {
            rows.insert(
                row.id.clone(),
                Cached {
                    row: row.clone(),
                    stored_at: Instant::now(),
                },
            );
        }
    }

    /// Forgets the row `id` (after a committed change to it).
    pub fn invalidate(&self, id: &str) {
        let mut generation = self.generation();
        *generation += 1;
        if let Some(rows) = &self.rows {
            rows.remove(id);
        }
    }

    /// Forgets every row (when changes may have been missed).
    pub fn clear(&self) {
        self.reset(true);
    }

    /// Stops serving and storing rows, and forgets them (changes made
    /// elsewhere can no longer be heard of).
    pub fn suspend(&self) {
        self.reset(false);
    }

    /// Serves and stores rows again, starting empty.
    pub fn resume(&self) {
        self.reset(true);
    }

    fn reset(&self, live: bool) {
        let mut generation = self.generation();
        *generation += 1;
        self.live.store(live, Ordering::Release);
        if let Some(rows) = &self.rows {
            rows.clear();
        }
    }

    /// The generation lock (a panic elsewhere while holding it leaves the
    /// counter valid).
    fn generation(&self) -> MutexGuard<'_, u64> {
        self.generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.rows.as_ref().map_or(0, |rows| rows.len() as u64),
            live: self.live.load(Ordering::Acquire),
        }
    }
}

impl std::fmt::Debug for DocumentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentCache")
            .field("enabled", &self.rows.is_some())
            .field("ttl", &self.ttl)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, size: i64) -> DocumentRow {
        DocumentRow {
            id: id.into(),
            owner: "alice".into(),
            handle: format!("h{id}"),
            url: String::new(),
            filename: "a.bin".into(),
            content_type: "application/octet-stream".into(),
            size_bytes: size,
            sha256: None,
            request_id: None,
            origin: "upload".into(),
            created_at: 0,
        }
    }

    #[test]
    fn a_stored_row_is_served_until_invalidated() {
        let cache = DocumentCache::new(16, DEFAULT_TTL);
        assert_eq!(cache.get("d1"), None);
        cache.store(cache.ticket(), &row("d1", 1));
        assert_eq!(cache.get("d1"), Some(row("d1", 1)));
        cache.invalidate("d1");
        assert_eq!(cache.get("d1"), None);
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 1,
                misses: 2,
                entries: 0,
                live: true,
            }
        );
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_stored() {
        let cache = DocumentCache::new(16, DEFAULT_TTL);
        // A reader takes its ticket and reads the row; meanwhile the row
        // is deleted and invalidated; the reader's late store must not
        // bring the deleted row back.
        let ticket = cache.ticket();
        cache.invalidate("d1");
        cache.store(ticket, &row("d1", 1));
        assert_eq!(cache.get("d1"), None);
        // A read that starts after the invalidation is stored.
        cache.store(cache.ticket(), &row("d1", 2));
        assert_eq!(cache.get("d1"), Some(row("d1", 2)));
    }

    #[test]
    fn clear_forgets_every_row_and_voids_reads_in_flight() {
        let cache = DocumentCache::new(16, DEFAULT_TTL);
        cache.store(cache.ticket(), &row("d1", 1));
        let ticket = cache.ticket();
        cache.clear();
        cache.store(ticket, &row("d2", 1));
        assert_eq!(cache.get("d1"), None);
        assert_eq!(cache.get("d2"), None);
    }

    #[test]
    fn an_entry_older_than_the_ttl_is_not_served() {
        let cache = DocumentCache::new(16, Duration::from_nanos(1));
        cache.store(cache.ticket(), &row("d1", 1));
        let stored = Instant::now();
        while stored.elapsed() < Duration::from_micros(10) {
            std::hint::spin_loop();
        }
        assert_eq!(cache.get("d1"), None);
    }

    #[test]
    fn a_suspended_cache_serves_and_stores_nothing_until_resumed() {
        let cache = DocumentCache::new(16, DEFAULT_TTL);
        cache.store(cache.ticket(), &row("d1", 1));
        let ticket = cache.ticket();
        cache.suspend();
        assert_eq!(cache.get("d1"), None, "suspending forgets");
        cache.store(ticket, &row("d2", 1));
        cache.store(cache.ticket(), &row("d3", 1));
        let read_while_suspended = cache.ticket();
        cache.resume();
        cache.store(read_while_suspended, &row("d4", 1));
        for id in ["d1", "d2", "d3", "d4"] {
            assert_eq!(cache.get(id), None, "{id} was not stored");
        }
        cache.store(cache.ticket(), &row("d5", 1));
        assert_eq!(cache.get("d5"), Some(row("d5", 1)));
    }

    #[test]
    fn zero_entries_disables_the_cache() {
        let cache = DocumentCache::new(0, DEFAULT_TTL);
        cache.store(cache.ticket(), &row("d1", 1));
        assert_eq!(cache.get("d1"), None);
        assert_eq!(cache.stats().entries, 0);
    }
}
