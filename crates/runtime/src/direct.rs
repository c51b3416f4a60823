//! Batched direct get (JetStream ADR-31): many stored messages of a stream in one request, read
//! from any replica without a consumer.
//!
//! async-nats has direct get for one message only. A batch is a raw request to
//! `$JS.API.DIRECT.GET.<STREAM>` with a reply inbox: the server answers with one message per stored
//! message (its subject and sequence in the `Nats-Subject` and `Nats-Sequence` headers, its own
//! headers kept) and ends with an empty status-204 "EOB" message carrying `Nats-Num-Pending`
//! (matching messages left after the last one sent). Nothing to send at all is one status-404
//! message instead; more than [`MAX_RESULTS`] subjects in a `multi_last` is status 413.
//!
//! Two shapes are offered, both bounded in size and time:
//! * [`DirectGet::next_by_subject`]: up to `batch` messages matching a filter from a sequence on,
//!   in sequence order: paging (the next page starts after the last sequence seen).
//! * [`DirectGet::multi_last`]: the last message of each subject matching any of the filters
//!   (optionally as of a sequence): a point read of many keys at once.
//!
//! The stream must allow direct get (`allow_direct`; every KV bucket's stream does). Messages are
//! returned raw; [`StoredMessage::operation`] tells a KV put from a delete or purge marker.

use std::time::Duration;

use async_nats::header::NATS_MARKER_REASON;
use async_nats::jetstream::kv::Operation;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

/// The most messages one batch may ask for (a page of 1,000 plus room to spare; the server takes
/// more, but a bounded reply is what keeps a request's cost known).
pub const MAX_BATCH: usize = 1024;
/// The most subjects one `multi_last` may match (the server's limit, answered with 413 beyond).
pub const MAX_RESULTS: usize = 1024;

const KV_OPERATION: &str = "KV-Operation";
const SUBJECT: &str = "Nats-Subject";
const SEQUENCE: &str = "Nats-Sequence";
const NUM_PENDING: &str = "Nats-Num-Pending";
const END_OF_BATCH: u16 = 204;
const NOT_FOUND: u16 = 404;
const TOO_MANY_RESULTS: u16 = 413;
const NO_RESPONDERS: u16 = 503;

#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    #[error("a batch is 1 to {MAX_BATCH} messages, not {0}")]
    InvalidBatch(usize),
    /// More than [`MAX_RESULTS`] subjects matched a `multi_last` (or were asked for): ask for
    /// fewer at once.
    #[error("more than {MAX_RESULTS} subjects in one multi_last")]
    TooManyResults,
    #[error("no direct get responder for stream {0} (no such stream, or JetStream is down)")]
    NoResponders(String),
    #[error("the server refused the direct get: {code} {description}")]
    Refused { code: u16, description: String },
    #[error("the direct get batch did not end within {0:?}")]
    TimedOut(Duration),
    #[error("malformed direct get reply: {0}")]
    Malformed(String),
    #[error("NATS: {0}")]
    Nats(String),
}

/// One stored message as a direct get returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub subject: String,
    pub sequence: u64,
    /// [`Operation::Put`] unless the message is a KV delete or purge marker (`KV-Operation`) or a
    /// server-made delete marker (`Nats-Marker-Reason`).
    pub operation: Operation,
    pub payload: Bytes,
    pub headers: HeaderMap,
}

/// What one batch request returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub messages: Vec<StoredMessage>,
    /// Matching messages after the last one returned (0 when nothing matched at all).
    pub num_pending: u64,
}

impl Batch {
    /// The sequence to ask from for the messages after this batch, `None` if it was empty.
    pub fn next_sequence(&self) -> Option<u64> {
        self.messages.last().map(|m| m.sequence.saturating_add(1))
    }
}

/// The JSON body of a batched direct get request.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct Request<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_by_subj: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    multi_last: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    up_to_seq: Option<u64>,
    batch: usize,
}

/// One message of the reply, classified.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Message(StoredMessage),
    End { num_pending: u64 },
    NothingFound,
}

/// A batched direct get client on one NATS connection.
#[derive(Debug, Clone)]
pub struct DirectGet {
    client: async_nats::Client,
    timeout: Duration,
}

impl DirectGet {
    /// `timeout` bounds each whole batch, from the request to its end-of-batch message.
    pub fn new(client: async_nats::Client, timeout: Duration) -> Self {
        DirectGet { client, timeout }
    }

    /// Up to `batch` messages of `stream` whose subject matches `filter`, from sequence
    /// `from_seq` on (0 and 1 both mean the start), in sequence order.
    pub async fn next_by_subject(
        &self,
        stream: &str,
        from_seq: u64,
        filter: &str,
        batch: usize,
    ) -> Result<Batch, DirectError> {
        self.batch(
            stream,
            &Request {
                seq: Some(from_seq),
                next_by_subj: Some(filter),
                multi_last: None,
                up_to_seq: None,
                batch,
            },
        )
        .await
    }

    /// The last message of every subject of `stream` matching one of `subjects` (literal
    /// subjects or filters), as of `up_to_seq` when given, in sequence order; at most `batch`.
    /// A subject with no message is simply absent.
    pub async fn multi_last(
        &self,
        stream: &str,
        subjects: &[String],
        batch: usize,
        up_to_seq: Option<u64>,
    ) -> Result<Batch, DirectError> {
        if subjects.len() > MAX_RESULTS {
            return Err(DirectError::TooManyResults);
        }
        if subjects.is_empty() {
            return Ok(Batch::default());
        }
        self.batch(
            stream,
            &Request {
                seq: None,
                next_by_subj: None,
                multi_last: Some(subjects),
                up_to_seq,
                batch,
            },
        )
        .await
    }

    async fn batch(&self, stream: &str, request: &Request<'_>) -> Result<Batch, DirectError> {
        if !(1..=MAX_BATCH).contains(&request.batch) {
            return Err(DirectError::InvalidBatch(request.batch));
        }
        debug_assert!(
            !stream.is_empty() && !stream.contains(['.', '*', '>', ' ']),
            "not a stream name: {stream:?}"
        );
        let payload = serde_json::to_vec(request)
            .map_err(|e| DirectError::Malformed(format!("request: {e}")))?;
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| DirectError::Nats(e.to_string()))?;
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{stream}"),
                inbox,
                payload.into(),
            )
            .await
            .map_err(|e| DirectError::Nats(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut messages = Vec::new();
        loop {
            let next = tokio::time::timeout_at(deadline, replies.next())
                .await
                .map_err(|_| DirectError::TimedOut(self.timeout))?
                .ok_or_else(|| DirectError::Nats("reply subscription closed".into()))?;
            match classify(stream, next)? {
                Reply::Message(m) if messages.len() < request.batch => messages.push(m),
                Reply::Message(_) => {
                    return Err(DirectError::Malformed(format!(
                        "more than the {} messages asked for",
                        request.batch
                    )))
                }
                Reply::End { num_pending } => {
                    return Ok(Batch {
                        messages,
                        num_pending,
                    })
                }
                Reply::NothingFound if messages.is_empty() => return Ok(Batch::default()),
                Reply::NothingFound => {
                    return Err(DirectError::Malformed("not found after messages".into()))
                }
            }
        }
    }
}

/// Classifies one reply message by its status and headers.
fn classify(stream: &str, message: async_nats::Message) -> Result<Reply, DirectError> {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    match message.status.map(|s| s.as_u16()) {
        None | Some(200) => {}
        Some(END_OF_BATCH) => {
            let num_pending = match header(NUM_PENDING) {
                Some(n) => parse_u64(NUM_PENDING, &n)?,
                None => 0,
            };
            return Ok(Reply::End { num_pending });
        }
        Some(NOT_FOUND) => return Ok(Reply::NothingFound),
        Some(TOO_MANY_RESULTS) => return Err(DirectError::TooManyResults),
        Some(NO_RESPONDERS) => return Err(DirectError::NoResponders(stream.to_string())),
        Some(code) => {
            return Err(DirectError::Refused {
                code,
                description: message.description.clone().unwrap_or_default(),
            })
        }
    }
    let subject = header(SUBJECT)
        .ok_or_else(|| DirectError::Malformed(format!("a message without {SUBJECT}")))?;
    let sequence = header(SEQUENCE)
        .ok_or_else(|| DirectError::Malformed(format!("a message without {SEQUENCE}")))
        .and_then(|s| parse_u64(SEQUENCE, &s))?;
    let operation = operation(message.headers.as_ref());
    Ok(Reply::Message(StoredMessage {
        subject,
        sequence,
        operation,
        payload: message.payload,
        headers: message.headers.unwrap_or_default(),
    }))
}

/// A KV delete or purge marker, or a marker the server left (`Nats-Marker-Reason`, e.g. an
/// expired key), is not a value.
fn operation(headers: Option<&HeaderMap>) -> Operation {
    let Some(headers) = headers else {
        return Operation::Put;
    };
    match headers.get(KV_OPERATION).map(|v| v.as_str()) {
        Some("DEL") => return Operation::Delete,
        Some("PURGE") => return Operation::Purge,
        _ => {}
    }
    match headers.get(NATS_MARKER_REASON).map(|v| v.as_str()) {
        Some("Remove") => Operation::Delete,
        Some(_) => Operation::Purge,
        None => Operation::Put,
    }
}

fn parse_u64(what: &str, value: &str) -> Result<u64, DirectError> {
    value
        .trim()
        .parse()
        .map_err(|_| DirectError::Malformed(format!("{what} is not a number: {value:?}")))
}

#[cfg(test)]
#[path = "direct_tests.rs"]
mod tests;
