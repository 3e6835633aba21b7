//! Edge hub route statements: parsing, source matching and the examples from the IoT Edge docs.

use expect_test::{Expect, expect};
use query::{MessageSource, Route, SimpleMessage, SystemProperty};

/// The sources every route is matched against, in the order rendered by [`check`].
fn sources() -> Vec<(&'static str, MessageSource<'static>)> {
    vec![
        (
            "device",
            MessageSource::DeviceTelemetry { device_id: "leaf1" },
        ),
        (
            "tempSensor/temperatureOutput",
            MessageSource::ModuleOutput {
                device_id: "edge1",
                module_id: "tempSensor",
                output_name: Some("temperatureOutput"),
            },
        ),
        (
            "tempSensor/-",
            MessageSource::ModuleOutput {
                device_id: "edge1",
                module_id: "tempSensor",
                output_name: None,
            },
        ),
        (
            "filter/output1",
            MessageSource::ModuleOutput {
                device_id: "edge1",
                module_id: "filter",
                output_name: Some("output1"),
            },
        ),
        (
            "twin",
            MessageSource::TwinChangeNotification { device_id: "leaf1" },
        ),
    ]
}

/// Parses the route and renders its source, sink, endpoint id and which sources it selects
/// (applying the condition to a telemetry message with `alert = 'high'`), or the parse error.
fn check(route_text: &str, expect: Expect) {
    let message = SimpleMessage::new()
        .with_application_property("alert", "high")
        .with_system_property(SystemProperty::ConnectionDeviceId, "leaf1");
    let actual = match Route::parse(route_text) {
        Ok(route) => {
            let selected: Vec<&str> = sources()
                .iter()
                .filter(|(_, source)| route.matches(source, &message))
                .map(|(name, _)| *name)
                .collect();
            format!(
                "source: {:?}\nsink: {:?} (endpoint {})\ncondition: {}\nselects: {}\n",
                route.source,
                route.sink,
                route.sink.endpoint_id("edge1"),
                route.condition.is_some(),
                selected.join(", ")
            )
        }
        Err(error) => error.render(route_text),
    };
    expect.assert_eq(&actual);
}

#[test]
fn documented_edge_routes() {
    check(
        "FROM /messages/modules/tempSensor/outputs/temperatureOutput INTO BrokeredEndpoint(\"/modules/filter/inputs/input1\")",
        expect![[r#"
            source: ModuleOutput { module_id: "tempSensor", output_name: "temperatureOutput" }
            sink: ModuleInput { module_id: "filter", input_name: "input1" } (endpoint edge1/filter/input1)
            condition: false
            selects: tempSensor/temperatureOutput
        "#]],
    );
    check(
        "FROM /messages/modules/filter/outputs/* INTO $upstream",
        expect![[r#"
            source: ModuleOutputs { module_id: "filter" }
            sink: Upstream (endpoint iothub)
            condition: false
            selects: filter/output1
        "#]],
    );
    check(
        "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream",
        expect![[r#"
            source: AllMessages
            sink: Upstream (endpoint iothub)
            condition: true
            selects: device, tempSensor/temperatureOutput, tempSensor/-, filter/output1
        "#]],
    );
    check(
        "FROM /messages/* INTO $upstream",
        expect![[r#"
            source: AllMessages
            sink: Upstream (endpoint iothub)
            condition: false
            selects: device, tempSensor/temperatureOutput, tempSensor/-, filter/output1
        "#]],
    );
    check(
        "FROM /messages/modules/tempSensor/* WHERE alert = 'high' INTO BrokeredEndpoint(\"/modules/alerts/inputs/in\")",
        expect![[r#"
            source: Module { module_id: "tempSensor" }
            sink: ModuleInput { module_id: "alerts", input_name: "in" } (endpoint edge1/alerts/in)
            condition: true
            selects: tempSensor/temperatureOutput, tempSensor/-
        "#]],
    );
    check(
        "select * from /messages/modules/* where alert = 'low' into $UPSTREAM",
        expect![[r#"
            source: AllModules
            sink: Upstream (endpoint iothub)
            condition: true
            selects: 
        "#]],
    );
    check(
        "FROM /* INTO $upstream",
        expect![[r#"
            source: Everything
            sink: Upstream (endpoint iothub)
            condition: false
            selects: device, tempSensor/temperatureOutput, tempSensor/-, filter/output1, twin
        "#]],
    );
    check(
        "FROM /twinChangeNotifications INTO $upstream",
        expect![[r#"
            source: TwinChangeNotifications
            sink: Upstream (endpoint iothub)
            condition: false
            selects: twin
        "#]],
    );
    check(
        "FROM /messages/modules/temp-sensor.v2/outputs/out-1 WHERE $connectionDeviceId = 'leaf1' INTO brokeredendpoint('/modules/filter/inputs/input1')",
        expect![[r#"
            source: ModuleOutput { module_id: "temp-sensor.v2", output_name: "out-1" }
            sink: ModuleInput { module_id: "filter", input_name: "input1" } (endpoint edge1/filter/input1)
            condition: true
            selects: 
        "#]],
    );
}

#[test]
fn route_errors() {
    check(
        "FROM /messages/things/* INTO $upstream",
        expect![[r#"
            error: unknown route source `/messages/things/*`
             --> 1:6
              |
            1 | FROM /messages/things/* INTO $upstream
              |      ^^^^^^^^^^^^^^^^^^
        "#]],
    );
    check(
        "FROM /messages/* INTO somewhere",
        expect![[r#"
            error: expected `$upstream` or `BrokeredEndpoint("/modules/<m>/inputs/<i>")`, found `somewhere`
             --> 1:23
              |
            1 | FROM /messages/* INTO somewhere
              |                       ^^^^^^^^^
        "#]],
    );
    check(
        "FROM /messages/* INTO BrokeredEndpoint(\"/modules/filter/outputs/x\")",
        expect![[r#"
            error: endpoint address `/modules/filter/outputs/x` is not of the form /modules/<m>/inputs/<i>
             --> 1:40
              |
            1 | FROM /messages/* INTO BrokeredEndpoint("/modules/filter/outputs/x")
              |                                        ^^^^^^^^^^^^^^^^^^^^^^^^^^^
        "#]],
    );
    check(
        "FROM /messages/* WHERE alert = 'high'",
        expect![[r#"
            error: expected `WHERE`, an operator or `INTO`, found end of input
             --> 1:38
              |
            1 | FROM /messages/* WHERE alert = 'high'
              |                                      ^
        "#]],
    );
    check(
        "FROM",
        expect![[r#"
            error: expected message source path such as `/messages/*`, found end of input
             --> 1:5
              |
            1 | FROM
              |     ^
        "#]],
    );
    check(
        "INTO $upstream",
        expect![[r#"
            error: expected `FROM`, found `INTO`
             --> 1:1
              |
            1 | INTO $upstream
              | ^^^^
        "#]],
    );
    check(
        "FROM /messages/* INTO $upstream extra",
        expect![[r#"
            error: expected end of input, found `extra`
             --> 1:33
              |
            1 | FROM /messages/* INTO $upstream extra
              |                                 ^^^^^
        "#]],
    );
}
