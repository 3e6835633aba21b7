//! MQTT over WebSocket: an adapter that turns an axum WebSocket into a byte stream, so that the
//! same connection code serves TLS, plain TCP and WebSocket clients.
//!
//! The WebSocket itself is accepted by the HTTPS listener (another crate hosts it): it routes
//! [`WEBSOCKET_PATH`] to a handler that calls [`Frontend::upgrade_websocket`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{Backend, ClientCertificate, Frontend, Transport, TransportInfo};

/// The path the device SDKs open for MQTT over WebSocket.
pub const WEBSOCKET_PATH: &str = "/$iothub/websocket";

/// The WebSocket subprotocol the device SDKs request (`Sec-Websocket-Protocol: mqtt`).
pub const WEBSOCKET_SUBPROTOCOL: &str = "mqtt";

/// The size of the WebSocket read and write buffers; small, because idle connections are many.
const WEBSOCKET_BUFFER_SIZE: usize = 8 * 1024;

/// A WebSocket seen as a byte stream: binary messages in, binary messages out.
///
/// Reading concatenates the payloads of incoming binary messages (MQTT packets may span messages
/// or share one); ping and pong frames are skipped (the WebSocket layer answers pings), a close
/// frame or the end of the stream reads as end of file, and a text message is an error. Each write
/// becomes one binary message.
#[derive(Debug)]
pub struct WebSocketByteStream {
    socket: WebSocket,
    unread: Bytes,
}

impl WebSocketByteStream {
    /// Wraps an upgraded WebSocket.
    pub fn new(socket: WebSocket) -> WebSocketByteStream {
        WebSocketByteStream {
            socket,
            unread: Bytes::new(),
        }
    }
}

impl AsyncRead for WebSocketByteStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.unread.is_empty() {
                let count = self.unread.len().min(buffer.remaining());
                buffer.put_slice(&self.unread[..count]);
                self.unread.advance(count);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.socket).poll_next(context)) {
                Some(Ok(Message::Binary(data))) => self.unread = data,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text WebSocket message on an MQTT connection",
                    )));
                }
                Some(Err(error)) => return Poll::Ready(Err(io::Error::other(error))),
            }
        }
    }
}

impl AsyncWrite for WebSocketByteStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.socket).poll_ready(context)).map_err(io::Error::other)?;
        Pin::new(&mut self.socket)
            .start_send(Message::Binary(Bytes::copy_from_slice(data)))
            .map_err(io::Error::other)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket)
            .poll_flush(context)
            .map_err(io::Error::other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket)
            .poll_close(context)
            .map_err(io::Error::other)
    }
}

impl<B: Backend> Frontend<B> {
    /// Completes a WebSocket upgrade on [`WEBSOCKET_PATH`] with subprotocol `mqtt` and serves MQTT
    /// over it. The HTTPS listener's handler calls this with the client certificate from its TLS
    /// handshake (X.509 devices present one over WebSocket too):
    ///
    /// ```text
    /// async fn mqtt_over_websocket(upgrade: WebSocketUpgrade, /* state, TLS info */) -> Response {
    ///     frontend.upgrade_websocket(upgrade, client_certificate, Some(remote_address))
    /// }
    /// ```
    pub fn upgrade_websocket(
        &self,
        upgrade: WebSocketUpgrade,
        client_certificate: Option<ClientCertificate>,
        remote_address: Option<SocketAddr>,
    ) -> Response {
        let frontend = self.clone();
        // One WebSocket message never needs to exceed one MQTT packet plus the start of the next.
        let max_message_size = self.config().max_packet_size.saturating_mul(2);
        upgrade
            .protocols([WEBSOCKET_SUBPROTOCOL])
            .read_buffer_size(WEBSOCKET_BUFFER_SIZE)
            .write_buffer_size(WEBSOCKET_BUFFER_SIZE)
            .max_message_size(max_message_size)
            .max_frame_size(max_message_size)
            .on_upgrade(move |socket| async move {
                let transport_info = TransportInfo {
                    transport: Transport::WebSocket,
                    client_certificate,
                    remote_address,
                };
                frontend
                    .serve_connection(WebSocketByteStream::new(socket), transport_info)
                    .await;
            })
    }
}
