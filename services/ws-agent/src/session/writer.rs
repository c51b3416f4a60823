//! The writing half of one WebSocket: drains the socket's queue into the sink, keeps a silent
//! peer honest with pings, and gives up on a peer that stops reading.
//!
//! Every write has a deadline ([`WriterSettings::write_timeout`]): a client that stops reading
//! fills its TCP window, the write blocks, and after the deadline the socket is closed and
//! dropped (the sink is dropped with this task, which closes the connection), so it holds no task,
//! no queue and no connection any longer. A peer silent for [`WriterSettings::ping_idle`] gets a
//! ping; if it is still silent one more `ping_idle` later (a pong counts as an answer) the socket
//! is closed with 1001.
//!
//! Frames already queued leave in one write: they are fed to the sink up to
//! [`MAX_BYTES_PER_WRITE`] and flushed once, instead of one write per frame.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes};
use dyschat_runtime::metric;
use futures::{Sink, SinkExt};
use tokio::sync::mpsc::Receiver;

use crate::socket::{OutFrame, SocketHandle, CLOSE_GOING_AWAY, CLOSE_SLOW};

/// How long the close frame may take.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The most bytes of queued frames sent in one write.
pub(crate) const MAX_BYTES_PER_WRITE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterSettings {
    /// How long one write may block before the socket is given up.
    pub write_timeout: Duration,
    /// Silence before a ping, and then before giving up.
    pub ping_idle: Duration,
}

/// Why the writer stopped on its own.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// The sink failed or a write blocked past its deadline: no close frame can go out.
    Broken,
    /// The socket was asked to close; send the close frame.
    Closing,
}

/// Sends the close frame with `code`, within [`CLOSE_TIMEOUT`].
pub(crate) async fn close<W: Sink<WsMessage> + Unpin>(writer: &mut W, code: u16) {
    let frame = WsMessage::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(""),
    }));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let _ = writer.send(frame).await;
        let _ = writer.close().await;
    })
    .await;
}

/// Feeds `first` and whatever else is queued (up to [`MAX_BYTES_PER_WRITE`]) and flushes once.
/// Records how many frames the write carried and how long each `ack` and `message` frame
/// waited in the queue for its write ([`metric::HOP_SECONDS`]).
async fn write_batch<W: Sink<WsMessage> + Unpin>(
    writer: &mut W,
    rx: &mut Receiver<OutFrame>,
    first: OutFrame,
) -> Result<(), W::Error> {
    let mut bytes = 0;
    let mut frames = 0u32;
    let mut next = Some(first);
    while let Some(frame) = next.take() {
        bytes += frame.text.len();
        frames += 1;
        metrics::counter!(metric::WS_FRAMES_OUT_TOTAL, "type" => frame.kind).increment(1);
        let hop = match frame.kind {
            "ack" => Some(metric::hop::ACK_QUEUED),
            "message" => Some(metric::hop::MESSAGE_QUEUED),
            _ => None,
        };
        if let Some(hop) = hop {
            crate::core::record_hop(hop, frame.built.elapsed());
        }
        writer.feed(WsMessage::Text(frame.text)).await?;
        if bytes < MAX_BYTES_PER_WRITE {
            next = rx.try_recv().ok();
        }
    }
    writer.flush().await?;
    metrics::histogram!(metric::WS_FRAMES_PER_WRITE).record(f64::from(frames));
    Ok(())
}

/// Drains the socket's queue into the sink until the socket is asked to close (then sends the
/// close frame with the requested code) or the peer is gone.
pub(crate) async fn write_loop<W>(
    mut writer: W,
    mut rx: Receiver<OutFrame>,
    socket: SocketHandle,
    settings: WriterSettings,
) where
    W: Sink<WsMessage> + Unpin,
{
    let mut pinged = false;
    let mut tick = tokio::time::interval(settings.ping_idle / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = loop {
        let write = tokio::select! {
            biased;
            _ = socket.closing().cancelled() => break Stop::Closing,
            frame = rx.recv() => match frame {
                Some(frame) => Some(frame),
                None => break Stop::Closing,
            },
            _ = tick.tick() => None,
        };
        let silent = socket.silent_for();
        let outcome = match write {
            Some(frame) => {
                tokio::time::timeout(
                    settings.write_timeout,
                    write_batch(&mut writer, &mut rx, frame),
                )
                .await
            }
            None if silent >= settings.ping_idle * 2 && pinged => {
                tracing::debug!(socket = socket.id(), "no answer to a ping; closing");
                socket.close(CLOSE_GOING_AWAY);
                break Stop::Closing;
            }
            None if silent >= settings.ping_idle && !pinged => {
                pinged = true;
                tokio::time::timeout(
                    settings.write_timeout,
                    writer.send(WsMessage::Ping(Default::default())),
                )
                .await
            }
            None => {
                if silent < settings.ping_idle {
                    pinged = false;
                }
                continue;
            }
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                socket.close(1006);
                break Stop::Broken;
            }
            Err(_) => {
                tracing::info!(
                    socket = socket.id(),
                    "a write blocked past its deadline; dropping the socket"
                );
                metrics::counter!(metric::WS_WRITE_TIMEOUTS_TOTAL).increment(1);
                socket.close(CLOSE_SLOW);
                break Stop::Broken;
            }
        }
    };
    if stop == Stop::Broken {
        return;
    }
    let code = socket.close_code().unwrap_or(1000);
    if code != CLOSE_SLOW {
        // What was queued before the close (e.g. the `error` saying why) still goes out; a slow
        // socket's backlog does not, it would only delay the close.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            while let Ok(frame) = rx.try_recv() {
                if writer.send(WsMessage::Text(frame.text)).await.is_err() {
                    break;
                }
            }
        })
        .await;
    }
    close(&mut writer, code).await;
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use dyschat_protocol::wire::ServerFrame;

    use super::*;

    /// A sink that records what it was given and how often it was flushed, and that can be made
    /// to block every write (a peer that stopped reading).
    #[derive(Clone, Default)]
    struct Recorder {
        sent: Arc<Mutex<Vec<WsMessage>>>,
        flushes: Arc<Mutex<usize>>,
        blocked: bool,
    }

    impl Sink<WsMessage> for Recorder {
        type Error = std::convert::Infallible;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.blocked {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        }

        fn start_send(self: Pin<&mut Self>, item: WsMessage) -> Result<(), Self::Error> {
            self.sent.lock().unwrap().push(item);
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            *self.flushes.lock().unwrap() += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    const SETTINGS: WriterSettings = WriterSettings {
        write_timeout: Duration::from_secs(10),
        ping_idle: Duration::from_secs(30),
    };

    fn pong(r: &str) -> OutFrame {
        OutFrame::new(&ServerFrame::Pong {
            reference: Some(r.into()),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn queued_frames_leave_in_one_flush() {
        let (socket, rx) = SocketHandle::new("u".into(), 64);
        for r in ["a", "b", "c"] {
            assert!(socket.push(pong(r)));
        }
        let sink = Recorder::default();
        let task = tokio::spawn(write_loop(sink.clone(), rx, socket.clone(), SETTINGS));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(sink.sent.lock().unwrap().len(), 3);
        assert_eq!(*sink.flushes.lock().unwrap(), 1, "three frames, one write");
        socket.close(1000);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_is_dropped_after_the_write_timeout() {
        let (socket, rx) = SocketHandle::new("u".into(), 64);
        let sink = Recorder {
            blocked: true,
            ..Recorder::default()
        };
        let task = tokio::spawn(write_loop(sink, rx, socket.clone(), SETTINGS));
        assert!(socket.push(pong("stuck")));
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!task.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(task.is_finished(), "the writer gave up");
        assert_eq!(socket.close_code(), Some(CLOSE_SLOW));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_pinged_then_closed() {
        let (socket, rx) = SocketHandle::new("u".into(), 64);
        let sink = Recorder::default();
        let task = tokio::spawn(write_loop(sink.clone(), rx, socket.clone(), SETTINGS));
        tokio::time::sleep(Duration::from_secs(31)).await;
        let pinged = |s: &Recorder| {
            s.sent
                .lock()
                .unwrap()
                .iter()
                .any(|m| matches!(m, WsMessage::Ping(_)))
        };
        assert!(pinged(&sink), "pinged after 30 s of silence");
        assert!(!task.is_finished());
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert!(task.is_finished(), "closed when nothing answered");
        assert_eq!(socket.close_code(), Some(CLOSE_GOING_AWAY));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_answers_stays_open() {
        let (socket, rx) = SocketHandle::new("u".into(), 64);
        let sink = Recorder::default();
        let task = tokio::spawn(write_loop(sink, rx, socket.clone(), SETTINGS));
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            socket.heard();
        }
        assert!(!task.is_finished());
        socket.close(1000);
        task.await.unwrap();
    }
}
