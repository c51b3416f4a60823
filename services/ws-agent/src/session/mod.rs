//! One WebSocket connection, from authentication to close.
//!
//! The loop is generic over the socket's `Stream` and `Sink` halves so it runs over an axum
//! WebSocket in production and over in-memory channels in unit tests. Reading and writing are
//! separate tasks joined by the socket's bounded queue ([`SocketHandle`]); frames are handled in
//! the order they arrive, except that a `send` only waits for its publish to leave, and its `ack`
//! follows when JetStream confirms the store.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes};
use dyschat_protocol::{
    wire::{decode_client_frame, ClientFrame, ServerFrame, MAX_FRAME_BYTES},
    ApiError,
};
use dyschat_runtime::metric;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::Semaphore;

use crate::core::{revocation::Attachment, Core, Edit, Outgoing, SocketRooms, User};
use crate::socket::{OutFrame, SocketHandle, CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TOO_BIG};

pub(crate) use writer::WriterSettings;
use writer::{close, write_loop, CLOSE_TIMEOUT};

/// How long a socket opened without a token has to send its `auth` frame.
pub(crate) const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// The most sends of one socket waiting for their store acknowledgement.
pub(crate) const MAX_PENDING_SENDS: usize = 256;

fn text(frame: &ServerFrame) -> WsMessage {
    WsMessage::Text(Utf8Bytes::from(frame.to_json()))
}

/// A read error of the socket's stream, told apart by its type.
pub(crate) trait ReadError: std::fmt::Display {
    /// The peer sent a frame over the WebSocket layer's size limit (closed with 1009).
    fn is_too_large(&self) -> bool;
}

impl ReadError for axum::Error {
    fn is_too_large(&self) -> bool {
        use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
        std::error::Error::source(self)
            .and_then(|e| e.downcast_ref::<Error>())
            .is_some_and(|e| matches!(e, Error::Capacity(CapacityError::MessageTooLong { .. })))
    }
}

/// Runs a connection to its end. `user` is set when the token came in the URL.
pub(crate) async fn run<R, W, E>(core: Arc<Core>, mut reader: R, mut writer: W, user: Option<User>)
where
    R: Stream<Item = Result<WsMessage, E>> + Unpin + Send,
    W: Sink<WsMessage> + Unpin + Send + 'static,
    E: ReadError,
{
    let (user, reference) = match user {
        Some(user) => (user, None),
        // The deadline covers the whole exchange, the answers written to the socket included:
        // a client that does not read cannot hold an unauthenticated socket open.
        None => match tokio::time::timeout(
            AUTH_TIMEOUT + CLOSE_TIMEOUT,
            Box::pin(authenticate(&core, &mut reader, &mut writer)),
        )
        .await
        {
            Ok(Some(authenticated)) => authenticated,
            Ok(None) | Err(_) => return,
        },
    };
    // Held until the connection ends. The upgrade already refused a user at the bound with a
    // 429; this catches sockets that raced past that check and those that authenticated late.
    let _slot = match core.limits.sockets.try_open(&user.user_id) {
        Ok(slot) => slot,
        Err(e) => {
            let _ = writer.send(text(&ServerFrame::error(e, reference))).await;
            close(&mut writer, CLOSE_POLICY).await;
            return;
        }
    };
    let (socket, rx) = SocketHandle::new(user.user_id.clone(), core.socket_queue);
    let writer_task = tokio::spawn(write_loop(writer, rx, socket.clone(), core.writer));
    metrics::gauge!(metric::WS_SOCKETS_OPEN).increment(1.0);
    // Listed under its token from now on: a logout of that token closes this socket.
    let token = core.revocations.attach(&user.token_id, socket.clone());
    Box::pin(core.presence.opened(&user.user_id)).await;
    // Before `ready`: a read on another device right after it reaches this socket too.
    core.user_sockets.attach(&socket).await;
    socket.push(OutFrame::new(&ServerFrame::Ready {
        user_id: user.user_id.clone(),
        username: user.username.clone(),
        reference,
    }));

    let mut session = Session {
        core: core.clone(),
        socket: socket.clone(),
        user,
        rooms: SocketRooms::new(socket.clone()),
        sends: Arc::new(Semaphore::new(MAX_PENDING_SENDS)),
        token,
    };
    session.read_loop(&mut reader).await;

    session.rooms.detach_all(&core);
    core.user_sockets.detach(&socket);
    Box::pin(core.presence.closed(&session.user.user_id)).await;
    metrics::gauge!(metric::WS_SOCKETS_OPEN).decrement(1.0);
    socket.close(1000);
    // The writer sends what is left within its own deadlines; if it is still stuck after that,
    // it is stopped, and with it the connection and everything it held.
    let abort = writer_task.abort_handle();
    if tokio::time::timeout(core.writer.write_timeout + CLOSE_TIMEOUT * 2, writer_task)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// Waits for a valid `auth` frame. Other frames get `unauthorized` and the socket stays open;
/// after [`AUTH_TIMEOUT`] the socket is closed with 1008.
async fn authenticate<R, W, E>(
    core: &Core,
    reader: &mut R,
    writer: &mut W,
) -> Option<(User, Option<String>)>
where
    R: Stream<Item = Result<WsMessage, E>> + Unpin,
    W: Sink<WsMessage> + Unpin,
    E: ReadError,
{
    let deadline = tokio::time::sleep(AUTH_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        let incoming = tokio::select! {
            _ = &mut deadline => {
                let err = ApiError::unauthorized("no auth frame within 10 seconds");
                let _ = writer.send(text(&ServerFrame::error(err, None))).await;
                close(writer, CLOSE_POLICY).await;
                return None;
            }
            incoming = reader.next() => incoming,
        };
        let raw = match incoming {
            Some(Ok(WsMessage::Text(t))) => t,
            Some(Err(e)) if e.is_too_large() => {
                close(writer, CLOSE_TOO_BIG).await;
                return None;
            }
            Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(WsMessage::Binary(b))) if b.len() > MAX_FRAME_BYTES => {
                close(writer, CLOSE_TOO_BIG).await;
                return None;
            }
            Some(Ok(_)) => continue,
        };
        if raw.len() > MAX_FRAME_BYTES {
            close(writer, CLOSE_TOO_BIG).await;
            return None;
        }
        let answer = match decode_client_frame(&raw) {
            Ok(inbound) => match inbound.frame {
                ClientFrame::Auth { token } => match core.authenticate(&token).await {
                    Ok(user) => return Some((user, inbound.reference)),
                    Err(e) => ServerFrame::error(e.into(), inbound.reference),
                },
                ClientFrame::Ping {} => ServerFrame::Pong {
                    reference: inbound.reference,
                },
                _ => ServerFrame::error(
                    ApiError::unauthorized("authenticate first with an auth frame"),
                    inbound.reference,
                ),
            },
            Err(e) => ServerFrame::error(e.error, e.reference),
        };
        if writer.send(text(&answer)).await.is_err() {
            return None;
        }
    }
}

mod handlers;
#[cfg(test)]
mod tests;
mod writer;

/// The per-connection state the frame handlers work on.
struct Session {
    core: Arc<Core>,
    socket: SocketHandle,
    user: User,
    rooms: SocketRooms,
    sends: Arc<Semaphore>,
    /// The socket's listing under the token it is authenticated with (replaced when a fresh
    /// token re-authenticates it).
    token: Attachment,
}

impl Session {
    async fn read_loop<R, E>(&mut self, reader: &mut R)
    where
        R: Stream<Item = Result<WsMessage, E>> + Unpin,
        E: ReadError,
    {
        let closing = self.socket.closing().clone();
        let shutdown = self.core.shutdown.clone();
        loop {
            let expiry = expiry_sleep(self.user.expires);
            let incoming = tokio::select! {
                _ = closing.cancelled() => return,
                _ = shutdown.cancelled() => {
                    self.socket.close(CLOSE_GOING_AWAY);
                    return;
                }
                _ = expiry => {
                    self.reply(ServerFrame::error(ApiError::unauthorized("token expired"), None));
                    self.socket.close(CLOSE_POLICY);
                    return;
                }
                incoming = reader.next() => incoming,
            };
            self.socket.heard();
            match incoming {
                None | Some(Ok(WsMessage::Close(_))) => return,
                Some(Err(e)) => {
                    if e.is_too_large() {
                        self.socket.close(CLOSE_TOO_BIG);
                    } else {
                        tracing::debug!(error = %e, "socket read failed");
                    }
                    return;
                }
                Some(Ok(WsMessage::Text(raw))) if raw.len() > MAX_FRAME_BYTES => {
                    self.socket.close(CLOSE_TOO_BIG);
                    return;
                }
                Some(Ok(WsMessage::Binary(raw))) if raw.len() > MAX_FRAME_BYTES => {
                    self.socket.close(CLOSE_TOO_BIG);
                    return;
                }
                Some(Ok(WsMessage::Text(raw))) => match decode_client_frame(&raw) {
                    Ok(inbound) => {
                        metrics::counter!(metric::WS_FRAMES_IN_TOTAL, "type" => inbound.frame.kind())
                            .increment(1);
                        // Boxed: the handlers' futures (join's replay, publish, history) are
                        // several KiB, and inline they would make every idle socket's task that
                        // big; one allocation per frame is cheap beside the frame's work.
                        Box::pin(self.handle(inbound.frame, inbound.reference)).await
                    }
                    Err(e) => {
                        metrics::counter!(metric::WS_FRAMES_IN_TOTAL, "type" => "invalid")
                            .increment(1);
                        self.reply(ServerFrame::error(e.error, e.reference))
                    }
                },
                Some(Ok(WsMessage::Binary(_))) => self.reply(ServerFrame::error(
                    ApiError::bad_request("binary frames are not supported; send JSON text frames"),
                    None,
                )),
                Some(Ok(_)) => {} // ping and pong are answered by the WebSocket layer
            }
        }
    }

    fn reply(&self, frame: ServerFrame) {
        if let ServerFrame::Error { code, .. } = &frame {
            metrics::counter!(metric::ERRORS_TOTAL, "code" => code.as_str(), "edge" => "ws")
                .increment(1);
        }
        self.socket.push(OutFrame::new(&frame));
    }

    async fn handle(&mut self, frame: ClientFrame, reference: Option<String>) {
        // A send takes from the send budget (in the core); every other frame from the request
        // budget, so no frame type is unlimited.
        if !matches!(frame, ClientFrame::Send { .. }) {
            if let Err(e) = self
                .core
                .limits
                .check(crate::limits::Class::Request, &self.user.user_id)
                .await
            {
                self.reply(ServerFrame::error(e, reference));
                return;
            }
        }
        let result = match frame {
            ClientFrame::Auth { token } => self.reauthenticate(&token, reference.clone()).await,
            ClientFrame::Join { room_id, since } => {
                self.join(&room_id, since, reference.clone()).await
            }
            ClientFrame::Leave { room_id } => self.leave(&room_id, reference.clone()).await,
            ClientFrame::Send {
                room_id,
                body,
                client_msg_id,
                reply_to,
                attachments,
            } => {
                let out = Outgoing {
                    room_id,
                    body,
                    client_msg_id,
                    reply_to,
                    attachments: attachments.unwrap_or_default(),
                };
                self.send(out, reference.clone()).await
            }
            ClientFrame::Edit { room_id, seq, body } => {
                self.change(&room_id, seq, Edit::Body(body), reference.clone())
                    .await
            }
            ClientFrame::Delete { room_id, seq } => {
                self.change(&room_id, seq, Edit::Delete, reference.clone())
                    .await
            }
            ClientFrame::React {
                room_id,
                seq,
                emoji,
            } => {
                self.change(&room_id, seq, Edit::React(emoji), reference.clone())
                    .await
            }
            ClientFrame::Unreact {
                room_id,
                seq,
                emoji,
            } => {
                self.change(&room_id, seq, Edit::Unreact(emoji), reference.clone())
                    .await
            }
            ClientFrame::Typing { room_id } => self.typing(&room_id).await,
            ClientFrame::History {
                room_id,
                before,
                limit,
            } => {
                self.history(&room_id, before, limit, reference.clone())
                    .await
            }
            ClientFrame::Read { room_id, seq } => self.read(&room_id, seq, reference.clone()).await,
            ClientFrame::Ping {} => {
                self.reply(ServerFrame::Pong {
                    reference: reference.clone(),
                });
                Ok(())
            }
        };
        if let Err(e) = result {
            self.reply(ServerFrame::error(e.into(), reference));
        }
    }
}

/// Sleeps until the token's expiry (unix seconds).
async fn expiry_sleep(expires: i64) {
    let now = chrono::Utc::now().timestamp();
    let secs = u64::try_from(expires.saturating_sub(now)).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(secs)).await;
}
