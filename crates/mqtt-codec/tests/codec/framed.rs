//! The codec inside `tokio_util::codec::Framed` over an in-memory duplex stream.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use mqtt_codec::{CodecError, DecodeError, MqttCodec, Packet, PacketId, Publish, QoS};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Framed, FramedRead};

#[tokio::test]
async fn framed_client_and_server_exchange_packets() {
    let (client_stream, server_stream) = tokio::io::duplex(64);
    let mut client = Framed::new(client_stream, MqttCodec::new(4096));
    let mut server = Framed::new(server_stream, MqttCodec::new(4096));
    let publish = Publish::with_packet_id(
        "devices/d1/messages/events/",
        QoS::AtLeastOnce,
        PacketId::new(9).expect("non-zero"),
        Bytes::from(vec![0xab; 300]),
    );
    let send = async {
        client
            .send(Packet::from(publish.clone()))
            .await
            .expect("send");
        client.send(Packet::PingReq).await.expect("send");
        client
    };
    let receive = async {
        let first = server.next().await.expect("a packet").expect("valid");
        let second = server.next().await.expect("a packet").expect("valid");
        server
            .send(Packet::PubAck(PacketId::new(9).expect("non-zero")))
            .await
            .expect("send");
        (first, second)
    };
    let (mut client, (first, second)) = tokio::join!(send, receive);
    assert_eq!(first, Packet::Publish(publish));
    assert_eq!(second, Packet::PingReq);
    let acknowledgement = client.next().await.expect("a packet").expect("valid");
    assert_eq!(
        acknowledgement,
        Packet::PubAck(PacketId::new(9).expect("non-zero"))
    );
}

#[tokio::test]
async fn framed_reader_reports_an_oversized_packet_without_waiting_for_its_body() {
    let (mut writer, reader) = tokio::io::duplex(64);
    let mut framed = FramedRead::new(reader, MqttCodec::new(1024));
    // A PINGREQ, then the fixed header of a PUBLISH declaring 1 MiB, and the stream stays open.
    writer
        .write_all(&[0xc0, 0x00, 0x30, 0x80, 0x80, 0x40])
        .await
        .expect("write");
    assert_eq!(
        framed.next().await.expect("a packet").expect("valid"),
        Packet::PingReq
    );
    let error = framed
        .next()
        .await
        .expect("an error")
        .expect_err("oversized");
    assert!(
        matches!(
            error,
            CodecError::Decode(DecodeError::PacketTooLarge {
                packet_size: 1_048_580,
                max_packet_size: 1024
            })
        ),
        "unexpected error {error:?}"
    );
    assert!(
        framed.next().await.is_none(),
        "the stream ends after an error"
    );
}
