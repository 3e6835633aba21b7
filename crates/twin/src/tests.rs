//! Snapshot tests for every operation, error and output shape, and model-based property tests.

use expect_test::{Expect, expect};
use serde_json::{Map, Value, json};

mod model;

use crate::{
    AuthenticationType, ConnectionState, IdentityStatus, ServiceTwinUpdate, Twin, TwinChange,
    TwinError, TwinIdentity, TwinSection, TwinTimestamp, parse_json_object,
};

/// The timestamp of the `index`-th operation of a test (index 0 creates the twin).
fn time(index: usize) -> TwinTimestamp {
    TwinTimestamp::from_unix(1_795_748_645 + index as i64, 123_456_700).expect("in range")
}

/// Runs a script against a fresh twin and snapshots a transcript plus the final stored twin.
///
/// Each script line is `<operation> <body>`, where the operation is one of `reported` (device
/// patch), `desired` (back-end desired patch), `replace-desired`, `service-patch` and
/// `service-replace` (REST bodies), or `if-match` (header text checked against the twin etag).
fn check(script: &str, expect: Expect) {
    let mut twin = Twin::new(time(0));
    let mut transcript = String::new();
    for (index, line) in script
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .enumerate()
    {
        let (operation, body) = line.split_once(' ').unwrap_or((line, ""));
        let now = time(index + 1);
        let result = match operation {
            "reported" => parse_json_object(body.as_bytes(), "reported patch")
                .and_then(|patch| twin.apply_reported_patch(patch, now)),
            "desired" => parse_json_object(body.as_bytes(), "desired patch")
                .and_then(|patch| twin.apply_desired_patch(patch, now)),
            "replace-desired" => parse_json_object(body.as_bytes(), "desired document")
                .and_then(|document| twin.replace_desired(document, now)),
            "service-patch" => ServiceTwinUpdate::parse(body.as_bytes())
                .and_then(|update| twin.apply_service_patch(update, now)),
            "service-replace" => ServiceTwinUpdate::parse(body.as_bytes())
                .and_then(|update| twin.apply_service_replace(update, now)),
            "if-match" => {
                let outcome = twin.check_if_match(Some(body));
                transcript.push_str(&format!(
                    "> {line}\n{}\n",
                    describe_outcome(outcome.map(|()| None))
                ));
                continue;
            }
            other => panic!("unknown operation {other}"),
        };
        transcript.push_str(&format!(
            "> {line}\n{}\n",
            describe_outcome(result.map(Some))
        ));
    }
    let stored = serde_json::to_string_pretty(&twin.to_storage_value()).expect("serializable");
    transcript.push_str(&format!("= {stored}\n"));
    expect.assert_eq(&transcript);
}

fn describe_outcome(outcome: Result<Option<TwinChange>, TwinError>) -> String {
    match outcome {
        Ok(None) => "ok".to_owned(),
        Ok(Some(change)) => {
            let mut text = format!(
                "ok: version {}, etag {}, {}\n",
                change.twin_version,
                change.etag,
                change.op_type()
            );
            if let Some(notification) = change.desired_notification_body() {
                text.push_str(&format!("  notify: {notification}\n"));
            }
            text.push_str(&format!(
                "  event: {}",
                change.change_event_body("d1", None)
            ));
            text
        }
        Err(error) => format!(
            "error {} {}: {error}",
            error.status_code(),
            error.error_code()
        ),
    }
}

#[test]
fn fresh_twin() {
    check(
        "",
        expect![[r#"
            = {
              "etagCounter": 1,
              "properties": {
                "desired": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:05.1234567Z"
                  },
                  "$version": 1
                },
                "reported": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:05.1234567Z"
                  },
                  "$version": 1
                }
              },
              "storageFormat": 1,
              "tags": {},
              "version": 2
            }
        "#]],
    );
}

#[test]
fn reported_patch_merges_and_stamps_metadata() {
    check(
        r#"
        reported {"temp": 22, "conn": {"type": "cellular", "rssi": -70}, "list": [1, 2]}
        reported {"conn": {"rssi": null, "band": 3}, "list": ["x"], "temp": null, "gone": null}
        "#,
        expect![[r#"
            > reported {"temp": 22, "conn": {"type": "cellular", "rssi": -70}, "list": [1, 2]}
            ok: version 3, etag AAAAAAAAAAE=, updateTwin
              event: {"properties":{"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","conn":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","rssi":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z"},"type":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z"}},"list":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z"},"temp":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z"}},"$version":2,"conn":{"rssi":-70,"type":"cellular"},"list":[1,2],"temp":22}},"version":3}
            > reported {"conn": {"rssi": null, "band": 3}, "list": ["x"], "temp": null, "gone": null}
            ok: version 4, etag AAAAAAAAAAE=, updateTwin
              event: {"properties":{"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","conn":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","band":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z"}},"list":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z"}},"$version":3,"conn":{"band":3,"rssi":null},"gone":null,"list":["x"],"temp":null}},"version":4}
            = {
              "etagCounter": 1,
              "properties": {
                "desired": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:05.1234567Z"
                  },
                  "$version": 1
                },
                "reported": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                    "conn": {
                      "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                      "band": {
                        "$lastUpdated": "2026-11-27T03:04:07.1234567Z"
                      },
                      "type": {
                        "$lastUpdated": "2026-11-27T03:04:06.1234567Z"
                      }
                    },
                    "list": {
                      "$lastUpdated": "2026-11-27T03:04:07.1234567Z"
                    }
                  },
                  "$version": 3,
                  "conn": {
                    "band": 3,
                    "type": "cellular"
                  },
                  "list": [
                    "x"
                  ]
                }
              },
              "storageFormat": 1,
              "tags": {},
              "version": 4
            }
        "#]],
    );
}

#[test]
fn desired_patch_notifies_and_tracks_last_updated_version() {
    check(
        r#"
        desired {"cfg": {"freq": 300, "mode": "eco"}, "fan": "on"}
        desired {"cfg": {"mode": null}, "fan": {"speed": 2}}
        "#,
        expect![[r#"
            > desired {"cfg": {"freq": 300, "mode": "eco"}, "fan": "on"}
            ok: version 3, etag AAAAAAAAAAI=, updateTwin
              notify: {"$version":2,"cfg":{"freq":300,"mode":"eco"},"fan":"on"}
              event: {"properties":{"desired":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","$lastUpdatedVersion":2,"cfg":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","$lastUpdatedVersion":2,"freq":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","$lastUpdatedVersion":2},"mode":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","$lastUpdatedVersion":2}},"fan":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","$lastUpdatedVersion":2}},"$version":2,"cfg":{"freq":300,"mode":"eco"},"fan":"on"}},"version":3}
            > desired {"cfg": {"mode": null}, "fan": {"speed": 2}}
            ok: version 4, etag AAAAAAAAAAM=, updateTwin
              notify: {"$version":3,"cfg":{"mode":null},"fan":{"speed":2}}
              event: {"properties":{"desired":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","$lastUpdatedVersion":3,"cfg":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","$lastUpdatedVersion":3},"fan":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","$lastUpdatedVersion":3,"speed":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","$lastUpdatedVersion":3}}},"$version":3,"cfg":{"mode":null},"fan":{"speed":2}}},"version":4}
            = {
              "etagCounter": 3,
              "properties": {
                "desired": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                    "$lastUpdatedVersion": 3,
                    "cfg": {
                      "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                      "$lastUpdatedVersion": 3,
                      "freq": {
                        "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                        "$lastUpdatedVersion": 2
                      }
                    },
                    "fan": {
                      "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                      "$lastUpdatedVersion": 3,
                      "speed": {
                        "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                        "$lastUpdatedVersion": 3
                      }
                    }
                  },
                  "$version": 3,
                  "cfg": {
                    "freq": 300
                  },
                  "fan": {
                    "speed": 2
                  }
                },
                "reported": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:05.1234567Z"
                  },
                  "$version": 1
                }
              },
              "storageFormat": 1,
              "tags": {},
              "version": 4
            }
        "#]],
    );
}

#[test]
fn primitive_replaced_by_object_and_back() {
    check(
        r#"
        reported {"a": 1}
        reported {"a": {"b": {"c": true}, "n": null}}
        reported {"a": "flat"}
        "#,
        expect![[r#"
            > reported {"a": 1}
            ok: version 3, etag AAAAAAAAAAE=, updateTwin
              event: {"properties":{"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","a":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z"}},"$version":2,"a":1}},"version":3}
            > reported {"a": {"b": {"c": true}, "n": null}}
            ok: version 4, etag AAAAAAAAAAE=, updateTwin
              event: {"properties":{"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","a":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","b":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","c":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z"}}}},"$version":3,"a":{"b":{"c":true},"n":null}}},"version":4}
            > reported {"a": "flat"}
            ok: version 5, etag AAAAAAAAAAE=, updateTwin
              event: {"properties":{"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:08.1234567Z","a":{"$lastUpdated":"2026-11-27T03:04:08.1234567Z"}},"$version":4,"a":"flat"}},"version":5}
            = {
              "etagCounter": 1,
              "properties": {
                "desired": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:05.1234567Z"
                  },
                  "$version": 1
                },
                "reported": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:08.1234567Z",
                    "a": {
                      "$lastUpdated": "2026-11-27T03:04:08.1234567Z"
                    }
                  },
                  "$version": 4,
                  "a": "flat"
                }
              },
              "storageFormat": 1,
              "tags": {},
              "version": 5
            }
        "#]],
    );
}

#[test]
fn empty_patch_still_bumps_versions() {
    check(
        r#"
        reported {}
        desired {}
        "#,
        expect![[r#"
            > reported {}
            ok: version 3, etag AAAAAAAAAAE=, updateTwin
              event: {"properties":{"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z"},"$version":2}},"version":3}
            > desired {}
            ok: version 4, etag AAAAAAAAAAI=, updateTwin
              notify: {"$version":2}
              event: {"properties":{"desired":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","$lastUpdatedVersion":2},"$version":2}},"version":4}
            = {
              "etagCounter": 2,
              "properties": {
                "desired": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                    "$lastUpdatedVersion": 2
                  },
                  "$version": 2
                },
                "reported": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:06.1234567Z"
                  },
                  "$version": 2
                }
              },
              "storageFormat": 1,
              "tags": {},
              "version": 4
            }
        "#]],
    );
}

#[test]
fn service_patch_writes_tags_and_desired_in_one_version() {
    check(
        r#"
        service-patch {"tags": {"location": {"region": "US"}}, "properties": {"desired": {"fan": "off", "x": null}, "reported": {"ignored": 1}}, "deviceId": "d1", "status": "enabled"}
        service-patch {"tags": {"location": {"city": "Oslo"}}}
        if-match "AAAAAAAAAAM="
        if-match "AAAAAAAAAAE="
        if-match *
        "#,
        expect![[r#"
            > service-patch {"tags": {"location": {"region": "US"}}, "properties": {"desired": {"fan": "off", "x": null}, "reported": {"ignored": 1}}, "deviceId": "d1", "status": "enabled"}
            ok: version 3, etag AAAAAAAAAAI=, updateTwin
              notify: {"$version":2,"fan":"off","x":null}
              event: {"properties":{"desired":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","$lastUpdatedVersion":2,"fan":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","$lastUpdatedVersion":2}},"$version":2,"fan":"off","x":null}},"tags":{"location":{"region":"US"}},"version":3}
            > service-patch {"tags": {"location": {"city": "Oslo"}}}
            ok: version 4, etag AAAAAAAAAAM=, updateTwin
              event: {"tags":{"location":{"city":"Oslo"}},"version":4}
            > if-match "AAAAAAAAAAM="
            ok
            > if-match "AAAAAAAAAAE="
            error 412 PreconditionFailed: precondition failed: If-Match "\"AAAAAAAAAAE=\"" does not match the current etag "AAAAAAAAAAM="
            > if-match *
            ok
            = {
              "etagCounter": 3,
              "properties": {
                "desired": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                    "$lastUpdatedVersion": 2,
                    "fan": {
                      "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                      "$lastUpdatedVersion": 2
                    }
                  },
                  "$version": 2,
                  "fan": "off"
                },
                "reported": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:05.1234567Z"
                  },
                  "$version": 1
                }
              },
              "storageFormat": 1,
              "tags": {
                "location": {
                  "city": "Oslo",
                  "region": "US"
                }
              },
              "version": 4
            }
        "#]],
    );
}

#[test]
fn service_replace_replaces_tags_and_desired() {
    check(
        r#"
        service-patch {"tags": {"a": 1, "b": 2}, "properties": {"desired": {"keep": false, "drop": 1}}}
        reported {"r": 1}
        service-replace {"tags": {"c": 3}, "properties": {"desired": {"keep": true, "new": {"x": null, "y": 1}, "$version": 99, "$metadata": {}}}, "etag": "AAAAAAAAAAI="}
        service-replace {"properties": {"desired": {}}}
        "#,
        expect![[r#"
            > service-patch {"tags": {"a": 1, "b": 2}, "properties": {"desired": {"keep": false, "drop": 1}}}
            ok: version 3, etag AAAAAAAAAAI=, updateTwin
              notify: {"$version":2,"drop":1,"keep":false}
              event: {"properties":{"desired":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","$lastUpdatedVersion":2,"drop":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","$lastUpdatedVersion":2},"keep":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","$lastUpdatedVersion":2}},"$version":2,"drop":1,"keep":false}},"tags":{"a":1,"b":2},"version":3}
            > reported {"r": 1}
            ok: version 4, etag AAAAAAAAAAI=, updateTwin
              event: {"properties":{"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","r":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z"}},"$version":2,"r":1}},"version":4}
            > service-replace {"tags": {"c": 3}, "properties": {"desired": {"keep": true, "new": {"x": null, "y": 1}, "$version": 99, "$metadata": {}}}, "etag": "AAAAAAAAAAI="}
            ok: version 5, etag AAAAAAAAAAM=, replaceTwin
              notify: {"$version":3,"keep":true,"new":{"y":1}}
              event: {"deviceId":"d1","etag":"AAAAAAAAAAM=","properties":{"desired":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:08.1234567Z","$lastUpdatedVersion":3,"keep":{"$lastUpdated":"2026-11-27T03:04:08.1234567Z","$lastUpdatedVersion":3},"new":{"$lastUpdated":"2026-11-27T03:04:08.1234567Z","$lastUpdatedVersion":3,"y":{"$lastUpdated":"2026-11-27T03:04:08.1234567Z","$lastUpdatedVersion":3}}},"$version":3,"keep":true,"new":{"y":1}},"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","r":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z"}},"$version":2,"r":1}},"tags":{"c":3},"version":5}
            > service-replace {"properties": {"desired": {}}}
            ok: version 6, etag AAAAAAAAAAQ=, replaceTwin
              notify: {"$version":4}
              event: {"deviceId":"d1","etag":"AAAAAAAAAAQ=","properties":{"desired":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:09.1234567Z","$lastUpdatedVersion":4},"$version":4},"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","r":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z"}},"$version":2,"r":1}},"tags":{"c":3},"version":6}
            = {
              "etagCounter": 4,
              "properties": {
                "desired": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:09.1234567Z",
                    "$lastUpdatedVersion": 4
                  },
                  "$version": 4
                },
                "reported": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                    "r": {
                      "$lastUpdated": "2026-11-27T03:04:07.1234567Z"
                    }
                  },
                  "$version": 2,
                  "r": 1
                }
              },
              "storageFormat": 1,
              "tags": {
                "c": 3
              },
              "version": 6
            }
        "#]],
    );
}

#[test]
fn replace_desired_from_configuration() {
    check(
        r#"
        desired {"old": 1}
        replace-desired {"schemaVersion": "1.1", "runtime": {"type": "docker"}}
        "#,
        expect![[r#"
            > desired {"old": 1}
            ok: version 3, etag AAAAAAAAAAI=, updateTwin
              notify: {"$version":2,"old":1}
              event: {"properties":{"desired":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","$lastUpdatedVersion":2,"old":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","$lastUpdatedVersion":2}},"$version":2,"old":1}},"version":3}
            > replace-desired {"schemaVersion": "1.1", "runtime": {"type": "docker"}}
            ok: version 4, etag AAAAAAAAAAM=, replaceTwin
              notify: {"$version":3,"runtime":{"type":"docker"},"schemaVersion":"1.1"}
              event: {"deviceId":"d1","etag":"AAAAAAAAAAM=","properties":{"desired":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","$lastUpdatedVersion":3,"runtime":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","$lastUpdatedVersion":3,"type":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","$lastUpdatedVersion":3}},"schemaVersion":{"$lastUpdated":"2026-11-27T03:04:07.1234567Z","$lastUpdatedVersion":3}},"$version":3,"runtime":{"type":"docker"},"schemaVersion":"1.1"},"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:05.1234567Z"},"$version":1}},"tags":{},"version":4}
            = {
              "etagCounter": 3,
              "properties": {
                "desired": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                    "$lastUpdatedVersion": 3,
                    "runtime": {
                      "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                      "$lastUpdatedVersion": 3,
                      "type": {
                        "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                        "$lastUpdatedVersion": 3
                      }
                    },
                    "schemaVersion": {
                      "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                      "$lastUpdatedVersion": 3
                    }
                  },
                  "$version": 3,
                  "runtime": {
                    "type": "docker"
                  },
                  "schemaVersion": "1.1"
                },
                "reported": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:05.1234567Z"
                  },
                  "$version": 1
                }
              },
              "storageFormat": 1,
              "tags": {},
              "version": 4
            }
        "#]],
    );
}

#[test]
fn malformed_and_non_object_bodies() {
    check(
        r#"
        reported {"temp":
        reported [1, 2]
        reported null
        service-patch "text"
        service-patch {"tags": [1]}
        service-patch {"properties": 5}
        service-patch {"properties": {"desired": true}}
        service-patch {"etag": 7}
        "#,
        expect![[r#"
            > reported {"temp":
            error 400 ArgumentInvalid: malformed json in reported patch: EOF while parsing a value at line 1 column 8
            > reported [1, 2]
            error 400 ArgumentInvalid: reported patch must be an object, found an array
            > reported null
            error 400 ArgumentInvalid: reported patch must be an object, found null
            > service-patch "text"
            error 400 ArgumentInvalid: twin must be an object, found a string
            > service-patch {"tags": [1]}
            error 400 ArgumentInvalid: tags must be an object, found an array
            > service-patch {"properties": 5}
            error 400 ArgumentInvalid: properties must be an object, found a number
            > service-patch {"properties": {"desired": true}}
            error 400 ArgumentInvalid: properties.desired must be an object, found a boolean
            > service-patch {"etag": 7}
            error 400 ArgumentInvalid: etag must be a string, found a number
            = {
              "etagCounter": 1,
              "properties": {
                "desired": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:05.1234567Z"
                  },
                  "$version": 1
                },
                "reported": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:05.1234567Z"
                  },
                  "$version": 1
                }
              },
              "storageFormat": 1,
              "tags": {},
              "version": 2
            }
        "#]],
    );
}

#[test]
fn key_rules() {
    check(
        r#"
        reported {"": 1}
        reported {"$version": 4}
        reported {"a": {"$metadata": {}}}
        reported {"a.b": 1}
        reported {"a b": 1}
        reported {"a$b": 1}
        reported {"tab\there": 1}
        reported {"c1\u0085": 1}
        service-patch {"tags": {"$etag": "x"}}
        reported {"ok-key_with:punctuation!é": 1}
        "#,
        expect![[r#"
            > reported {"": 1}
            error 400 ArgumentInvalid: empty key under properties.reported
            > reported {"$version": 4}
            error 400 ArgumentInvalid: key "$version" under properties.reported is reserved for system properties
            > reported {"a": {"$metadata": {}}}
            error 400 ArgumentInvalid: key "$metadata" under properties.reported.a is reserved for system properties
            > reported {"a.b": 1}
            error 400 ArgumentInvalid: key "a.b" under properties.reported contains the forbidden character '.'
            > reported {"a b": 1}
            error 400 ArgumentInvalid: key "a b" under properties.reported contains the forbidden character ' '
            > reported {"a$b": 1}
            error 400 ArgumentInvalid: key "a$b" under properties.reported contains the forbidden character '$'
            > reported {"tab\there": 1}
            error 400 ArgumentInvalid: key "tab\there" under properties.reported contains the forbidden character '\t'
            > reported {"c1\u0085": 1}
            error 400 ArgumentInvalid: key "c1\u{85}" under properties.reported contains the forbidden character '\u{85}'
            > service-patch {"tags": {"$etag": "x"}}
            error 400 ArgumentInvalid: key "$etag" under tags is reserved for system properties
            > reported {"ok-key_with:punctuation!é": 1}
            ok: version 3, etag AAAAAAAAAAE=, updateTwin
              event: {"properties":{"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:15.1234567Z","ok-key_with:punctuation!é":{"$lastUpdated":"2026-11-27T03:04:15.1234567Z"}},"$version":2,"ok-key_with:punctuation!é":1}},"version":3}
            = {
              "etagCounter": 1,
              "properties": {
                "desired": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:05.1234567Z"
                  },
                  "$version": 1
                },
                "reported": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:15.1234567Z",
                    "ok-key_with:punctuation!é": {
                      "$lastUpdated": "2026-11-27T03:04:15.1234567Z"
                    }
                  },
                  "$version": 2,
                  "ok-key_with:punctuation!é": 1
                }
              },
              "storageFormat": 1,
              "tags": {},
              "version": 3
            }
        "#]],
    );
}

#[test]
fn value_rules() {
    check(
        r#"
        reported {"big": 4503599627370496}
        reported {"small": -4503599627370497}
        reported {"huge": 18446744073709551615}
        reported {"list": [1, {"deep": 9007199254740993}]}
        reported {"max": 4503599627370495, "min": -4503599627370496, "float": 1e300}
        "#,
        expect![[r#"
            > reported {"big": 4503599627370496}
            error 400 ArgumentInvalid: integer 4503599627370496 at properties.reported.big is outside the range -4503599627370496..=4503599627370495
            > reported {"small": -4503599627370497}
            error 400 ArgumentInvalid: integer -4503599627370497 at properties.reported.small is outside the range -4503599627370496..=4503599627370495
            > reported {"huge": 18446744073709551615}
            error 400 ArgumentInvalid: integer 18446744073709551615 at properties.reported.huge is outside the range -4503599627370496..=4503599627370495
            > reported {"list": [1, {"deep": 9007199254740993}]}
            error 400 ArgumentInvalid: integer 9007199254740993 at properties.reported.list[1].deep is outside the range -4503599627370496..=4503599627370495
            > reported {"max": 4503599627370495, "min": -4503599627370496, "float": 1e300}
            ok: version 3, etag AAAAAAAAAAE=, updateTwin
              event: {"properties":{"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:10.1234567Z","float":{"$lastUpdated":"2026-11-27T03:04:10.1234567Z"},"max":{"$lastUpdated":"2026-11-27T03:04:10.1234567Z"},"min":{"$lastUpdated":"2026-11-27T03:04:10.1234567Z"}},"$version":2,"float":1e+300,"max":4503599627370495,"min":-4503599627370496}},"version":3}
            = {
              "etagCounter": 1,
              "properties": {
                "desired": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:05.1234567Z"
                  },
                  "$version": 1
                },
                "reported": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:10.1234567Z",
                    "float": {
                      "$lastUpdated": "2026-11-27T03:04:10.1234567Z"
                    },
                    "max": {
                      "$lastUpdated": "2026-11-27T03:04:10.1234567Z"
                    },
                    "min": {
                      "$lastUpdated": "2026-11-27T03:04:10.1234567Z"
                    }
                  },
                  "$version": 2,
                  "float": 1e+300,
                  "max": 4503599627370495,
                  "min": -4503599627370496
                }
              },
              "storageFormat": 1,
              "tags": {},
              "version": 3
            }
        "#]],
    );
}

/// Builds `{"k1": {"k2": ... {"k<levels>": leaf}}}`.
fn nested(levels: usize, leaf: Value) -> Value {
    (1..=levels)
        .rev()
        .fold(leaf, |inner, level| json!({ format!("k{level}"): inner }))
}

#[test]
fn depth_limit() {
    // Ten nested objects holding a primitive: IoT Hub's documented maximum.
    let at_limit = nested(10, json!({"property": "value"}));
    // Eleven nested objects.
    let object_too_deep = nested(11, json!({"property": "value"}));
    // Ten nested objects holding an array: the array is the eleventh container.
    let array_too_deep = nested(10, json!({"list": [1]}));
    check(
        &format!("reported {at_limit}\nreported {object_too_deep}\nreported {array_too_deep}"),
        expect![[r#"
            > reported {"k1":{"k2":{"k3":{"k4":{"k5":{"k6":{"k7":{"k8":{"k9":{"k10":{"property":"value"}}}}}}}}}}}
            ok: version 3, etag AAAAAAAAAAE=, updateTwin
              event: {"properties":{"reported":{"$metadata":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","k1":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","k2":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","k3":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","k4":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","k5":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","k6":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","k7":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","k8":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","k9":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","k10":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z","property":{"$lastUpdated":"2026-11-27T03:04:06.1234567Z"}}}}}}}}}}}},"$version":2,"k1":{"k2":{"k3":{"k4":{"k5":{"k6":{"k7":{"k8":{"k9":{"k10":{"property":"value"}}}}}}}}}}}},"version":3}
            > reported {"k1":{"k2":{"k3":{"k4":{"k5":{"k6":{"k7":{"k8":{"k9":{"k10":{"k11":{"property":"value"}}}}}}}}}}}}
            error 400 ArgumentInvalid: properties.reported.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11 is nested 11 levels deep, the limit is 10
            > reported {"k1":{"k2":{"k3":{"k4":{"k5":{"k6":{"k7":{"k8":{"k9":{"k10":{"list":[1]}}}}}}}}}}}
            error 400 ArgumentInvalid: properties.reported.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.list is nested 11 levels deep, the limit is 10
            = {
              "etagCounter": 1,
              "properties": {
                "desired": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:05.1234567Z"
                  },
                  "$version": 1
                },
                "reported": {
                  "$metadata": {
                    "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                    "k1": {
                      "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                      "k2": {
                        "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                        "k3": {
                          "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                          "k4": {
                            "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                            "k5": {
                              "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                              "k6": {
                                "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                                "k7": {
                                  "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                                  "k8": {
                                    "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                                    "k9": {
                                      "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                                      "k10": {
                                        "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                                        "property": {
                                          "$lastUpdated": "2026-11-27T03:04:06.1234567Z"
                                        }
                                      }
                                    }
                                  }
                                }
                              }
                            }
                          }
                        }
                      }
                    }
                  },
                  "$version": 2,
                  "k1": {
                    "k2": {
                      "k3": {
                        "k4": {
                          "k5": {
                            "k6": {
                              "k7": {
                                "k8": {
                                  "k9": {
                                    "k10": {
                                      "property": "value"
                                    }
                                  }
                                }
                              }
                            }
                          }
                        }
                      }
                    }
                  }
                }
              },
              "storageFormat": 1,
              "tags": {},
              "version": 3
            }
        "#]],
    );
}

#[test]
fn length_limits() {
    let long_key = "k".repeat(1025);
    let key_at_limit = "k".repeat(1024);
    let long_string = "s".repeat(4097);
    let string_at_limit = "é".repeat(2048);
    let script = format!(
        "reported {{\"{long_key}\": 1}}\nreported {{\"a\": {{\"b\": \"{long_string}\"}}}}\n\
         reported {{\"list\": [\"{long_string}\"]}}\nreported {{\"{key_at_limit}\": \"{string_at_limit}\"}}"
    );
    let mut twin = Twin::new(time(0));
    let outcomes: Vec<String> = script
        .lines()
        .enumerate()
        .map(|(index, line)| {
            let body = line.trim_start_matches("reported ");
            let outcome = parse_json_object(body.as_bytes(), "reported patch")
                .and_then(|patch| twin.apply_reported_patch(patch, time(index + 1)));
            match outcome {
                Ok(change) => format!("ok: version {}", change.twin_version),
                Err(error) => format!("error {}: {error}", error.status_code()),
            }
        })
        .collect();
    expect![[r#"
        [
            "error 400: key under properties.reported is 1025 bytes long, the limit is 1024",
            "error 400: string value at properties.reported.a.b is 4097 bytes long, the limit is 4096",
            "error 400: string value at properties.reported.list[0] is 4097 bytes long, the limit is 4096",
            "ok: version 3",
        ]
    "#]].assert_debug_eq(&outcomes);
}

/// `count` string properties of `value_length` bytes each, under 2-byte keys.
fn properties_of_size(count: usize, value_length: usize) -> Value {
    Value::Object(
        (0..count)
            .map(|index| {
                (
                    format!("{index:02}"),
                    Value::String("v".repeat(value_length)),
                )
            })
            .collect(),
    )
}

#[test]
fn section_size_limits() {
    // 32 * (2 + 1022) = 32768 bytes: exactly the limit.
    let desired_at_limit = properties_of_size(32, 1022);
    let reported_over = properties_of_size(33, 1022);
    // 8 * (2 + 1022) = 8192 bytes for tags.
    let tags_at_limit = properties_of_size(8, 1022);
    let tags_over = properties_of_size(9, 1022);
    let mut twin = Twin::new(time(0));
    let mut outcomes = Vec::new();
    let mut record = |label: &str, outcome: Result<TwinChange, TwinError>| {
        outcomes.push(match outcome {
            Ok(change) => format!("{label}: ok, version {}", change.twin_version),
            Err(error) => format!(
                "{label}: error {} {}: {error}",
                error.status_code(),
                error.error_code()
            ),
        });
    };
    let object = |value: &Value| value.as_object().expect("object").clone();
    record(
        "desired at limit",
        twin.apply_desired_patch(object(&desired_at_limit), time(1)),
    );
    record(
        "one more desired byte",
        twin.apply_desired_patch(object(&json!({"x": ""})), time(2)),
    );
    record(
        "shrinking desired",
        twin.apply_desired_patch(object(&json!({"00": null})), time(3)),
    );
    record(
        "reported over",
        twin.apply_reported_patch(object(&reported_over), time(4)),
    );
    let tags_write = |tags: &Value| ServiceTwinUpdate {
        tags: Some(object(tags)),
        ..ServiceTwinUpdate::default()
    };
    record(
        "tags at limit",
        twin.apply_service_patch(tags_write(&tags_at_limit), time(5)),
    );
    record(
        "tags over",
        twin.apply_service_replace(tags_write(&tags_over), time(6)),
    );
    expect![[r#"
        [
            "desired at limit: ok, version 3",
            "one more desired byte: error 413 MessageTooLarge: properties.desired would be 32769 bytes, the limit is 32768",
            "shrinking desired: ok, version 4",
            "reported over: error 413 MessageTooLarge: properties.reported would be 33792 bytes, the limit is 32768",
            "tags at limit: ok, version 5",
            "tags over: error 413 MessageTooLarge: tags would be 9216 bytes, the limit is 8192",
        ]
    "#]].assert_debug_eq(&outcomes);
    assert_eq!(twin.desired().content().len(), 31);
    assert!(twin.reported().content().is_empty());
}

#[test]
fn version_preconditions() {
    let mut twin = Twin::new(time(0));
    twin.apply_reported_patch(Map::new(), time(1))
        .expect("empty patch applies");
    let outcomes = [
        twin.check_section_version(TwinSection::Reported, 2),
        twin.check_section_version(TwinSection::Reported, 1),
        twin.check_section_version(TwinSection::Desired, 1),
    ];
    let described: Vec<String> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(()) => "ok".to_owned(),
            Err(error) => format!("error {}: {error}", error.status_code()),
        })
        .collect();
    expect![[r#"
        [
            "ok",
            "error 412: properties.reported is at version 2, the request expected version 1",
            "ok",
        ]
    "#]]
    .assert_debug_eq(&described);
}

/// Snapshots the device GET document and the service twin for a twin with some content.
fn check_shapes(identity: &TwinIdentity, expect: Expect) {
    let mut twin = Twin::new(time(0));
    let desired = json!({"cfg": {"freq": 300}});
    let reported = json!({"conn": {"type": "cellular"}});
    twin.apply_service_patch(
        ServiceTwinUpdate::from_json(
            json!({"tags": {"location": {"region": "US"}}, "properties": {"desired": desired}}),
        )
        .expect("valid body"),
        time(1),
    )
    .expect("valid patch");
    twin.apply_reported_patch(reported.as_object().expect("object").clone(), time(2))
        .expect("valid patch");
    let device = twin.device_twin_document().to_string();
    let service =
        serde_json::to_string_pretty(&twin.to_service_json(identity)).expect("serializable");
    expect.assert_eq(&format!("device GET: {device}\nservice: {service}\n"));
}

fn device_identity() -> TwinIdentity {
    TwinIdentity {
        device_id: "d1".to_owned(),
        module_id: None,
        device_etag: "NzQ2".to_owned(),
        status: IdentityStatus::Enabled,
        status_reason: None,
        status_update_time: None,
        connection_state: ConnectionState::Disconnected,
        last_activity_time: None,
        cloud_to_device_message_count: 0,
        authentication_type: AuthenticationType::Sas,
        primary_thumbprint: None,
        secondary_thumbprint: None,
        model_id: String::new(),
        iot_edge: Some(false),
        device_scope: None,
        parent_scopes: None,
    }
}

#[test]
fn device_and_service_shapes() {
    check_shapes(
        &device_identity(),
        expect![[r#"
        device GET: {"desired":{"$version":2,"cfg":{"freq":300}},"reported":{"$version":2,"conn":{"type":"cellular"}}}
        service: {
          "authenticationType": "sas",
          "capabilities": {
            "iotEdge": false
          },
          "cloudToDeviceMessageCount": 0,
          "connectionState": "Disconnected",
          "deviceEtag": "NzQ2",
          "deviceId": "d1",
          "etag": "AAAAAAAAAAI=",
          "lastActivityTime": "0001-01-01T00:00:00Z",
          "modelId": "",
          "properties": {
            "desired": {
              "$metadata": {
                "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                "$lastUpdatedVersion": 2,
                "cfg": {
                  "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                  "$lastUpdatedVersion": 2,
                  "freq": {
                    "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                    "$lastUpdatedVersion": 2
                  }
                }
              },
              "$version": 2,
              "cfg": {
                "freq": 300
              }
            },
            "reported": {
              "$metadata": {
                "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                "conn": {
                  "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                  "type": {
                    "$lastUpdated": "2026-11-27T03:04:07.1234567Z"
                  }
                }
              },
              "$version": 2,
              "conn": {
                "type": "cellular"
              }
            }
          },
          "status": "enabled",
          "statusReason": null,
          "statusUpdateTime": "0001-01-01T00:00:00Z",
          "tags": {
            "location": {
              "region": "US"
            }
          },
          "version": 4,
          "x509Thumbprint": {
            "primaryThumbprint": null,
            "secondaryThumbprint": null
          }
        }
    "#]],
    );
}

#[test]
fn module_and_edge_service_shapes() {
    let module = TwinIdentity {
        module_id: Some("$edgeAgent".to_owned()),
        status: IdentityStatus::Disabled,
        status_reason: Some("maintenance".to_owned()),
        status_update_time: Some(time(3)),
        connection_state: ConnectionState::Connected,
        last_activity_time: Some(time(4)),
        cloud_to_device_message_count: 2,
        authentication_type: AuthenticationType::SelfSigned,
        primary_thumbprint: Some("AB12".to_owned()),
        secondary_thumbprint: Some("CD34".to_owned()),
        model_id: "dtmi:com:example;1".to_owned(),
        iot_edge: None,
        device_scope: Some("ms-azure-iot-edge://edge1-1".to_owned()),
        parent_scopes: Some(vec!["ms-azure-iot-edge://p-2".to_owned()]),
        ..device_identity()
    };
    check_shapes(
        &module,
        expect![[r#"
        device GET: {"desired":{"$version":2,"cfg":{"freq":300}},"reported":{"$version":2,"conn":{"type":"cellular"}}}
        service: {
          "authenticationType": "selfSigned",
          "cloudToDeviceMessageCount": 2,
          "connectionState": "Connected",
          "deviceEtag": "NzQ2",
          "deviceId": "d1",
          "deviceScope": "ms-azure-iot-edge://edge1-1",
          "etag": "AAAAAAAAAAI=",
          "lastActivityTime": "2026-11-27T03:04:09.1234567Z",
          "modelId": "dtmi:com:example;1",
          "moduleId": "$edgeAgent",
          "parentScopes": [
            "ms-azure-iot-edge://p-2"
          ],
          "properties": {
            "desired": {
              "$metadata": {
                "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                "$lastUpdatedVersion": 2,
                "cfg": {
                  "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                  "$lastUpdatedVersion": 2,
                  "freq": {
                    "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                    "$lastUpdatedVersion": 2
                  }
                }
              },
              "$version": 2,
              "cfg": {
                "freq": 300
              }
            },
            "reported": {
              "$metadata": {
                "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                "conn": {
                  "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                  "type": {
                    "$lastUpdated": "2026-11-27T03:04:07.1234567Z"
                  }
                }
              },
              "$version": 2,
              "conn": {
                "type": "cellular"
              }
            }
          },
          "status": "disabled",
          "statusReason": "maintenance",
          "statusUpdateTime": "2026-11-27T03:04:08.1234567Z",
          "tags": {
            "location": {
              "region": "US"
            }
          },
          "version": 4,
          "x509Thumbprint": {
            "primaryThumbprint": "AB12",
            "secondaryThumbprint": "CD34"
          }
        }
    "#]],
    );
}

#[test]
fn replace_change_event_carries_ids_and_whole_twin() {
    let mut twin = Twin::new(time(0));
    twin.apply_reported_patch(
        parse_json_object(br#"{"r": 1}"#, "patch").expect("object"),
        time(1),
    )
    .expect("applies");
    let change = twin
        .apply_service_replace(
            ServiceTwinUpdate::parse(br#"{"tags": {"t": 1}, "properties": {"desired": {"d": 2}}}"#)
                .expect("valid"),
            time(2),
        )
        .expect("applies");
    let event = serde_json::to_string_pretty(&change.change_event_body("d1", Some("m1")))
        .expect("serializable");
    expect![[r#"
        replaceTwin
        {
          "deviceId": "d1",
          "etag": "AAAAAAAAAAI=",
          "moduleId": "m1",
          "properties": {
            "desired": {
              "$metadata": {
                "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                "$lastUpdatedVersion": 2,
                "d": {
                  "$lastUpdated": "2026-11-27T03:04:07.1234567Z",
                  "$lastUpdatedVersion": 2
                }
              },
              "$version": 2,
              "d": 2
            },
            "reported": {
              "$metadata": {
                "$lastUpdated": "2026-11-27T03:04:06.1234567Z",
                "r": {
                  "$lastUpdated": "2026-11-27T03:04:06.1234567Z"
                }
              },
              "$version": 2,
              "r": 1
            }
          },
          "tags": {
            "t": 1
          },
          "version": 4
        }
    "#]]
    .assert_eq(&format!("{}\n{event}\n", change.op_type()));
}

#[test]
fn storage_rejects_corrupt_documents() {
    let twin = Twin::new(time(0));
    let good = twin.to_storage_value();
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut with = |label: &'static str, edit: &dyn Fn(&mut Value)| {
        let mut value = good.clone();
        edit(&mut value);
        cases.push((label, value));
    };
    with("future format", &|value| value["storageFormat"] = json!(2));
    with("missing version", &|value| {
        value.as_object_mut().expect("object").remove("version");
    });
    with("unknown field", &|value| value["extra"] = json!(true));
    with("tags not object", &|value| value["tags"] = json!([]));
    with("metadata shape", &|value| {
        value["properties"]["reported"]["x"] = json!(1)
    });
    with("bad timestamp", &|value| {
        value["properties"]["desired"]["$metadata"]["$lastUpdated"] = json!("soon")
    });
    with("invalid content", &|value| {
        value["properties"]["reported"]["a.b"] = json!(1);
        value["properties"]["reported"]["$metadata"]["a.b"] =
            json!({"$lastUpdated": "2026-11-27T03:04:05Z"});
    });
    with("no metadata", &|value| {
        value["properties"]["desired"]
            .as_object_mut()
            .expect("object")
            .remove("$metadata");
    });
    let mut outcomes: Vec<String> = cases
        .into_iter()
        .map(|(label, value)| match Twin::from_storage_value(value) {
            Ok(_) => format!("{label}: accepted"),
            Err(error) => format!("{label}: {error}"),
        })
        .collect();
    outcomes.push(match Twin::from_storage_json("{") {
        Ok(_) => "truncated: accepted".to_owned(),
        Err(error) => format!("truncated: {error}"),
    });
    expect![[r#"
        [
            "future format: invalid stored twin: unsupported storageFormat 2",
            "missing version: invalid stored twin: version is missing or not an unsigned integer",
            "unknown field: invalid stored twin: unknown field \"extra\" in the top level",
            "tags not object: invalid stored twin: tags is missing or not an object",
            "metadata shape: invalid stored twin: properties.reported.$metadata does not match the shape of properties.reported",
            "bad timestamp: invalid stored twin: properties.desired.$metadata: invalid timestamp \"soon\": premature end of input",
            "invalid content: invalid stored twin: key \"a.b\" under properties.reported contains the forbidden character '.'",
            "no metadata: invalid stored twin: properties.desired has no $metadata",
            "truncated: invalid stored twin: not json: EOF while parsing an object at line 1 column 1",
        ]
    "#]].assert_debug_eq(&outcomes);
}
