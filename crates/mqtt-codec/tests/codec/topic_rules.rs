//! Snapshot tests of topic name / filter validation and of filter matching (MQTT 3.1.1 section 4.7).

use expect_test::{Expect, expect};
use mqtt_codec::topic::{topic_matches_filter, validate_topic_filter, validate_topic_name};

/// Renders, for each `filter`, whether it is a valid filter and which of `topics` it matches.
fn check(filters: &[&str], topics: &[&str], expect: Expect) {
    let mut rendered = String::new();
    for filter in filters {
        match validate_topic_filter(filter) {
            Ok(()) => {
                let matched: Vec<&str> = topics
                    .iter()
                    .copied()
                    .filter(|topic| topic_matches_filter(filter, topic))
                    .collect();
                rendered.push_str(&format!("{filter:?} matches {matched:?}\n"));
            }
            Err(error) => rendered.push_str(&format!("{filter:?} invalid: {error}\n")),
        }
    }
    expect.assert_eq(&rendered);
}

/// Renders the verdict of the topic name rules for each name.
fn check_names(names: &[&str], expect: Expect) {
    let rendered: String = names
        .iter()
        .map(|name| match validate_topic_name(name) {
            Ok(()) => format!("{name:?} valid\n"),
            Err(error) => format!("{name:?} invalid: {error}\n"),
        })
        .collect();
    expect.assert_eq(&rendered);
}

const SPORT_TOPICS: &[&str] = &[
    "sport",
    "sport/",
    "sport/tennis",
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
    "/finance",
    "finance",
    "$SYS/monitor/Clients",
];

#[test]
fn specification_examples() {
    check(
        &[
            "sport/tennis/player1/#",
            "sport/#",
            "#",
            "sport/tennis/#",
            "sport/+",
            "+",
            "+/+",
            "/+",
            "+/tennis/#",
            "$SYS/#",
            "$SYS/monitor/+",
            "sport/tennis/player1",
        ],
        SPORT_TOPICS,
        expect![[r##"
            "sport/tennis/player1/#" matches ["sport/tennis/player1", "sport/tennis/player1/ranking"]
            "sport/#" matches ["sport", "sport/", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking"]
            "#" matches ["sport", "sport/", "sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking", "/finance", "finance"]
            "sport/tennis/#" matches ["sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking"]
            "sport/+" matches ["sport/", "sport/tennis"]
            "+" matches ["sport", "finance"]
            "+/+" matches ["sport/", "sport/tennis", "/finance"]
            "/+" matches ["/finance"]
            "+/tennis/#" matches ["sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking"]
            "$SYS/#" matches ["$SYS/monitor/Clients"]
            "$SYS/monitor/+" matches ["$SYS/monitor/Clients"]
            "sport/tennis/player1" matches ["sport/tennis/player1"]
        "##]],
    );
}

#[test]
fn invalid_filters() {
    check(
        &[
            "",
            "sport/tennis#",
            "sport/tennis/#/ranking",
            "sport+",
            "#/",
            "++",
            "a/b\u{0}",
        ],
        SPORT_TOPICS,
        expect![[r##"
            "" invalid: topic is empty
            "sport/tennis#" invalid: '#' is not alone in the last topic level
            "sport/tennis/#/ranking" invalid: '#' is not alone in the last topic level
            "sport+" invalid: '+' does not occupy an entire topic level
            "#/" invalid: '#' is not alone in the last topic level
            "++" invalid: '+' does not occupy an entire topic level
            "a/b\0" invalid: topic contains U+0000
        "##]],
    );
}

#[test]
fn iot_hub_filters() {
    check(
        &[
            "devices/dev1/messages/devicebound/#",
            "$iothub/twin/res/#",
            "$iothub/methods/POST/#",
            "devices/+/messages/events/#",
        ],
        &[
            "devices/dev1/messages/devicebound/%24.to=%2Fdevices%2Fdev1",
            "devices/dev1/messages/devicebound/",
            "devices/dev1/messages/devicebound",
            "devices/dev2/messages/devicebound/x",
            "$iothub/twin/res/200/?$rid=1",
            "$iothub/methods/POST/reboot/?$rid=7",
            "devices/dev1/messages/events/a=b",
        ],
        expect![[r#"
            "devices/dev1/messages/devicebound/#" matches ["devices/dev1/messages/devicebound/%24.to=%2Fdevices%2Fdev1", "devices/dev1/messages/devicebound/", "devices/dev1/messages/devicebound"]
            "$iothub/twin/res/#" matches ["$iothub/twin/res/200/?$rid=1"]
            "$iothub/methods/POST/#" matches ["$iothub/methods/POST/reboot/?$rid=7"]
            "devices/+/messages/events/#" matches ["devices/dev1/messages/events/a=b"]
        "#]],
    );
}

#[test]
fn topic_names() {
    check_names(
        &[
            "a/b",
            "/",
            "$iothub/twin/GET/?$rid=1",
            "",
            "a/+",
            "a/#",
            "a\u{0}b",
            "ünïcödé/☃",
        ],
        expect![[r#"
            "a/b" valid
            "/" valid
            "$iothub/twin/GET/?$rid=1" valid
            "" invalid: topic is empty
            "a/+" invalid: topic name contains a wildcard character
            "a/#" invalid: topic name contains a wildcard character
            "a\0b" invalid: topic contains U+0000
            "ünïcödé/☃" valid
        "#]],
    );
}

#[test]
fn overlong_topics_are_rejected() {
    let long_topic = "a".repeat(65_536);
    let longest_topic = "a".repeat(65_535);
    let verdicts = format!(
        "{:?} {:?} {:?}",
        validate_topic_name(&long_topic),
        validate_topic_name(&longest_topic),
        validate_topic_filter(&long_topic)
    );
    expect!["Err(TooLong { length: 65536 }) Ok(()) Err(TooLong { length: 65536 })"]
        .assert_eq(&verdicts);
}
