//! The tantivy index: one document per message (room, seq), holding its current state, and the
//! one rule every write follows (see [`Indexer::apply`]).
//!
//! The body is indexed as the words [`search_terms`] gives (pre-tokenized, so the query, the
//! index and the agent's check share one normaliser), documents only (no positions: a query is
//! a set of whole words). A deleted message keeps a document without words (a tombstone with
//! its version), so a redelivered original can never bring its text back. Each commit records
//! the highest stream sequence it holds in its payload, which says where to resume after a
//! restart and whether the index was lost (`dyschat_runtime::topology::ensure_search_consumer`).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use dyschat_protocol::search::{search_terms, Cursor};
use dyschat_protocol::streams::MessageStreams;

use crate::positions;
use dyschat_protocol::wire::{SearchHit, StoredMessage};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery, TermSetQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, STORED, STRING,
};
use tantivy::tokenizer::{PreTokenizedString, Token};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};

use crate::event::Upsert;

/// The indexing thread's memory budget (tantivy needs at least 15 MB per thread).
const WRITER_MEMORY: usize = 64 * 1024 * 1024;
/// Rooms remembered as deleted (their late entries are not indexed again); past this the set is
/// cleared, which only lets a late entry of a long-deleted room back in until its room's next
/// deletion event, and no user can reach it (no one is a member).
const MAX_DELETED_ROOMS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Dir(String),
}

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    room: Field,
    body: Field,
    sent: Field,
    seq: Field,
    version: Field,
    state: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic),
    );
    let fields = Fields {
        key: b.add_text_field("key", STRING),
        room: b.add_text_field("room", STRING),
        body: b.add_text_field("body", words),
        sent: b.add_i64_field("sent", FAST),
        seq: b.add_u64_field("seq", FAST | STORED),
        version: b.add_u64_field("version", FAST),
        state: b.add_bytes_field("state", STORED),
    };
    (b.build(), fields)
}

fn doc_key(room_id: &str, seq: u64) -> String {
    format!("{room_id}/{seq}")
}

/// The index and its reader; cheap to share (queries take a searcher of the last commit).
#[derive(Clone)]
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl SearchIndex {
    /// Opens the index in `dir`, making the directory and an empty index if there is none.
    pub fn open(dir: &Path) -> Result<SearchIndex, IndexError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| IndexError::Dir(format!("{}: {e}", dir.display())))?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| IndexError::Dir(format!("{}: {e}", dir.display())))?;
        let index = Index::open_or_create(directory, schema)?;
        Self::with(index, fields)
    }

    /// An index in memory (unit tests).
    pub fn in_ram() -> Result<SearchIndex, IndexError> {
        let (schema, fields) = schema();
        Self::with(Index::create_in_ram(schema), fields)
    }

    fn with(index: Index, fields: Fields) -> Result<SearchIndex, IndexError> {
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            index,
            reader,
            fields,
        })
    }

    /// The highest stream sequence the last commit holds, 0 for a new index (one stream).
    pub fn applied(&self) -> Result<u64, IndexError> {
        Ok(self.positions(MessageStreams::SINGLE)?[0])
    }

    /// The highest stream sequence the last commit holds of each partition of `streams`.
    pub fn positions(&self, streams: MessageStreams) -> Result<Vec<u64>, IndexError> {
        let metas = self.index.load_metas()?;
        Ok(positions::decode(metas.payload.as_deref(), streams))
    }

    /// The one writer of the index (tantivy locks the directory: a second process on the same
    /// directory fails here), following one stream.
    pub fn indexer(&self) -> Result<Indexer, IndexError> {
        self.indexer_for(MessageStreams::SINGLE)
    }

    /// The one writer of the index, following every partition of `streams`.
    pub fn indexer_for(&self, streams: MessageStreams) -> Result<Indexer, IndexError> {
        let writer = self.index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let positions = self.positions(streams)?;
        Ok(Indexer {
            index: self.clone(),
            writer,
            deleted_rooms: HashSet::new(),
            high_water: positions.clone(),
            positions,
            streams,
            generation: 0,
        })
    }

    /// The newest `limit` messages of `rooms` holding every one of `terms` (normalised, at least
    /// one), strictly before `before`, newest first; and whether more follow.
    pub fn search(
        &self,
        terms: &[String],
        rooms: &[String],
        before: Option<Cursor>,
        limit: usize,
    ) -> Result<(Vec<SearchHit>, bool), IndexError> {
        if terms.is_empty() || rooms.is_empty() || limit == 0 {
            return Ok((Vec::new(), false));
        }
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(f.body, t),
                    IndexRecordOption::Basic,
                ));
                (Occur::Must, q)
            })
            .collect();
        clauses.push((
            Occur::Must,
            Box::new(TermSetQuery::new(
                rooms.iter().map(|r| Term::from_field_text(f.room, r)),
            )),
        ));
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        // Newest first by (sent, seq); what is not before the cursor sorts last, as `None`.
        let order = move |segment: &tantivy::SegmentReader| {
            let sent = segment.fast_fields().i64("sent").ok();
            let seq = segment.fast_fields().u64("seq").ok();
            move |doc: tantivy::DocId| {
                let cursor = Cursor {
                    sent_ms: sent.as_ref()?.first(doc)?,
                    seq: seq.as_ref()?.first(doc)?,
                };
                match before {
                    Some(b) if cursor >= b => None,
                    _ => Some((cursor.sent_ms, cursor.seq)),
                }
            }
        };
        let top = searcher.search(&query, &TopDocs::with_limit(limit + 1).order_by(order))?;
        let mut hits = Vec::with_capacity(top.len());
        for (key, address) in top {
            if key.is_none() {
                continue;
            }
            if let Some(hit) = self.hit(&searcher, address)? {
                hits.push(hit);
            }
        }
        let more = hits.len() > limit;
        hits.truncate(limit);
        Ok((hits, more))
    }

    fn hit(
        &self,
        searcher: &Searcher,
        address: DocAddress,
    ) -> Result<Option<SearchHit>, IndexError> {
        let doc: TantivyDocument = searcher.doc(address)?;
        let Some(bytes) = doc.get_first(self.fields.state).and_then(|v| v.as_bytes()) else {
            return Ok(None);
        };
        let Ok(message) = serde_json::from_slice::<StoredMessage>(bytes) else {
            return Ok(None);
        };
        let seq = doc
            .get_first(self.fields.seq)
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        Ok(Some(SearchHit {
            room_id: message.room_id.clone(),
            seq,
            message,
        }))
    }

    /// The version the last commit holds for (room, seq), `None` when it holds nothing there.
    fn version_of(
        &self,
        searcher: &Searcher,
        room_id: &str,
        seq: u64,
    ) -> Result<Option<u64>, IndexError> {
        let term = Term::from_field_text(self.fields.key, &doc_key(room_id, seq));
        let query = TermQuery::new(term, IndexRecordOption::Basic);
        let top = searcher.search(
            &query,
            &TopDocs::with_limit(1).order_by_u64_field("version", tantivy::Order::Desc),
        )?;
        Ok(top.into_iter().next().map(|(v, _)| v.unwrap_or(0)))
    }
}

/// Writes to the index; owned by the consumer.
pub struct Indexer {
    index: SearchIndex,
    writer: IndexWriter,
    deleted_rooms: HashSet<String>,
    /// The highest stream sequence of any entry the index was given: every state it holds came
    /// from an entry at or below it. An entry above it is the first word about its message at
    /// that version (a message comes before its changes in the stream), so it needs no look-up:
    /// only redeliveries do. One per partition: sequences are each stream's own.
    high_water: Vec<u64>,
    /// Each partition's position, as committed.
    positions: Vec<u64>,
    streams: MessageStreams,
    /// How many times the index was cleared: a partition's follower that started before a
    /// clear starts over (its consumer is ahead of the emptied index).
    generation: u64,
}

/// What one [`Indexer::apply`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// States written (new or newer).
    pub written: usize,
    /// States skipped: not newer than what the index holds (redeliveries, duplicates, late
    /// entries) or of a deleted room.
    pub skipped: usize,
}

impl Indexer {
    pub fn index(&self) -> &SearchIndex {
        &self.index
    }

    /// Partition `k`'s position, as committed.
    pub fn position(&self, k: u16) -> u64 {
        self.positions.get(usize::from(k)).copied().unwrap_or(0)
    }

    /// How many times the index was cleared.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// [`Self::apply_partition`] of the first (or only) stream.
    pub fn apply(
        &mut self,
        upserts: Vec<Upsert>,
        deleted_rooms: Vec<String>,
        applied: u64,
    ) -> Result<Applied, IndexError> {
        self.apply_partition(0, upserts, deleted_rooms, applied)
    }

    /// Applies `upserts` (in stream order) and `deleted_rooms`, then commits with `applied` (the
    /// highest stream sequence of the batch) as the index's position, and makes the commit
    /// visible to queries. The rule: a state replaces what the index holds at its (room, seq)
    /// only if the index holds nothing there or a lower version; so duplicates, redeliveries
    /// and entries out of order end in the same index. An edit replaces the words; a deletion
    /// leaves a tombstone without words.
    /// `upserts` are partition `k`'s entries.
    pub fn apply_partition(
        &mut self,
        k: u16,
        upserts: Vec<Upsert>,
        deleted_rooms: Vec<String>,
        applied: u64,
    ) -> Result<Applied, IndexError> {
        let k = usize::from(k).min(self.high_water.len().saturating_sub(1));
        let f = self.index.fields;
        let searcher = self.index.reader.searcher();
        let mut outcome = Applied::default();
        // What this batch wrote, which the searcher of the last commit cannot see yet.
        let mut pending: HashMap<(String, u64), u64> = HashMap::new();
        for room in deleted_rooms {
            self.writer
                .delete_term(Term::from_field_text(f.room, &room));
            pending.retain(|(r, _), _| *r != room);
            if self.deleted_rooms.len() >= MAX_DELETED_ROOMS {
                self.deleted_rooms.clear();
            }
            self.deleted_rooms.insert(room);
        }
        for up in upserts {
            if self.deleted_rooms.contains(&up.room_id) {
                outcome.skipped += 1;
                continue;
            }
            let place = (up.room_id.clone(), up.seq);
            let entry_seq = up.version.max(up.seq);
            let fresh = entry_seq > self.high_water[k];
            self.high_water[k] = self.high_water[k].max(entry_seq);
            let held = if fresh {
                None
            } else {
                match pending.get(&place) {
                    Some(v) => Some(*v),
                    None => self.index.version_of(&searcher, &up.room_id, up.seq)?,
                }
            };
            if held.is_some_and(|v| v >= up.version) {
                outcome.skipped += 1;
                continue;
            }
            let key = doc_key(&up.room_id, up.seq);
            // A fresh change replaces whatever the index holds of its message (all older).
            if held.is_some() || (fresh && up.version > 0) {
                self.writer.delete_term(Term::from_field_text(f.key, &key));
            }
            self.writer.add_document(self.document(&key, &up))?;
            pending.insert(place, up.version);
            outcome.written += 1;
        }
        let mut commit = self.writer.prepare_commit()?;
        self.positions[k] = applied;
        commit.set_payload(&positions::encode(&self.positions, self.streams));
        commit.commit()?;
        self.index.reader.reload()?;
        Ok(outcome)
    }

    /// Removes every document (the stream the index followed is gone) and commits position 0.
    pub fn clear(&mut self) -> Result<(), IndexError> {
        self.writer.delete_all_documents()?;
        self.high_water.iter_mut().for_each(|h| *h = 0);
        self.positions.iter_mut().for_each(|p| *p = 0);
        self.generation += 1;
        let mut commit = self.writer.prepare_commit()?;
        commit.set_payload(&positions::encode(&self.positions, self.streams));
        commit.commit()?;
        self.index.reader.reload()?;
        Ok(())
    }

    fn document(&self, key: &str, up: &Upsert) -> TantivyDocument {
        let f = self.index.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.key, key);
        doc.add_text(f.room, &up.room_id);
        let words = if up.state.deleted {
            Vec::new()
        } else {
            search_terms(&up.state.body)
        };
        let tokens = words
            .into_iter()
            .enumerate()
            .map(|(position, text)| Token {
                offset_from: 0,
                offset_to: 0,
                position,
                text,
                position_length: 1,
            })
            .collect();
        doc.add_pre_tokenized_text(
            f.body,
            PreTokenizedString {
                text: String::new(),
                tokens,
            },
        );
        doc.add_i64(f.sent, dyschat_protocol::search::sent_ms(&up.state.sent_at));
        doc.add_u64(f.seq, up.seq);
        doc.add_u64(f.version, up.version);
        let state = serde_json::to_vec(&up.state).unwrap_or_default();
        doc.add_bytes(f.state, &state);
        doc
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
