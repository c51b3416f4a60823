//! Pages over a stream: the cursor, the page size, and the assembly of a page from batched direct
//! gets (room members, the room list).
//!
//! A page is read with `next_by_subj` from the cursor's stream sequence on, so its cost depends
//! on the page, never on how many entries precede it. Delete markers (a member who left) are
//! skipped, so one page may take several batches; it takes at most [`MAX_ROUNDS`], and may then
//! be shorter than asked while `next_cursor` is not null: only a null cursor means the end.
//!
//! A small room's page is cut from a snapshot of all its keys instead ([`snapshot_page`]): the
//! server finds those through its subject index, where `next_by_subj` would scan the stream
//! between the room's records (which other rooms' records fill).

use dyschat_protocol::{ids, ApiError};
use dyschat_runtime::direct::{Batch, StoredMessage};

use async_nats::jetstream::kv::Operation;

/// The most batches one page reads (markers only cost a round each, never a full scan).
pub(crate) const MAX_ROUNDS: usize = 8;

/// Where the next page starts: a stream sequence, sent as an opaque decimal string (which passes
/// the id rule, so edges that validate cursors as ids accept it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Cursor(pub u64);

impl Cursor {
    /// The cursor of a request: `None` (or empty) is the first page; anything but a sequence
    /// this service made is 400.
    pub fn parse(cursor: Option<&str>) -> Result<Cursor, ApiError> {
        let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
            return Ok(Cursor::default());
        };
        ids::validate_id("cursor", cursor)?;
        cursor
            .parse()
            .map(Cursor)
            .map_err(|_| ApiError::bad_request("cursor is not one this service returned"))
    }

    pub fn encode(self) -> String {
        self.0.to_string()
    }
}

/// The page size of a request: `0` means `default`, above `max` is 400.
pub(crate) fn limit(asked: usize, default: usize, max: usize) -> Result<usize, ApiError> {
    match asked {
        0 => Ok(default),
        n if n <= max => Ok(n),
        _ => Err(ApiError::bad_request(format!("limit must be 1 to {max}"))),
    }
}

/// One page cut from a snapshot of every entry (`multi_last` of a small room's keys, in sequence
/// order): the values from `cursor` on, at most `limit`, and the cursor after the last one taken
/// when more values follow. Same cursor as [`Page`], so a listing may switch between the two.
pub(crate) fn snapshot_page<T, E>(
    entries: &[StoredMessage],
    cursor: Cursor,
    limit: usize,
    mut decode: impl FnMut(&StoredMessage) -> Result<Option<T>, E>,
) -> Result<(Vec<T>, Option<Cursor>), E> {
    let mut items = Vec::new();
    let mut values = entries
        .iter()
        .filter(|m| m.sequence >= cursor.0 && m.operation == Operation::Put);
    let mut last = None;
    for message in values.by_ref() {
        if items.len() == limit {
            return Ok((items, last.map(|s: u64| Cursor(s.saturating_add(1)))));
        }
        if let Some(item) = decode(message)? {
            items.push(item);
            last = Some(message.sequence);
        }
    }
    Ok((items, None))
}

/// A page being read: the entries so far, and where to read on from.
#[derive(Debug)]
pub(crate) struct Page<T> {
    from: u64,
    limit: usize,
    items: Vec<T>,
    rounds: usize,
    done: bool,
}

impl<T> Page<T> {
    pub fn new(cursor: Cursor, limit: usize) -> Self {
        Page {
            from: cursor.0,
            limit,
            items: Vec::with_capacity(limit.min(1024)),
            rounds: 0,
            done: false,
        }
    }

    /// The sequence and batch size of the next read, `None` when the page is complete.
    pub fn next_read(&self) -> Option<(u64, usize)> {
        let missing = self.limit.saturating_sub(self.items.len());
        (!self.done && missing > 0 && self.rounds < MAX_ROUNDS).then_some((self.from, missing))
    }

    /// Takes in one batch: every value (not marker) decoded by `decode` (`None` to skip one).
    pub fn absorb<E>(
        &mut self,
        batch: Batch,
        mut decode: impl FnMut(&StoredMessage) -> Result<Option<T>, E>,
    ) -> Result<(), E> {
        self.rounds += 1;
        if batch.messages.is_empty() {
            self.done = true;
            return Ok(());
        }
        for message in &batch.messages {
            self.from = message.sequence.saturating_add(1);
            if message.operation == Operation::Put {
                if let Some(item) = decode(message)? {
                    self.items.push(item);
                }
            }
        }
        if batch.num_pending == 0 {
            self.done = true;
        }
        Ok(())
    }

    /// The entries and the cursor of the next page (`None` on the last one).
    pub fn finish(self) -> (Vec<T>, Option<Cursor>) {
        let next = (!self.done).then_some(Cursor(self.from));
        (self.items, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn message(sequence: u64, operation: Operation) -> StoredMessage {
        StoredMessage {
            subject: format!("s.{sequence}"),
            sequence,
            operation,
            payload: Bytes::new(),
            headers: Default::default(),
        }
    }

    fn batch(seqs: &[(u64, Operation)], num_pending: u64) -> Batch {
        Batch {
            messages: seqs.iter().map(|(s, op)| message(*s, *op)).collect(),
            num_pending,
        }
    }

    fn seq(m: &StoredMessage) -> Result<Option<u64>, ()> {
        Ok(Some(m.sequence))
    }

    #[test]
    fn cursors_are_sequences_in_decimal() {
        assert_eq!(Cursor::parse(None).unwrap(), Cursor(0));
        assert_eq!(Cursor::parse(Some("")).unwrap(), Cursor(0));
        assert_eq!(Cursor::parse(Some("42")).unwrap(), Cursor(42));
        assert_eq!(Cursor(42).encode(), "42");
        assert!(ids::is_valid_id(&Cursor(u64::MAX).encode()));
        for bad in ["a.b", "-1", "01JABC", "99999999999999999999999"] {
            assert!(Cursor::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_default_and_cap() {
        assert_eq!(limit(0, 1000, 1000).unwrap(), 1000);
        assert_eq!(limit(1, 1000, 1000).unwrap(), 1);
        assert_eq!(limit(1000, 1000, 1000).unwrap(), 1000);
        assert!(limit(1001, 1000, 1000).is_err());
    }

    #[test]
    fn a_page_skips_markers_and_reads_on_until_full() {
        let mut page = Page::new(Cursor(0), 3);
        assert_eq!(page.next_read(), Some((0, 3)));
        let first = batch(
            &[
                (1, Operation::Put),
                (2, Operation::Delete),
                (4, Operation::Put),
            ],
            5,
        );
        page.absorb(first, seq).unwrap();
        // Two values and a marker: one more is read, from after the last sequence seen.
        assert_eq!(page.next_read(), Some((5, 1)));
        page.absorb(batch(&[(6, Operation::Put)], 4), seq).unwrap();
        assert_eq!(page.next_read(), None);
        let (items, next) = page.finish();
        assert_eq!(items, [1, 4, 6]);
        assert_eq!(next, Some(Cursor(7)));
    }

    #[test]
    fn nothing_pending_is_the_last_page_even_when_full() {
        let mut page = Page::new(Cursor(7), 2);
        page.absorb(batch(&[(7, Operation::Put), (9, Operation::Put)], 0), seq)
            .unwrap();
        assert_eq!(page.finish(), (vec![7, 9], None));
    }

    #[test]
    fn an_empty_batch_ends_the_listing() {
        let mut page = Page::<u64>::new(Cursor(100), 10);
        page.absorb(Batch::default(), seq).unwrap();
        assert_eq!(page.next_read(), None);
        assert_eq!(page.finish(), (vec![], None));
    }

    #[test]
    fn a_run_of_markers_costs_bounded_rounds() {
        let mut page = Page::<u64>::new(Cursor(0), 2);
        let mut s = 0;
        while let Some((from, n)) = page.next_read() {
            assert_eq!(from, s);
            let markers: Vec<(u64, Operation)> =
                (0..n as u64).map(|i| (s + i, Operation::Purge)).collect();
            s += n as u64;
            page.absorb(batch(&markers, 1000), seq).unwrap();
        }
        let (items, next) = page.finish();
        assert!(items.is_empty());
        assert_eq!(next, Some(Cursor(2 * MAX_ROUNDS as u64)));
    }

    #[test]
    fn a_snapshot_pages_like_a_stream() {
        let entries = batch(
            &[
                (2, Operation::Put),
                (5, Operation::Delete),
                (7, Operation::Put),
                (9, Operation::Put),
            ],
            0,
        )
        .messages;
        let all = snapshot_page(&entries, Cursor(0), 10, seq).unwrap();
        assert_eq!(all, (vec![2, 7, 9], None));
        let first = snapshot_page(&entries, Cursor(0), 2, seq).unwrap();
        assert_eq!(first, (vec![2, 7], Some(Cursor(8))));
        let rest = snapshot_page(&entries, Cursor(8), 2, seq).unwrap();
        assert_eq!(rest, (vec![9], None));
        // An exact fit has no next page; a cursor past the end is an empty last page.
        assert_eq!(
            snapshot_page(&entries, Cursor(3), 2, seq).unwrap(),
            (vec![7, 9], None)
        );
        assert_eq!(
            snapshot_page(&entries, Cursor(10), 2, seq).unwrap(),
            (vec![], None)
        );
    }

    #[test]
    fn decode_may_skip_and_fail() {
        let mut page = Page::new(Cursor(0), 5);
        let odd_only = |m: &StoredMessage| Ok::<_, ()>((m.sequence % 2 == 1).then_some(m.sequence));
        page.absorb(
            batch(&[(1, Operation::Put), (2, Operation::Put)], 0),
            odd_only,
        )
        .unwrap();
        assert_eq!(page.finish().0, [1]);
        let mut page = Page::<u64>::new(Cursor(0), 5);
        let failing = |_: &StoredMessage| Err::<Option<u64>, _>("corrupt");
        assert_eq!(
            page.absorb(batch(&[(1, Operation::Put)], 0), failing),
            Err("corrupt")
        );
    }
}
