//! Integration tests of the MQTT 3.1.1 codec: decode snapshots, topic rules, property-based
//! round trips, differential tests against rumqttc, and the replay of the committed fuzz corpus.

mod corpus;
mod decode_snapshots;
mod framed;
mod interop;
mod roundtrip;
mod strategies;
mod topic_rules;
