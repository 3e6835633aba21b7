//! Snapshot tests with the topics captured from the real SDKs, and property tests for round trips.

use expect_test::{Expect, expect};
use iothub_types::{AckMode, DeviceId, Identity, Message, ModuleId, SystemProperty};
use proptest::prelude::*;

use crate::{BagDirection, ClientPublish, ClientSubscription, HubPublish, MessageProperties};

/// Renders parsed properties one per line: system properties by routing name, then application ones.
fn render_properties(properties: &MessageProperties) -> String {
    let mut rendered = String::new();
    for (property, value) in properties.system.iter() {
        rendered.push_str(&format!("  system {property} = {value:?}\n"));
    }
    for (name, value) in &properties.application {
        rendered.push_str(&format!("  app {name:?} = {value:?}\n"));
    }
    rendered
}

fn render_client_publish(publish: &ClientPublish) -> String {
    match publish {
        ClientPublish::Telemetry {
            device,
            module,
            properties,
        } => {
            format!(
                "Telemetry device={device} module={module:?}\n{}",
                render_properties(properties)
            )
        }
        other => format!("{other:?}\n"),
    }
}

fn render_hub_publish(publish: &HubPublish) -> String {
    match publish {
        HubPublish::CloudToDevice { device, properties } => {
            format!(
                "CloudToDevice device={device}\n{}",
                render_properties(properties)
            )
        }
        HubPublish::ModuleInput {
            device,
            module,
            input_name,
            properties,
        } => format!(
            "ModuleInput device={device} module={module} input={input_name:?}\n{}",
            render_properties(properties)
        ),
        other => format!("{other:?}\n"),
    }
}

/// Parses `topic` as a client publish, snapshots the result and the topic formatted back from it.
fn check_client_publish(topic: &str, expected: Expect) {
    let rendered = match ClientPublish::parse(topic) {
        Ok(publish) => format!(
            "{}formatted {}\n",
            render_client_publish(&publish),
            publish.to_topic()
        ),
        Err(error) => format!("error: {error}\n"),
    };
    expected.assert_eq(&rendered);
}

/// Parses `topic` as a hub publish, snapshots the result and the topic formatted back from it.
fn check_hub_publish(topic: &str, expected: Expect) {
    let rendered = match HubPublish::parse(topic) {
        Ok(publish) => format!(
            "{}formatted {}\n",
            render_hub_publish(&publish),
            publish.to_topic()
        ),
        Err(error) => format!("error: {error}\n"),
    };
    expected.assert_eq(&rendered);
}

/// Parses `filter` as a subscription and snapshots the result and the filter formatted back from it.
fn check_subscription(filter: &str, expected: Expect) {
    let rendered = match ClientSubscription::parse(filter) {
        Ok(subscription) => format!("{subscription:?}\nformatted {}\n", subscription.to_filter()),
        Err(error) => format!("error: {error}\n"),
    };
    expected.assert_eq(&rendered);
}

/// Snapshots, for each topic, whether `identity` may publish it (or subscribe to it, for filters ending in `#`).
fn check_authorization(identity: &str, topics: &[&str], expected: Expect) {
    let identity: Identity = identity.parse().unwrap();
    let mut rendered = String::new();
    for topic in topics {
        let outcome = if topic.ends_with('#') {
            ClientSubscription::parse_for(&identity, topic).map(|_| ())
        } else {
            ClientPublish::parse_for(&identity, topic).map(|_| ())
        };
        match outcome {
            Ok(()) => rendered.push_str(&format!("{topic}: allowed\n")),
            Err(error) => rendered.push_str(&format!("{topic}: {error}\n")),
        }
    }
    expected.assert_eq(&rendered);
}

const CAPTURED_TELEMETRY: &str = "devices/dev1/messages/events/%24.mid=mid-1&%24.cid=cid%201&%24.uid=user%2F1&%24.ct=application%2Fjson&%24.ce=utf-8&%24.exp=2030-01-02T03%3A04%3A05&a%26b=x%3Dy&alert=high%20temp";

#[test]
fn captured_python_telemetry() {
    check_client_publish(
        CAPTURED_TELEMETRY,
        expect![[r#"
            Telemetry device=dev1 module=None
              system $messageId = "mid-1"
              system $correlationId = "cid 1"
              system $userId = "user/1"
              system $contentType = "application/json"
              system $contentEncoding = "utf-8"
              system $expiryTimeUtc = "2030-01-02T03:04:05"
              app "a&b" = Some("x=y")
              app "alert" = Some("high temp")
            formatted devices/dev1/messages/events/%24.mid=mid-1&%24.cid=cid%201&%24.uid=user%2F1&%24.ct=application%2Fjson&%24.ce=utf-8&%24.exp=2030-01-02T03%3A04%3A05&a%26b=x%3Dy&alert=high%20temp
        "#]],
    );
}

#[test]
fn formatting_a_message_reproduces_the_captured_telemetry_topic() {
    let mut message = Message::new(&b"{}"[..])
        .with_application_property("a&b", Some("x=y"))
        .with_application_property("alert", Some("high temp"));
    message.system.message_id = Some("mid-1".into());
    message.system.correlation_id = Some("cid 1".into());
    message.system.user_id = Some("user/1".into());
    message.system.content_type = Some("application/json".into());
    message.system.content_encoding = Some("utf-8".into());
    message.system.expiry_time_utc = Some("2030-01-02T03:04:05".into());
    let identity: Identity = "dev1".parse().unwrap();
    assert_eq!(
        ClientPublish::telemetry(&identity, &message).to_topic(),
        CAPTURED_TELEMETRY
    );
}

#[test]
fn module_output_and_module_telemetry() {
    check_client_publish(
        "devices/dev1/modules/mod1/messages/events/%24.on=output1",
        expect![[r#"
            Telemetry device=dev1 module=Some(ModuleId("mod1"))
              system $outputName = "output1"
            formatted devices/dev1/modules/mod1/messages/events/%24.on=output1
        "#]],
    );
    check_client_publish(
        "devices/dev1/modules/$edgeAgent/messages/events/",
        expect![[r#"
            Telemetry device=dev1 module=Some(ModuleId("$edgeAgent"))
            formatted devices/dev1/modules/$edgeAgent/messages/events/
        "#]],
    );
}

#[test]
fn empty_bag_with_and_without_trailing_slash() {
    check_client_publish(
        "devices/dev1/messages/events/",
        expect![[r#"
            Telemetry device=dev1 module=None
            formatted devices/dev1/messages/events/
        "#]],
    );
    check_client_publish(
        "devices/dev1/messages/events",
        expect![[r#"
            Telemetry device=dev1 module=None
            formatted devices/dev1/messages/events/
        "#]],
    );
}

#[test]
fn every_system_key_bare_keys_empty_values_and_plus() {
    check_client_publish(
        "devices/dev1/messages/events/%24.mid=1&%24.cid=2&%24.uid=3&%24.ct=4&%24.ce=5&%24.exp=6&%24.on=7&%24.ifid=urn%3Aazureiot%3ASecurity%3ASecurityAgent%3A1&%24.ctime=9&%24.sub=10&%24.to=11&%24.cdid=12&%24.cmid=13&%24.diagid=14&%24.diagctx=15&%24.schema=16&iothub-ack=full&bare&empty=&plus=a+b%2Bc&&%24.mid",
        expect![[r#"
            Telemetry device=dev1 module=None
              system $messageId = "1"
              system $to = "11"
              system $correlationId = "2"
              system $userId = "3"
              system $contentType = "4"
              system $contentEncoding = "5"
              system $expiryTimeUtc = "6"
              system $outputName = "7"
              system $interfaceId = "urn:azureiot:Security:SecurityAgent:1"
              system $creationTimeUtc = "9"
              system $dt-subject = "10"
              system $messageSchema = "16"
              system $connectionDeviceId = "12"
              system $connectionModuleId = "13"
              system $diagId = "14"
              system $diagContext = "15"
              app "iothub-ack" = Some("full")
              app "bare" = None
              app "empty" = Some("")
              app "plus" = Some("a+b+c")
              app "$.mid" = None
            formatted devices/dev1/messages/events/%24.mid=1&%24.to=11&%24.cid=2&%24.uid=3&%24.ct=4&%24.ce=5&%24.exp=6&%24.on=7&%24.ifid=urn%3Aazureiot%3ASecurity%3ASecurityAgent%3A1&%24.ctime=9&%24.sub=10&%24.schema=16&%24.cdid=12&%24.cmid=13&%24.diagid=14&%24.diagctx=15&iothub-ack=full&bare&empty=&plus=a%2Bb%2Bc&%24.mid
        "#]],
    );
}

#[test]
fn twin_and_method_publishes() {
    check_client_publish(
        "$iothub/twin/GET/?$rid=9b1a7c52-2f43-4d6e-a3b5-3c1f1d8a9e10",
        expect![[r#"
            TwinGet { rid: "9b1a7c52-2f43-4d6e-a3b5-3c1f1d8a9e10" }
            formatted $iothub/twin/GET/?$rid=9b1a7c52-2f43-4d6e-a3b5-3c1f1d8a9e10
        "#]],
    );
    check_client_publish(
        "$iothub/twin/PATCH/properties/reported/?$rid=4",
        expect![[r#"
            TwinPatchReported { rid: "4", version: None }
            formatted $iothub/twin/PATCH/properties/reported/?$rid=4
        "#]],
    );
    check_client_publish(
        "$iothub/twin/PATCH/properties/reported/?$rid=4&$version=12&extra=1&flag",
        expect![[r#"
            TwinPatchReported { rid: "4", version: Some(12) }
            formatted $iothub/twin/PATCH/properties/reported/?$rid=4&$version=12
        "#]],
    );
    check_client_publish(
        "$iothub/methods/res/200/?$rid=7",
        expect![[r#"
            MethodResponse { status: 200, rid: "7" }
            formatted $iothub/methods/res/200/?$rid=7
        "#]],
    );
    check_client_publish(
        "$iothub/methods/res/-1/?$rid=7",
        expect![[r#"
            MethodResponse { status: -1, rid: "7" }
            formatted $iothub/methods/res/-1/?$rid=7
        "#]],
    );
}

#[test]
fn client_publish_errors() {
    let cases = [
        "",
        "foo",
        "devices/dev1",
        "devices/dev1/messages/devicebound/",
        "devices/dev1/messages/eventsX",
        "devices/dev1/modules/mod1/inputs/in1/",
        "devices/bad id/messages/events/",
        "devices/dev1/modules//messages/events/",
        "devices/dev1/messages/events/k=%FF",
        "$iothub/twin/GET/",
        "$iothub/twin/GET/?rid=1",
        "$iothub/twin/PATCH/properties/reported/?$rid=1&$version=x",
        "$iothub/twin/PATCH/properties/desired/?$version=1",
        "$iothub/methods/res/abc/?$rid=1",
        "$iothub/methods/POST/reboot/?$rid=1",
        "$iothub/twin/res/200/?$rid=1",
    ];
    let rendered: String = cases
        .iter()
        .map(|topic| match ClientPublish::parse(topic) {
            Ok(publish) => format!("{topic:?}: unexpectedly parsed as {publish:?}\n"),
            Err(error) => format!("{topic:?}: {error}\n"),
        })
        .collect();
    expect![[r#"
        "": unknown topic ""
        "foo": unknown topic "foo"
        "devices/dev1": unknown topic "devices/dev1"
        "devices/dev1/messages/devicebound/": unknown topic "devices/dev1/messages/devicebound/"
        "devices/dev1/messages/eventsX": unknown topic "devices/dev1/messages/eventsX"
        "devices/dev1/modules/mod1/inputs/in1/": unknown topic "devices/dev1/modules/mod1/inputs/in1/"
        "devices/bad id/messages/events/": invalid device id in topic: device id contains the character ' ' at byte 3, which IoT Hub does not allow
        "devices/dev1/modules//messages/events/": invalid module id in topic: module id must not be empty
        "devices/dev1/messages/events/k=%FF": percent-decoded property value "%FF" is not valid UTF-8
        "$iothub/twin/GET/": topic "$iothub/twin/GET/" has no $rid
        "$iothub/twin/GET/?rid=1": topic "$iothub/twin/GET/?rid=1" has no $rid
        "$iothub/twin/PATCH/properties/reported/?$rid=1&$version=x": $version "x" is not an unsigned integer
        "$iothub/twin/PATCH/properties/desired/?$version=1": unknown topic "$iothub/twin/PATCH/properties/desired/?$version=1"
        "$iothub/methods/res/abc/?$rid=1": status "abc" is not an integer status code
        "$iothub/methods/POST/reboot/?$rid=1": unknown topic "$iothub/methods/POST/reboot/?$rid=1"
        "$iothub/twin/res/200/?$rid=1": unknown topic "$iothub/twin/res/200/?$rid=1"
    "#]]
    .assert_eq(&rendered);
}

#[test]
fn captured_hub_topics() {
    check_hub_publish(
        "$iothub/twin/res/200/?$rid=9b1a7c52-2f43-4d6e-a3b5-3c1f1d8a9e10",
        expect![[r#"
            TwinResponse { status: 200, rid: "9b1a7c52-2f43-4d6e-a3b5-3c1f1d8a9e10", version: None }
            formatted $iothub/twin/res/200/?$rid=9b1a7c52-2f43-4d6e-a3b5-3c1f1d8a9e10
        "#]],
    );
    check_hub_publish(
        "$iothub/twin/res/204/?$rid=9b1a7c52&$version=2",
        expect![[r#"
            TwinResponse { status: 204, rid: "9b1a7c52", version: Some(2) }
            formatted $iothub/twin/res/204/?$rid=9b1a7c52&$version=2
        "#]],
    );
    check_hub_publish(
        "$iothub/twin/PATCH/properties/desired/?$version=6",
        expect![[r#"
            DesiredPropertiesPatch { version: 6 }
            formatted $iothub/twin/PATCH/properties/desired/?$version=6
        "#]],
    );
    check_hub_publish(
        "$iothub/methods/POST/reboot/?$rid=7",
        expect![[r#"
            MethodRequest { method_name: "reboot", rid: "7" }
            formatted $iothub/methods/POST/reboot/?$rid=7
        "#]],
    );
    check_hub_publish(
        "$iothub/methods/POST/set%20fan%2Fspeed/?$rid=8",
        expect![[r#"
            MethodRequest { method_name: "set fan/speed", rid: "8" }
            formatted $iothub/methods/POST/set%20fan%2Fspeed/?$rid=8
        "#]],
    );
    check_hub_publish(
        "devices/dev1/messages/devicebound/%24.mid=m-1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&%24.cid=c-1&%24.ct=application%2Fjson&%24.ce=utf-8&iothub-ack=full&prop1=v%201",
        expect![[r#"
            CloudToDevice device=dev1
              system $messageId = "m-1"
              system $to = "/devices/dev1/messages/deviceBound"
              system $correlationId = "c-1"
              system $contentType = "application/json"
              system $contentEncoding = "utf-8"
              system $ack = "full"
              app "prop1" = Some("v 1")
            formatted devices/dev1/messages/devicebound/%24.mid=m-1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&%24.cid=c-1&%24.ct=application%2Fjson&%24.ce=utf-8&iothub-ack=full&prop1=v%201
        "#]],
    );
    check_hub_publish(
        "devices/dev1/modules/mod2/inputs/input1/%24.cdid=dev1&%24.cmid=mod1&%24.on=output1&temp=21",
        expect![[r#"
            ModuleInput device=dev1 module=mod2 input="input1"
              system $outputName = "output1"
              system $connectionDeviceId = "dev1"
              system $connectionModuleId = "mod1"
              app "temp" = Some("21")
            formatted devices/dev1/modules/mod2/inputs/input1/%24.on=output1&%24.cdid=dev1&%24.cmid=mod1&temp=21
        "#]],
    );
    check_hub_publish(
        "devices/dev1/modules/mod2/inputs/input1",
        expect![[r#"
            ModuleInput device=dev1 module=mod2 input="input1"
            formatted devices/dev1/modules/mod2/inputs/input1/
        "#]],
    );
}

#[test]
fn hub_publish_errors() {
    let cases = [
        "$iothub/twin/PATCH/properties/desired/",
        "$iothub/twin/PATCH/properties/desired/?$version=-1",
        "$iothub/twin/res/70000/?$rid=1",
        "$iothub/twin/res/200/",
        "$iothub/methods/POST//?$rid=1",
        "$iothub/methods/POST/reboot/",
        "devices/dev1/messages/devicebound/iothub-ack=sometimes",
        "devices/dev1/modules/mod1/inputs//x=1",
        "devices/dev1/modules/mod1/outputs/o1/",
        "devices/dev1/messages/events/",
        "$iothub/twin/GET/?$rid=1",
    ];
    let rendered: String = cases
        .iter()
        .map(|topic| match HubPublish::parse(topic) {
            Ok(publish) => format!("{topic:?}: unexpectedly parsed as {publish:?}\n"),
            Err(error) => format!("{topic:?}: {error}\n"),
        })
        .collect();
    expect![[r#"
        "$iothub/twin/PATCH/properties/desired/": topic "$iothub/twin/PATCH/properties/desired/" has no $version
        "$iothub/twin/PATCH/properties/desired/?$version=-1": $version "-1" is not an unsigned integer
        "$iothub/twin/res/70000/?$rid=1": status "70000" is not an integer status code
        "$iothub/twin/res/200/": topic "$iothub/twin/res/200/" has no $rid
        "$iothub/methods/POST//?$rid=1": topic "$iothub/methods/POST//?$rid=1" has an empty method name
        "$iothub/methods/POST/reboot/": topic "$iothub/methods/POST/reboot/" has no $rid
        "devices/dev1/messages/devicebound/iothub-ack=sometimes": invalid iothub-ack in property bag: "sometimes" is not an ack mode (expected none, positive, negative or full)
        "devices/dev1/modules/mod1/inputs//x=1": topic "devices/dev1/modules/mod1/inputs//x=1" has an empty input name
        "devices/dev1/modules/mod1/outputs/o1/": unknown topic "devices/dev1/modules/mod1/outputs/o1/"
        "devices/dev1/messages/events/": unknown topic "devices/dev1/messages/events/"
        "$iothub/twin/GET/?$rid=1": unknown topic "$iothub/twin/GET/?$rid=1"
    "#]]
    .assert_eq(&rendered);
}

#[test]
fn formatting_cloud_to_device_and_module_input_messages() {
    let mut message = Message::new(&b"hello"[..])
        .with_application_property("null prop", None::<String>)
        .with_application_property("empty", Some(""))
        .with_application_property("path", Some("/a&b=c%d$e#f+g h\u{e9}"));
    message.system.message_id = Some("m-1".into());
    message.system.to = Some("/devices/dev1/messages/deviceBound".into());
    message.system.ack = Some(AckMode::Negative);
    message.system.enqueued_time = Some("not in the bag".into());
    let device = DeviceId::new("dev1").unwrap();
    let module = ModuleId::new("mod1").unwrap();
    let cloud_to_device = HubPublish::cloud_to_device(device.clone(), &message).to_topic();
    let module_input = HubPublish::module_input(device, module, "input 1", &message).to_topic();
    expect![[r#"
        devices/dev1/messages/devicebound/%24.mid=m-1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&iothub-ack=negative&null%20prop&empty=&path=%2Fa%26b%3Dc%25d%24e%23f%2Bg%20h%C3%A9
        devices/dev1/modules/mod1/inputs/input%201/%24.mid=m-1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&iothub-ack=negative&null%20prop&empty=&path=%2Fa%26b%3Dc%25d%24e%23f%2Bg%20h%C3%A9
    "#]]
    .assert_eq(&format!("{cloud_to_device}\n{module_input}\n"));
    // Telemetry never carries the ack request: only the service may ask for feedback.
    let identity: Identity = "dev1".parse().unwrap();
    expect![[r#"devices/dev1/messages/events/%24.mid=m-1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&null%20prop&empty=&path=%2Fa%26b%3Dc%25d%24e%23f%2Bg%20h%C3%A9"#]]
        .assert_eq(&ClientPublish::telemetry(&identity, &message).to_topic());
}

#[test]
fn properties_turn_into_a_message() {
    let Ok(ClientPublish::Telemetry { properties, .. }) = ClientPublish::parse(CAPTURED_TELEMETRY)
    else {
        panic!("captured telemetry must parse");
    };
    let message = properties.into_message(&b"{\"t\":1}"[..]);
    assert_eq!(
        message.system_property("$contentType"),
        Some("application/json")
    );
    assert_eq!(
        message.application_property("alert"),
        Some(Some("high temp"))
    );
    assert_eq!(
        message.iothub_size(),
        7 + 5 + 5 + 6 + 16 + 5 + 19 + 3 + 3 + 5 + 9
    );
}

#[test]
fn subscriptions_used_by_the_sdks() {
    check_subscription(
        "$iothub/methods/POST/#",
        expect![[r#"
            MethodRequests
            formatted $iothub/methods/POST/#
        "#]],
    );
    check_subscription(
        "devices/dev1/messages/devicebound/#",
        expect![[r#"
            CloudToDevice { device: DeviceId("dev1") }
            formatted devices/dev1/messages/devicebound/#
        "#]],
    );
    check_subscription(
        "devices/dev1/modules/mod1/inputs/#",
        expect![[r#"
            ModuleInputs { device: DeviceId("dev1"), module: ModuleId("mod1") }
            formatted devices/dev1/modules/mod1/inputs/#
        "#]],
    );
    check_subscription(
        "devices/dev1/modules/mod1/#",
        expect![[r#"
            ModuleAll { device: DeviceId("dev1"), module: ModuleId("mod1") }
            formatted devices/dev1/modules/mod1/#
        "#]],
    );
    check_subscription(
        "$iothub/twin/PATCH/properties/desired/#",
        expect![[r#"
            DesiredPropertiesPatches
            formatted $iothub/twin/PATCH/properties/desired/#
        "#]],
    );
    check_subscription(
        "$iothub/twin/res/#",
        expect![[r#"
            TwinResponses
            formatted $iothub/twin/res/#
        "#]],
    );
}

#[test]
fn subscription_errors() {
    check_subscription(
        "#",
        expect![[r##"
        error: unknown topic "#"
    "##]],
    );
    check_subscription(
        "$iothub/methods/POST/+",
        expect![[r#"
        error: unknown topic "$iothub/methods/POST/+"
    "#]],
    );
    check_subscription(
        "devices/+/messages/devicebound/#",
        expect![[r#"
        error: filter "devices/+/messages/devicebound/#" uses a wildcard in place of an id
    "#]],
    );
    check_subscription(
        "devices/dev1/modules/a#/inputs/#",
        expect![[r#"
        error: filter "devices/dev1/modules/a#/inputs/#" uses a wildcard in place of an id
    "#]],
    );
    check_subscription(
        "devices/dev 1/messages/devicebound/#",
        expect![[r#"
        error: invalid device id in topic: device id contains the character ' ' at byte 3, which IoT Hub does not allow
    "#]],
    );
    check_subscription(
        "devices/dev1/messages/events/#",
        expect![[r#"
        error: unknown topic "devices/dev1/messages/events/#"
    "#]],
    );
}

#[test]
fn subscription_coverage() {
    let device = DeviceId::new("dev1").unwrap();
    let module = ModuleId::new("mod1").unwrap();
    let message = Message::new(&b""[..]);
    let cloud_to_device = HubPublish::cloud_to_device(device.clone(), &message);
    let module_input = HubPublish::module_input(device.clone(), module.clone(), "in", &message);
    let twin_response = HubPublish::TwinResponse {
        status: 200,
        rid: "1".into(),
        version: None,
    };
    let subscriptions = [
        ClientSubscription::CloudToDevice {
            device: device.clone(),
        },
        ClientSubscription::CloudToDevice {
            device: DeviceId::new("dev2").unwrap(),
        },
        ClientSubscription::ModuleInputs {
            device: device.clone(),
            module: module.clone(),
        },
        ClientSubscription::ModuleAll { device, module },
        ClientSubscription::TwinResponses,
        ClientSubscription::MethodRequests,
    ];
    let rendered: String = subscriptions
        .iter()
        .map(|subscription| {
            format!(
                "{subscription}: c2d={} input={} twin={}\n",
                subscription.covers(&cloud_to_device),
                subscription.covers(&module_input),
                subscription.covers(&twin_response)
            )
        })
        .collect();
    expect![[r#"
        devices/dev1/messages/devicebound/#: c2d=true input=false twin=false
        devices/dev2/messages/devicebound/#: c2d=false input=false twin=false
        devices/dev1/modules/mod1/inputs/#: c2d=false input=true twin=false
        devices/dev1/modules/mod1/#: c2d=false input=true twin=false
        $iothub/twin/res/#: c2d=false input=false twin=true
        $iothub/methods/POST/#: c2d=false input=false twin=false
    "#]]
    .assert_eq(&rendered);
}

#[test]
fn device_connection_authorization() {
    check_authorization(
        "dev1",
        &[
            "devices/dev1/messages/events/a=1",
            "devices/dev2/messages/events/a=1",
            "devices/dev1/modules/mod1/messages/events/",
            "$iothub/twin/GET/?$rid=1",
            "$iothub/methods/res/200/?$rid=1",
            "devices/dev1/messages/devicebound/#",
            "devices/dev2/messages/devicebound/#",
            "devices/dev1/modules/mod1/inputs/#",
            "$iothub/methods/POST/#",
            "devices/dev1/unknown",
        ],
        expect![[r#"
            devices/dev1/messages/events/a=1: allowed
            devices/dev2/messages/events/a=1: dev1 may not use topics of device dev2
            devices/dev1/modules/mod1/messages/events/: device dev1 may not use module topics (module mod1)
            $iothub/twin/GET/?$rid=1: allowed
            $iothub/methods/res/200/?$rid=1: allowed
            devices/dev1/messages/devicebound/#: allowed
            devices/dev2/messages/devicebound/#: dev1 may not use topics of device dev2
            devices/dev1/modules/mod1/inputs/#: device dev1 may not use module topics (module mod1)
            $iothub/methods/POST/#: allowed
            devices/dev1/unknown: unknown topic "devices/dev1/unknown"
        "#]],
    );
}

#[test]
fn module_connection_authorization() {
    check_authorization(
        "dev1/mod1",
        &[
            "devices/dev1/modules/mod1/messages/events/%24.on=output1",
            "devices/dev1/modules/mod2/messages/events/",
            "devices/dev2/modules/mod1/messages/events/",
            "devices/dev1/messages/events/",
            "$iothub/twin/PATCH/properties/reported/?$rid=1",
            "devices/dev1/modules/mod1/inputs/#",
            "devices/dev1/modules/mod1/#",
            "devices/dev1/modules/mod2/inputs/#",
            "devices/dev1/messages/devicebound/#",
            "$iothub/twin/PATCH/properties/desired/#",
        ],
        expect![[r#"
            devices/dev1/modules/mod1/messages/events/%24.on=output1: allowed
            devices/dev1/modules/mod2/messages/events/: dev1/mod1 may not use topics of module mod2
            devices/dev2/modules/mod1/messages/events/: dev1/mod1 may not use topics of device dev2
            devices/dev1/messages/events/: module dev1/mod1 may not use device-only topics
            $iothub/twin/PATCH/properties/reported/?$rid=1: allowed
            devices/dev1/modules/mod1/inputs/#: allowed
            devices/dev1/modules/mod1/#: allowed
            devices/dev1/modules/mod2/inputs/#: dev1/mod1 may not use topics of module mod2
            devices/dev1/messages/devicebound/#: module dev1/mod1 may not use device-only topics
            $iothub/twin/PATCH/properties/desired/#: allowed
        "#]],
    );
}

// === Property tests ===

fn identifier() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9\\-:.+%_#*?!(),=@;$']{1,40}"
}

fn subscribable_identifier() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9\\-:.%_*?!(),=@;$']{1,40}"
}

fn device_id() -> impl Strategy<Value = DeviceId> {
    identifier().prop_map(|raw| DeviceId::new(&raw).unwrap())
}

fn module_id() -> impl Strategy<Value = ModuleId> {
    identifier().prop_map(|raw| ModuleId::new(&raw).unwrap())
}

/// Text rich in the characters that must be escaped, plus arbitrary printable unicode.
fn tricky_text() -> impl Strategy<Value = String> {
    prop_oneof!["[/&=%$#+ ?a-z0-9.\\-_~é中]{0,12}", "\\PC{0,12}"]
}

/// Request ids as the SDKs make them: UUIDs or small integers.
fn request_id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9\\-]{1,36}"
}

/// Properties that survive a trip through a bag in `direction`: only system properties with a bag key
/// there, and application names that are not reserved bag keys.
fn message_properties(direction: BagDirection) -> impl Strategy<Value = MessageProperties> {
    let bag_properties: Vec<SystemProperty> = SystemProperty::ALL
        .into_iter()
        .filter(|property| property.mqtt_bag_key().is_some())
        .filter(|property| {
            direction == BagDirection::CloudToDevice || *property != SystemProperty::Ack
        })
        .collect();
    let system = proptest::collection::vec(
        (proptest::sample::select(bag_properties), tricky_text()),
        0..6,
    );
    let application_name = tricky_text()
        .prop_filter("names are non-empty and not reserved bag keys", |name| {
            !name.is_empty() && SystemProperty::from_mqtt_bag_key(name).is_none()
        });
    let application = proptest::collection::vec(
        (application_name, proptest::option::of(tricky_text())),
        0..6,
    );
    (
        system,
        application,
        proptest::sample::select(vec![
            AckMode::None,
            AckMode::Positive,
            AckMode::Negative,
            AckMode::Full,
        ]),
    )
        .prop_map(|(system_assignments, application, ack_mode)| {
            let mut properties = MessageProperties {
                application,
                ..MessageProperties::default()
            };
            for (property, value) in system_assignments {
                let value = if property == SystemProperty::Ack {
                    ack_mode.to_string()
                } else {
                    value
                };
                properties.system.set(property, value).unwrap();
            }
            properties
        })
}

fn client_publish() -> impl Strategy<Value = ClientPublish> {
    prop_oneof![
        (
            device_id(),
            proptest::option::of(module_id()),
            message_properties(BagDirection::DeviceToCloud)
        )
            .prop_map(|(device, module, properties)| ClientPublish::Telemetry {
                device,
                module,
                properties: Box::new(properties)
            }),
        request_id().prop_map(|rid| ClientPublish::TwinGet { rid }),
        (request_id(), proptest::option::of(any::<u64>()))
            .prop_map(|(rid, version)| ClientPublish::TwinPatchReported { rid, version }),
        (any::<i32>(), request_id())
            .prop_map(|(status, rid)| ClientPublish::MethodResponse { status, rid }),
    ]
}

fn hub_publish() -> impl Strategy<Value = HubPublish> {
    let non_empty_name =
        || tricky_text().prop_filter("names are non-empty", |name| !name.is_empty());
    prop_oneof![
        (
            any::<u16>(),
            request_id(),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(status, rid, version)| HubPublish::TwinResponse {
                status,
                rid,
                version
            }),
        any::<u64>().prop_map(|version| HubPublish::DesiredPropertiesPatch { version }),
        (non_empty_name(), request_id())
            .prop_map(|(method_name, rid)| HubPublish::MethodRequest { method_name, rid }),
        (device_id(), message_properties(BagDirection::CloudToDevice)).prop_map(
            |(device, properties)| HubPublish::CloudToDevice {
                device,
                properties: Box::new(properties)
            }
        ),
        (
            device_id(),
            module_id(),
            non_empty_name(),
            message_properties(BagDirection::CloudToDevice)
        )
            .prop_map(
                |(device, module, input_name, properties)| HubPublish::ModuleInput {
                    device,
                    module,
                    input_name,
                    properties: Box::new(properties)
                }
            ),
    ]
}

fn client_subscription() -> impl Strategy<Value = ClientSubscription> {
    let device = || subscribable_identifier().prop_map(|raw| DeviceId::new(&raw).unwrap());
    let module = || subscribable_identifier().prop_map(|raw| ModuleId::new(&raw).unwrap());
    prop_oneof![
        Just(ClientSubscription::MethodRequests),
        Just(ClientSubscription::DesiredPropertiesPatches),
        Just(ClientSubscription::TwinResponses),
        device().prop_map(|device| ClientSubscription::CloudToDevice { device }),
        (device(), module())
            .prop_map(|(device, module)| ClientSubscription::ModuleInputs { device, module }),
        (device(), module())
            .prop_map(|(device, module)| ClientSubscription::ModuleAll { device, module }),
    ]
}

/// Strings that look like topics, so the never-panics tests reach deep into the parsers.
fn topic_like() -> impl Strategy<Value = String> {
    let prefix = proptest::sample::select(vec![
        "",
        "devices/",
        "devices/dev1/",
        "devices/dev1/messages/events/",
        "devices/dev1/modules/m/messages/events/",
        "devices/dev1/messages/devicebound/",
        "devices/dev1/modules/m/inputs/",
        "$iothub/twin/GET/?",
        "$iothub/twin/res/",
        "$iothub/twin/PATCH/properties/reported/?",
        "$iothub/twin/PATCH/properties/desired/?",
        "$iothub/methods/POST/",
        "$iothub/methods/res/",
    ]);
    (prefix, "[/&=%$#+?a-zA-Z0-9 \\.\\-é]{0,30}")
        .prop_map(|(prefix, structured)| format!("{prefix}{structured}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_publish_round_trips(publish in client_publish()) {
        prop_assert_eq!(ClientPublish::parse(&publish.to_topic()), Ok(publish));
    }

    #[test]
    fn hub_publish_round_trips(publish in hub_publish()) {
        prop_assert_eq!(HubPublish::parse(&publish.to_topic()), Ok(publish));
    }

    #[test]
    fn subscription_round_trips(subscription in client_subscription()) {
        prop_assert_eq!(ClientSubscription::parse(&subscription.to_filter()), Ok(subscription));
    }

    /// A formatted bag has exactly one `&` between entries and none of the escaped characters raw.
    #[test]
    fn bags_escape_every_special_character(properties in message_properties(BagDirection::CloudToDevice)) {
        let bag = properties.format(BagDirection::CloudToDevice);
        prop_assert!(!bag.contains(['/', '$', '#', '+', ' ', '?']));
        prop_assert!(bag.is_ascii());
    }

    /// The topic a connected identity formats for its own telemetry is always authorized for it, and never
    /// for a different device.
    #[test]
    fn own_telemetry_is_authorized(device in device_id(), module in proptest::option::of(module_id()), other in device_id()) {
        let identity = Identity { device, module };
        let topic = ClientPublish::telemetry(&identity, &Message::default()).to_topic();
        prop_assert!(ClientPublish::parse_for(&identity, &topic).is_ok());
        if other != identity.device {
            let stranger = Identity { device: other, module: identity.module.clone() };
            prop_assert!(ClientPublish::parse_for(&stranger, &topic).is_err());
        }
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_strings(topic in any::<String>()) {
        let _ = ClientPublish::parse(&topic);
        let _ = HubPublish::parse(&topic);
        let _ = ClientSubscription::parse(&topic);
        let _ = MessageProperties::parse(&topic, BagDirection::DeviceToCloud);
    }

    #[test]
    fn parsers_never_panic_on_topic_like_strings(topic in topic_like()) {
        let _ = ClientPublish::parse(&topic);
        let _ = HubPublish::parse(&topic);
        let _ = ClientSubscription::parse(&topic);
    }
}
