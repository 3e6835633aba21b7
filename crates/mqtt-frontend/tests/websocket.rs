//! MQTT over WebSocket through an axum route, driven by a hand-written client that sends exactly
//! the upgrade request paho (inside the Python device SDK) sends, and checks the answer the way
//! paho checks it.

mod support;

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use bytes::{Buf, BytesMut};
use mqtt_codec::{Packet, PacketId, Publish, QoS};
use mqtt_frontend::{Frontend, FrontendConfig, WEBSOCKET_PATH};
use support::{Event, MemoryBackend, accepted, sas_connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The key from RFC 6455's example, and the accept value it must produce.
const WEBSOCKET_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WEBSOCKET_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const OPCODE_BINARY: u8 = 0x2;
const OPCODE_PING: u8 = 0x9;
const OPCODE_PONG: u8 = 0xA;

async fn mqtt_over_websocket(
    State(frontend): State<Frontend<MemoryBackend>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    frontend.upgrade_websocket(upgrade, None, None)
}

/// A WebSocket client speaking just enough RFC 6455 for the test.
struct PahoLikeClient {
    socket: TcpStream,
    received: BytesMut,
}

impl PahoLikeClient {
    /// Performs the upgrade as paho does and returns the response header lines.
    async fn connect(address: std::net::SocketAddr) -> (PahoLikeClient, Vec<String>) {
        let mut socket = TcpStream::connect(address).await.unwrap();
        let request = format!(
            "GET {WEBSOCKET_PATH} HTTP/1.1\r\n\
             Host: localhost:443\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Origin: https://localhost:443\r\n\
             Sec-WebSocket-Key: {WEBSOCKET_KEY}\r\n\
             Sec-Websocket-Version: 13\r\n\
             Sec-Websocket-Protocol: mqtt\r\n\
             \r\n"
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        // paho reads the response one byte at a time up to the blank line.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(socket.read_u8().await.unwrap());
        }
        let lines = String::from_utf8(head)
            .unwrap()
            .split("\r\n")
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        let client = PahoLikeClient {
            socket,
            received: BytesMut::new(),
        };
        (client, lines)
    }

    /// Sends one masked frame.
    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            length @ 0..=125 => frame.push(0x80 | length as u8),
            length @ 126..=65535 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(length as u16).to_be_bytes());
            }
            length => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(length as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(
            payload
                .iter()
                .enumerate()
                .map(|(index, byte)| byte ^ mask[index % 4]),
        );
        self.socket.write_all(&frame).await.unwrap();
    }

    /// Reads one server frame (which must be unmasked), returning its opcode and payload.
    async fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let first = self.socket.read_u8().await.unwrap();
        let second = self.socket.read_u8().await.unwrap();
        assert_eq!(second & 0x80, 0, "server frames must not be masked");
        let length = match second & 0x7f {
            126 => u64::from(self.socket.read_u16().await.unwrap()),
            127 => self.socket.read_u64().await.unwrap(),
            length => u64::from(length),
        };
        let mut payload = vec![0; usize::try_from(length).unwrap()];
        self.socket.read_exact(&mut payload).await.unwrap();
        (first & 0x0f, payload)
    }

    fn encode(packets: &[Packet]) -> Vec<u8> {
        let mut buffer = BytesMut::new();
        for packet in packets {
            packet.encode(&mut buffer).unwrap();
        }
        buffer.to_vec()
    }

    /// Reads the next MQTT packet, skipping pong frames.
    async fn receive(&mut self) -> Packet {
        loop {
            if let Some(packet) = Packet::decode(&mut self.received, 1 << 20).unwrap() {
                return packet;
            }
            let (opcode, payload) = self.read_frame().await;
            match opcode {
                OPCODE_BINARY => self.received.extend_from_slice(&payload),
                OPCODE_PONG => {}
                other => panic!("unexpected frame opcode {other}"),
            }
        }
    }
}

#[tokio::test]
async fn mqtt_over_websocket_with_the_sdk_handshake() {
    let (frontend, backend, mut events) = support::frontend_with(FrontendConfig::default());
    backend.register_with_password("dev1");
    let router = axum::Router::new()
        .route(WEBSOCKET_PATH, axum::routing::get(mqtt_over_websocket))
        .with_state(frontend);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let (mut client, response) = PahoLikeClient::connect(address).await;
    assert_eq!(response[0], "HTTP/1.1 101 Switching Protocols");
    let lower: Vec<String> = response.iter().map(|line| line.to_lowercase()).collect();
    // paho's checks: every line mentioning "connection" also mentions "upgrade", and the accept
    // value follows ": ".
    assert!(
        lower
            .iter()
            .filter(|line| line.contains("connection"))
            .all(|line| line.contains("upgrade"))
    );
    let accept_line = response
        .iter()
        .find(|line| line.to_lowercase().starts_with("sec-websocket-accept"))
        .expect("accept header");
    assert_eq!(accept_line.split_once(": ").unwrap().1, WEBSOCKET_ACCEPT);
    assert!(lower.contains(&"sec-websocket-protocol: mqtt".to_owned()));

    // CONNECT split across two frames.
    let connect = PahoLikeClient::encode(&[Packet::Connect(sas_connect("dev1", false))]);
    let (head, tail) = connect.split_at(5);
    client.send_frame(OPCODE_BINARY, head).await;
    client.send_frame(OPCODE_BINARY, tail).await;
    assert_eq!(client.receive().await, Packet::ConnAck(accepted(false)));

    // A WebSocket ping between MQTT packets, then PUBLISH and PINGREQ in one frame.
    client.send_frame(OPCODE_PING, b"hi").await;
    let packet_id = PacketId::new(1).unwrap();
    let packets = PahoLikeClient::encode(&[
        Packet::Publish(Publish::with_packet_id(
            "devices/dev1/messages/events/",
            QoS::AtLeastOnce,
            packet_id,
            "over websocket",
        )),
        Packet::PingReq,
    ]);
    client.send_frame(OPCODE_BINARY, &packets).await;
    // MQTT orders PUBACKs among themselves only: the PINGRESP may overtake the PUBACK, which
    // waits for the backend.
    let mut answers = vec![client.receive().await, client.receive().await];
    answers.sort_by_key(|packet| packet.packet_type().to_string());
    assert_eq!(answers, [Packet::PingResp, Packet::PubAck(packet_id)]);
    loop {
        if let Some(Event::Telemetry { identity, message }) = events.recv().await {
            assert_eq!(identity, "dev1");
            assert_eq!(message.body.chunk(), b"over websocket");
            break;
        }
    }

    // A text frame is not MQTT: the connection ends.
    client.send_frame(0x1, b"text").await;
    loop {
        if let Some(Event::Disconnected { disconnection, .. }) = events.recv().await {
            assert_eq!(
                disconnection.reason,
                mqtt_frontend::DisconnectReason::ConnectionLost
            );
            break;
        }
    }
    server.abort();
}
