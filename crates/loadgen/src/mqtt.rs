//! A minimal MQTT 3.1.1 client on top of `mqtt-codec`: just enough to connect, subscribe, publish at
//! QoS 1 with a bounded window, and answer what the server sends.
//!
//! The client is split into a [`PacketReader`] and a [`PacketWriter`] so that a publisher can keep
//! writing while another task counts acknowledgements.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    ConnectReturnCode, Packet, PacketId, Publish, QoS, Subscribe, SubscribeFilter,
    SubscribeReturnCode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::transport::{BoxedStream, ByteStream, Endpoint};

/// The largest packet the client accepts (IoT Hub's 256 KB message limit plus headroom).
pub const MAX_PACKET_SIZE: usize = 512 * 1024;

/// How many clients connect at the same time while a round is being set up.
const CONNECT_CONCURRENCY: usize = 32;

/// How long the server may take to answer CONNECT or SUBSCRIBE.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the client says in its CONNECT.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub clean_session: bool,
    pub keep_alive_seconds: u16,
}

/// Reads whole packets from the server.
pub struct PacketReader<S: ByteStream = BoxedStream> {
    stream: ReadHalf<S>,
    buffer: BytesMut,
}

/// Writes packets to the server, one write per call.
pub struct PacketWriter<S: ByteStream = BoxedStream> {
    stream: WriteHalf<S>,
    buffer: BytesMut,
}

impl<S: ByteStream> PacketReader<S> {
    /// Waits for the next packet; fails when the server closes the connection or sends bad bytes.
    pub async fn next_packet(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(packet) = Packet::decode(&mut self.buffer, MAX_PACKET_SIZE)
                .context("the server sent a malformed packet")?
            {
                return Ok(packet);
            }
            self.buffer.reserve(16 * 1024);
            let read = self
                .stream
                .read_buf(&mut self.buffer)
                .await
                .context("reading from the server")?;
            if read == 0 {
                bail!("the server closed the connection");
            }
        }
    }

    /// Returns every packet already buffered or readable with one read, waiting only when none is.
    ///
    /// Handling a batch at a time lets a subscriber answer many deliveries with one write.
    pub async fn next_batch(&mut self, batch: &mut Vec<Packet>) -> anyhow::Result<()> {
        batch.push(self.next_packet().await?);
        while let Some(packet) = Packet::decode(&mut self.buffer, MAX_PACKET_SIZE)
            .context("the server sent a malformed packet")?
        {
            batch.push(packet);
        }
        Ok(())
    }
}

impl<S: ByteStream> PacketWriter<S> {
    /// Encodes and writes one packet.
    pub async fn send(&mut self, packet: &Packet) -> anyhow::Result<()> {
        self.queue(packet)?;
        self.flush().await
    }

    /// Encodes one packet into the write buffer without writing it.
    pub fn queue(&mut self, packet: &Packet) -> anyhow::Result<()> {
        packet
            .encode(&mut self.buffer)
            .map_err(|error| anyhow!("cannot encode {}: {error}", packet.packet_type()))
    }

    /// Writes everything queued so far.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.stream
            .write_all(&self.buffer)
            .await
            .context("writing to the server")?;
        self.stream.flush().await.context("writing to the server")?;
        self.buffer.clear();
        Ok(())
    }

    /// Sends DISCONNECT and shuts the write side down; errors are ignored, the benchmark is over.
    pub async fn disconnect(mut self) {
        let _ = self.send(&Packet::Disconnect).await;
        let _ = self.stream.shutdown().await;
    }
}

/// Sends CONNECT and waits for an accepting CONNACK.
pub async fn connect<S: ByteStream>(
    stream: S,
    options: &ConnectOptions,
) -> anyhow::Result<(PacketReader<S>, PacketWriter<S>)> {
    let (read_half, write_half) = tokio::io::split(stream);
    let mut reader = PacketReader {
        stream: read_half,
        buffer: BytesMut::with_capacity(4 * 1024),
    };
    let mut writer = PacketWriter {
        stream: write_half,
        buffer: BytesMut::with_capacity(4 * 1024),
    };
    let connect = mqtt_codec::Connect {
        client_id: options.client_id.clone(),
        clean_session: options.clean_session,
        keep_alive: options.keep_alive_seconds,
        will: None,
        username: options.username.clone(),
        password: options.password.clone(),
    };
    writer.send(&Packet::Connect(connect)).await?;
    let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.next_packet())
        .await
        .map_err(|_| anyhow!("no CONNACK within {HANDSHAKE_TIMEOUT:?}"))??;
    match answer {
        Packet::ConnAck(connack) if connack.return_code == ConnectReturnCode::Accepted => {
            Ok((reader, writer))
        }
        Packet::ConnAck(connack) => bail!(
            "the server refused client `{}` with CONNACK return code {}",
            options.client_id,
            connack.return_code.as_u8()
        ),
        other => bail!("expected CONNACK, got {}", other.packet_type()),
    }
}

/// Subscribes to one filter and waits for its SUBACK, answering nothing else in between.
pub async fn subscribe<S: ByteStream>(
    reader: &mut PacketReader<S>,
    writer: &mut PacketWriter<S>,
    filter: &str,
    requested_qos: QoS,
) -> anyhow::Result<()> {
    let packet_id = PacketId::new(1).expect("1 is not zero");
    let subscribe = Subscribe {
        packet_id,
        filters: vec![SubscribeFilter {
            filter: filter.to_owned(),
            requested_qos,
        }],
    };
    writer.send(&Packet::Subscribe(subscribe)).await?;
    let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.next_packet())
        .await
        .map_err(|_| anyhow!("no SUBACK within {HANDSHAKE_TIMEOUT:?}"))??;
    match answer {
        Packet::SubAck(suback)
            if suback.packet_id == packet_id
                && suback
                    .return_codes
                    .iter()
                    .all(|code| *code != SubscribeReturnCode::Failure) =>
        {
            Ok(())
        }
        Packet::SubAck(_) => bail!("the server refused the subscription to `{filter}`"),
        other => bail!("expected SUBACK, got {}", other.packet_type()),
    }
}

/// What one publisher did: how many PUBACKs it got and when the last one arrived.
#[derive(Clone, Copy, Debug)]
pub struct PublisherOutcome {
    pub acknowledged: u64,
    pub last_acknowledgement: Instant,
}

/// Publishes `count` QoS 1 messages of `payload` to `topic`, never more than `window` unacknowledged,
/// and returns when every one is acknowledged. With a `stamp`, the first 8 bytes of each payload are
/// [`message_key`]`(stamp, sequence)`, so that a subscriber can tell duplicates apart.
///
/// A reader task counts PUBACKs and returns window permits while this task writes; one PUBLISH is one
/// write, as a device SDK does it.
pub async fn publish_with_window<S: ByteStream>(
    mut reader: PacketReader<S>,
    mut writer: PacketWriter<S>,
    topic: &str,
    payload: Bytes,
    count: u64,
    window: usize,
    stamp: Option<u32>,
) -> anyhow::Result<(PublisherOutcome, PacketReader<S>, PacketWriter<S>)> {
    if stamp.is_some() && payload.len() < 8 {
        bail!(
            "a stamped payload needs at least 8 bytes, not {}",
            payload.len()
        );
    }
    if window == 0 || window > usize::from(u16::MAX) {
        bail!("the in-flight window must be between 1 and 65535, not {window}");
    }
    let permits = Arc::new(Semaphore::new(window));
    let reader_permits = permits.clone();
    let acknowledgements = tokio::spawn(async move {
        let mut acknowledged = 0u64;
        let mut last_acknowledgement = Instant::now();
        let mut batch = Vec::new();
        while acknowledged < count {
            batch.clear();
            reader.next_batch(&mut batch).await?;
            for packet in batch.drain(..) {
                match packet {
                    Packet::PubAck(_) => {
                        acknowledged += 1;
                        reader_permits.add_permits(1);
                    }
                    Packet::PingResp => {}
                    other => bail!("expected PUBACK, got {}", other.packet_type()),
                }
            }
            last_acknowledgement = Instant::now();
        }
        Ok::<_, anyhow::Error>((
            PublisherOutcome {
                acknowledged,
                last_acknowledgement,
            },
            reader,
        ))
    });
    let mut packet_id = PacketId::new(1).expect("1 is not zero");
    let mut write_result = Ok(());
    for sequence in 0..count {
        match permits.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => break,
        }
        let body = match stamp {
            Some(stamp) => {
                let mut stamped = BytesMut::from(&payload[..]);
                stamped[..8].copy_from_slice(&message_key(stamp, sequence).to_be_bytes());
                stamped.freeze()
            }
            None => payload.clone(),
        };
        let publish = Publish::with_packet_id(topic, QoS::AtLeastOnce, packet_id, body);
        if let Err(error) = writer.send(&Packet::Publish(publish)).await {
            write_result = Err(error);
            break;
        }
        packet_id = packet_id.next();
    }
    if let Err(error) = write_result {
        acknowledgements.abort();
        return Err(error);
    }
    let (outcome, reader) = acknowledgements
        .await
        .context("the acknowledgement task failed")??;
    Ok((outcome, reader, writer))
}

/// The key stamped into a payload: the publisher's stamp and the message's sequence number.
pub fn message_key(stamp: u32, sequence: u64) -> u64 {
    (u64::from(stamp) << 40) | (sequence & ((1 << 40) - 1))
}

/// How long a counting subscriber must hear nothing after its SUBACK before it counts.
const QUIET_BEFORE_COUNTING: Duration = Duration::from_millis(300);

/// Connects `options` to `endpoint`, subscribes to `filter` at QoS 1, and returns a task that
/// acknowledges every delivery and ends when `expected` messages have arrived, with the instant the
/// last one did.
///
/// A persistent session may get deliveries left over from an earlier round (QoS 1 is at least once:
/// a message whose PUBACK was in flight when the subscriber left comes again). Those arrive before
/// the round starts; they are acknowledged and not counted, and their number is printed. With
/// `distinct`, only payloads with a new [`message_key`] count, and the duplicates are printed.
pub async fn start_counting_subscriber(
    endpoint: &Endpoint,
    options: &ConnectOptions,
    filter: &str,
    expected: u64,
    distinct: bool,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<Instant>>> {
    let stream = endpoint.connect().await?;
    let (mut reader, mut writer) = connect(stream, options).await?;
    let packet_id = PacketId::new(1).expect("1 is not zero");
    writer
        .send(&Packet::Subscribe(Subscribe {
            packet_id,
            filters: vec![SubscribeFilter {
                filter: filter.to_owned(),
                requested_qos: QoS::AtLeastOnce,
            }],
        }))
        .await?;
    let mut subscribed = false;
    let mut leftovers = 0u64;
    let mut batch = Vec::new();
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        let wait = if subscribed {
            QUIET_BEFORE_COUNTING
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        batch.clear();
        match tokio::time::timeout(wait, reader.next_batch(&mut batch)).await {
            Err(_) if subscribed => break,
            Err(_) => bail!("no SUBACK within {HANDSHAKE_TIMEOUT:?}"),
            Ok(result) => result?,
        }
        for packet in batch.drain(..) {
            match packet {
                Packet::SubAck(suback)
                    if suback
                        .return_codes
                        .iter()
                        .all(|code| *code != SubscribeReturnCode::Failure) =>
                {
                    subscribed = true;
                }
                Packet::SubAck(_) => bail!("the server refused the subscription to `{filter}`"),
                Packet::Publish(publish) => {
                    leftovers += 1;
                    if let Some(packet_id) = publish.packet_id {
                        writer.queue(&Packet::PubAck(packet_id))?;
                    }
                }
                other => bail!("expected SUBACK, got {}", other.packet_type()),
            }
        }
        writer.flush().await?;
    }
    if leftovers > 0 {
        eprintln!(
            "{}: {leftovers} deliveries left over from before the round (acknowledged, not counted)",
            options.client_id
        );
    }
    let client_id = options.client_id.clone();
    Ok(tokio::spawn(async move {
        let mut received = 0u64;
        let mut duplicates = 0u64;
        let mut seen = std::collections::HashSet::new();
        let mut batch = Vec::new();
        while received < expected {
            batch.clear();
            reader.next_batch(&mut batch).await?;
            for packet in batch.drain(..) {
                if let Packet::Publish(publish) = packet {
                    let key = publish
                        .payload
                        .get(..8)
                        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                        .map(u64::from_be_bytes);
                    match key {
                        Some(key) if distinct && !seen.insert(key) => duplicates += 1,
                        _ => received += 1,
                    }
                    if let Some(packet_id) = publish.packet_id {
                        writer.queue(&Packet::PubAck(packet_id))?;
                    }
                }
            }
            writer.flush().await?;
        }
        let finished = Instant::now();
        writer.disconnect().await;
        if duplicates > 0 {
            eprintln!(
                "{client_id}: {duplicates} duplicate deliveries during the round (not counted)"
            );
        }
        Ok(finished)
    }))
}

/// Connects every client, a few at a time, and returns the connections in the clients' order.
pub async fn connect_all(
    endpoint: &Endpoint,
    clients: &[ConnectOptions],
) -> anyhow::Result<Vec<(PacketReader<BoxedStream>, PacketWriter<BoxedStream>)>> {
    let limit = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut connecting = JoinSet::new();
    for (index, client) in clients.iter().enumerate() {
        let permit = limit.clone().acquire_owned().await?;
        let endpoint = endpoint.clone();
        let client = client.clone();
        connecting.spawn(async move {
            let stream = endpoint.connect().await?;
            let connection = connect(stream, &client).await?;
            drop(permit);
            Ok::<_, anyhow::Error>((index, connection))
        });
    }
    let mut connections: Vec<Option<_>> = (0..clients.len()).map(|_| None).collect();
    while let Some(joined) = connecting.join_next().await {
        let (index, connection) = joined.context("a connecting task failed")??;
        connections[index] = Some(connection);
    }
    Ok(connections.into_iter().flatten().collect())
}

/// Publishers that are connected and wait for one start signal.
pub struct ReadyPublishers {
    start: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<PublisherOutcome>>,
}

impl ReadyPublishers {
    /// Connects every publisher to `endpoint`; each will publish `count` QoS 1 messages of `payload`
    /// to its topic with at most `window` unacknowledged, once started.
    pub async fn connect(
        endpoint: &Endpoint,
        publishers: &[(ConnectOptions, String)],
        payload: &Bytes,
        count: u64,
        window: usize,
        stamp: bool,
    ) -> anyhow::Result<ReadyPublishers> {
        let clients: Vec<ConnectOptions> = publishers
            .iter()
            .map(|(client, _)| client.clone())
            .collect();
        let connections = connect_all(endpoint, &clients).await?;
        let (start, start_receiver) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for (index, ((reader, writer), (_, topic))) in
            connections.into_iter().zip(publishers).enumerate()
        {
            let stamp = stamp.then(|| u32::try_from(index).unwrap_or(u32::MAX));
            let mut start = start_receiver.clone();
            let topic = topic.clone();
            let payload = payload.clone();
            tasks.spawn(async move {
                start
                    .wait_for(|started| *started)
                    .await
                    .context("the round was abandoned")?;
                let (outcome, _reader, writer) =
                    publish_with_window(reader, writer, &topic, payload, count, window, stamp)
                        .await?;
                writer.disconnect().await;
                Ok::<_, anyhow::Error>(outcome)
            });
        }
        Ok(ReadyPublishers { start, tasks })
    }

    /// Lets every publisher go and returns the moment it did.
    pub fn start(&self) -> Instant {
        let started = Instant::now();
        self.start.send_replace(true);
        started
    }

    /// Waits for every publisher; returns the PUBACKs received and when the last one arrived.
    pub async fn finish(mut self, started: Instant) -> anyhow::Result<(u64, Instant)> {
        let mut acknowledged = 0;
        let mut last_acknowledgement = started;
        while let Some(joined) = self.tasks.join_next().await {
            let outcome = joined.context("a publisher task failed")??;
            acknowledged += outcome.acknowledged;
            last_acknowledgement = last_acknowledgement.max(outcome.last_acknowledgement);
        }
        Ok((acknowledged, last_acknowledgement))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A broker stand-in on an in-memory pipe: accepts CONNECT, then acknowledges every PUBLISH after
    /// checking that the client never has more than `window` unacknowledged.
    async fn fake_broker(
        stream: tokio::io::DuplexStream,
        window: usize,
        high_water: Arc<AtomicUsize>,
    ) -> anyhow::Result<Vec<u16>> {
        let (mut reader, mut writer) = split_for_test(stream);
        let connect = reader.next_packet().await?;
        assert!(matches!(connect, Packet::Connect(_)));
        writer
            .send(&Packet::ConnAck(mqtt_codec::ConnAck {
                session_present: false,
                return_code: ConnectReturnCode::Accepted,
            }))
            .await?;
        let mut unacknowledged = Vec::new();
        let mut seen = Vec::new();
        let mut batch = Vec::new();
        loop {
            batch.clear();
            if reader.next_batch(&mut batch).await.is_err() {
                return Ok(seen);
            }
            for packet in batch.drain(..) {
                match packet {
                    Packet::Publish(publish) => {
                        let packet_id = publish.packet_id.expect("QoS 1 has a packet id");
                        unacknowledged.push(packet_id);
                        seen.push(packet_id.get());
                    }
                    Packet::Disconnect => return Ok(seen),
                    other => panic!("unexpected {other:?}"),
                }
            }
            high_water.fetch_max(unacknowledged.len(), Ordering::SeqCst);
            assert!(unacknowledged.len() <= window, "window exceeded");
            // Acknowledge in reverse order, which MQTT allows, to show the client does not rely on order.
            while let Some(packet_id) = unacknowledged.pop() {
                writer.queue(&Packet::PubAck(packet_id))?;
            }
            writer.flush().await?;
        }
    }

    fn split_for_test(
        stream: tokio::io::DuplexStream,
    ) -> (
        PacketReader<tokio::io::DuplexStream>,
        PacketWriter<tokio::io::DuplexStream>,
    ) {
        let (read_half, write_half) = tokio::io::split(stream);
        (
            PacketReader {
                stream: read_half,
                buffer: BytesMut::new(),
            },
            PacketWriter {
                stream: write_half,
                buffer: BytesMut::new(),
            },
        )
    }

    #[tokio::test]
    async fn publisher_respects_the_window_and_counts_every_acknowledgement() {
        let (client_side, broker_side) = tokio::io::duplex(64 * 1024);
        let high_water = Arc::new(AtomicUsize::new(0));
        let broker = tokio::spawn(fake_broker(broker_side, 7, high_water.clone()));
        let options = ConnectOptions {
            client_id: "d1".to_owned(),
            username: Some("hub/d1/?api-version=2021-04-12".to_owned()),
            password: Some(Bytes::from_static(b"token")),
            clean_session: false,
            keep_alive_seconds: 60,
        };
        let (reader, writer) = connect(client_side, &options).await.expect("connect");
        let (outcome, _reader, writer) = publish_with_window(
            reader,
            writer,
            "devices/d1/messages/events/",
            Bytes::from_static(&[7; 256]),
            70_000,
            7,
            Some(3),
        )
        .await
        .expect("publish");
        writer.disconnect().await;
        let seen = broker.await.expect("broker task").expect("broker");
        assert_eq!(outcome.acknowledged, 70_000);
        assert_eq!(seen.len(), 70_000);
        // Packet ids wrap from 65535 to 1 and are never zero.
        assert_eq!(seen[65_534], 65_535);
        assert_eq!(seen[65_535], 1);
        let high_water = high_water.load(Ordering::SeqCst);
        assert!((1..=7).contains(&high_water), "high water {high_water}");
    }

    #[test]
    fn message_keys_tell_publishers_and_sequences_apart() {
        let keys = [
            message_key(0, 0),
            message_key(0, 1),
            message_key(1, 0),
            message_key(3, 70_000),
        ];
        expect_test::expect!["[0, 1, 1099511627776, 3298534953328]"]
            .assert_eq(&format!("{keys:?}"));
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_return_code() {
        let (client_side, broker_side) = tokio::io::duplex(4096);
        let broker = tokio::spawn(async move {
            let (mut reader, mut writer) = split_for_test(broker_side);
            reader.next_packet().await.expect("CONNECT");
            writer
                .send(&Packet::ConnAck(mqtt_codec::ConnAck {
                    session_present: false,
                    return_code: ConnectReturnCode::NotAuthorized,
                }))
                .await
                .expect("CONNACK");
        });
        let options = ConnectOptions {
            client_id: "d2".to_owned(),
            username: None,
            password: None,
            clean_session: true,
            keep_alive_seconds: 0,
        };
        let error = connect(client_side, &options).await.err().expect("refused");
        broker.await.expect("broker task");
        expect_test::expect!["the server refused client `d2` with CONNACK return code 5"]
            .assert_eq(&error.to_string());
    }
}
