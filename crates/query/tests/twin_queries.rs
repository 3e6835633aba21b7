//! Data-driven twin query tests: every operator, every function, projections, aggregates and the
//! query examples from Microsoft's IoT Hub documentation.

use expect_test::{Expect, expect};
use query::Query;
use serde_json::{Value, json};

/// Three device twins in the service shape, plus one module twin for `devices.modules`.
fn sample_twins() -> Vec<Value> {
    vec![
        json!({
            "deviceId": "d1", "etag": "AAAAAAAAAAc=", "deviceEtag": "NzQ2", "version": 7,
            "status": "enabled", "statusReason": null, "connectionState": "Connected",
            "lastActivityTime": "2026-11-27T10:00:00Z", "cloudToDeviceMessageCount": 0,
            "authenticationType": "sas", "capabilities": {"iotEdge": false},
            "tags": {"location": {"region": "US", "plant": "Redmond 43"}, "env": "prod", "floors": [1, 2]},
            "properties": {
                "desired": {"telemetryConfig": {"sendFrequency": "5m"}, "$metadata": {"$lastUpdated": "2026-11-27T09:00:00Z"}, "$version": 3},
                "reported": {
                    "connectivity": {"type": "cellular"}, "temperature": 35.5, "fw": "1.2.0",
                    "telemetryConfig": {"status": "Success"}, "a b": "spaced",
                    "$metadata": {"$lastUpdated": "2026-11-27T09:30:00Z"}, "$version": 9
                }
            }
        }),
        json!({
            "deviceId": "d2", "version": 3, "status": "enabled", "connectionState": "Disconnected",
            "lastActivityTime": "2026-11-20T08:00:00Z", "capabilities": {"iotEdge": true},
            "tags": {"location": {"region": "EU"}, "env": "test"},
            "properties": {
                "desired": {"$version": 1},
                "reported": {"connectivity": {"type": "wired"}, "temperature": 21, "telemetryConfig": {"status": "Pending"}, "$version": 2}
            }
        }),
        json!({
            "deviceId": "d3", "version": 2, "status": "disabled", "connectionState": "Disconnected",
            "capabilities": {"iotEdge": false},
            "tags": {"location": {"region": "US"}},
            "properties": {
                "desired": {"$version": 1},
                "reported": {"connectivity": {"type": "wifi"}, "temperature": null, "telemetryConfig": {"status": "Success"}, "$version": 1}
            }
        }),
    ]
}

fn module_twins() -> Vec<Value> {
    vec![
        json!({"deviceId": "d1", "moduleId": "tempSensor", "properties": {"reported": {"status": "scanning"}}}),
        json!({"deviceId": "d2", "moduleId": "tempSensor", "properties": {"reported": {"status": "idle"}}}),
        json!({"deviceId": "d9", "moduleId": "filter", "properties": {"reported": {"status": "scanning"}}}),
    ]
}

/// Runs `query` over `twins` and renders the item type and rows (twin rows by `deviceId`), or
/// the rendered parse error.
fn check(query: &str, twins: &[Value], expect: Expect) {
    let actual = match Query::parse(query) {
        Ok(parsed) => {
            let rows = parsed.execute(twins);
            let mut rendered = format!("{} ({} rows)\n", parsed.item_type().as_str(), rows.len());
            for row in rows {
                let line = match (&row, parsed.item_type().as_str()) {
                    (Value::Object(map), "twin") => map
                        .get("deviceId")
                        .map_or_else(|| row.to_string(), Value::to_string),
                    _ => row.to_string(),
                };
                rendered.push_str(&line);
                rendered.push('\n');
            }
            rendered
        }
        Err(error) => error.render(query),
    };
    expect.assert_eq(&actual);
}

/// Evaluates each expression against the first sample twin (`SELECT <expr> AS v`) and renders
/// one line per expression: its JSON value, or `undefined`.
fn check_values(expressions: &[&str], expect: Expect) {
    let twins = sample_twins();
    let mut rendered = String::new();
    for expression in expressions {
        let text = format!("SELECT {expression} AS v FROM devices");
        let line = match Query::parse(&text) {
            Ok(parsed) => {
                let row = parsed.project(&twins[0]);
                row.get("v")
                    .map_or_else(|| "undefined".to_string(), Value::to_string)
            }
            Err(error) => format!("error: {}", error.kind),
        };
        rendered.push_str(&format!("{expression} => {line}\n"));
    }
    expect.assert_eq(&rendered);
}

#[test]
fn documented_twin_query_examples() {
    let twins = sample_twins();
    check(
        "SELECT * FROM devices WHERE tags.location.region = 'US'",
        &twins,
        expect![[r#"
            twin (2 rows)
            "d1"
            "d3"
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.temperature > 30",
        &twins,
        expect![[r#"
            twin (1 rows)
            "d1"
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE properties.reported.connectivity.type IN ['wired', 'wifi']",
        &twins,
        expect![[r#"
            twin (2 rows)
            "d2"
            "d3"
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE is_defined(properties.reported.fw)",
        &twins,
        expect![[r#"
            twin (1 rows)
            "d1"
        "#]],
    );
    check(
        "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
        &twins,
        expect![[r#"
            raw (2 rows)
            {"numberOfDevices":2,"status":"Success"}
            {"numberOfDevices":1,"status":"Pending"}
        "#]],
    );
    check(
        "SELECT COUNT() AS numberOfDevices FROM devices",
        &twins,
        expect![[r#"
            raw (1 rows)
            {"numberOfDevices":3}
        "#]],
    );
    check(
        "SELECT deviceId, lastActivityTime FROM devices WHERE capabilities.iotEdge = false",
        &twins,
        expect![[r#"
            raw (2 rows)
            {"deviceId":"d1","lastActivityTime":"2026-11-27T10:00:00Z"}
            {"deviceId":"d3"}
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.env='prod'",
        &twins,
        expect![[r#"
            twin (1 rows)
            "d1"
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE deviceId IN ['d1', 'd3'] AND status = 'enabled'",
        &twins,
        expect![[r#"
            twin (1 rows)
            "d1"
        "#]],
    );
    check(
        "SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning' AND deviceId IN ['d1','d2']",
        &module_twins(),
        expect![[r#"
            twin (1 rows)
            "d1"
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE connectionState = 'Connected' OR properties.desired.$version > 2",
        &twins,
        expect![[r#"
            twin (1 rows)
            "d1"
        "#]],
    );
}

#[test]
fn select_list_top_and_item_types() {
    let twins = sample_twins();
    check(
        "select top 2 * from DEVICES",
        &twins,
        expect![[r#"
            twin (2 rows)
            "d1"
            "d2"
        "#]],
    );
    check(
        "SELECT TOP 0 * FROM devices",
        &twins,
        expect![[r#"
            twin (0 rows)
        "#]],
    );
    check(
        "SELECT deviceId, properties.reported['a b'], tags.floors[1] AS secondFloor, properties.reported.$metadata.$lastUpdated FROM devices",
        &twins,
        expect![[r#"
            raw (3 rows)
            {"$lastUpdated":"2026-11-27T09:30:00Z","a b":"spaced","deviceId":"d1","secondFloor":2}
            {"deviceId":"d2"}
            {"deviceId":"d3"}
        "#]],
    );
    check(
        "SELECT deviceId, moduleId FROM devices.modules WHERE moduleId = 'tempSensor'",
        &module_twins(),
        expect![[r#"
            raw (2 rows)
            {"deviceId":"d1","moduleId":"tempSensor"}
            {"deviceId":"d2","moduleId":"tempSensor"}
        "#]],
    );
    check(
        "SELECT * FROM devices.jobs",
        &[json!({"deviceId": "d1", "jobId": "j1", "status": "completed"})],
        expect![[r#"
            deviceJob (1 rows)
            {"deviceId":"d1","jobId":"j1","status":"completed"}
        "#]],
    );
    check(
        "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j2' OR status = 'failed'",
        &[
            json!({"deviceId": "d1", "jobId": "j1", "status": "completed"}),
            json!({"deviceId": "d2", "jobId": "j2", "status": "running"}),
            json!({"deviceId": "d3", "jobId": "j1", "status": "failed"}),
        ],
        expect![[r#"
            deviceJob (2 rows)
            {"deviceId":"d2","jobId":"j2","status":"running"}
            {"deviceId":"d3","jobId":"j1","status":"failed"}
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.location.region = 'Mars'",
        &twins,
        expect![[r#"
            twin (0 rows)
        "#]],
    );
}

#[test]
fn aggregates() {
    let twins = sample_twins();
    check(
        "SELECT COUNT() AS n, SUM(properties.reported.temperature) AS total, AVG(version) AS averageVersion, MIN(version) AS low, MAX(version) AS high FROM devices",
        &twins,
        expect![[r#"
            raw (1 rows)
            {"averageVersion":4,"high":7,"low":2,"n":3}
        "#]],
    );
    check(
        "SELECT SUM(version) AS total, AVG(properties.reported.temperature) AS t FROM devices WHERE properties.reported.temperature != null",
        &twins,
        expect![[r#"
            raw (1 rows)
            {"t":28.25,"total":10}
        "#]],
    );
    check(
        "SELECT COUNT(), MAX(tags.missing) FROM devices WHERE deviceId = 'nobody'",
        &twins,
        expect![[r#"
            raw (1 rows)
            {"$1":0}
        "#]],
    );
    check(
        "SELECT tags.location.region, status, COUNT() AS n FROM devices GROUP BY tags.location.region, status",
        &twins,
        expect![[r#"
            raw (3 rows)
            {"n":1,"region":"US","status":"enabled"}
            {"n":1,"region":"EU","status":"enabled"}
            {"n":1,"region":"US","status":"disabled"}
        "#]],
    );
    check(
        "SELECT tags.env AS env, COUNT() AS n FROM devices GROUP BY tags.env",
        &twins,
        expect![[r#"
            raw (3 rows)
            {"env":"prod","n":1}
            {"env":"test","n":1}
            {"n":1}
        "#]],
    );
    check(
        "SELECT TOP 1 status, COUNT() AS n FROM devices GROUP BY status",
        &twins,
        expect![[r#"
            raw (1 rows)
            {"n":2,"status":"enabled"}
        "#]],
    );
    check(
        "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS n FROM devices.modules GROUP BY properties.reported.telemetryConfig.status",
        &module_twins(),
        expect![[r#"
            raw (1 rows)
            {"n":3}
        "#]],
    );
}

#[test]
fn comparison_operators() {
    check_values(
        &[
            "1 = 1",
            "1 = 2",
            "'a' = 'a'",
            "'a' = \"a\"",
            "true = true",
            "null = null",
            "1 = '1'",
            "1 != 2",
            "1 <> 1",
            "'a' != 1",
            "2 < 3",
            "3 < 2",
            "2 <= 2",
            "3 > 2",
            "2 >= 3",
            "'abc' < 'abd'",
            "'B' < 'a'",
            "1 < 'a'",
            "null < 1",
            "true < false",
            "tags.missing = 1",
            "tags.missing != 1",
            "tags.location = 1",
            "tags.floors = tags.floors",
            "undefined = undefined",
            "properties.reported.temperature >= 35.5",
            "version = 7.0",
        ],
        expect![[r#"
            1 = 1 => true
            1 = 2 => false
            'a' = 'a' => true
            'a' = "a" => true
            true = true => true
            null = null => true
            1 = '1' => false
            1 != 2 => true
            1 <> 1 => false
            'a' != 1 => true
            2 < 3 => true
            3 < 2 => false
            2 <= 2 => true
            3 > 2 => true
            2 >= 3 => false
            'abc' < 'abd' => true
            'B' < 'a' => true
            1 < 'a' => undefined
            null < 1 => undefined
            true < false => undefined
            tags.missing = 1 => undefined
            tags.missing != 1 => undefined
            tags.location = 1 => undefined
            tags.floors = tags.floors => undefined
            undefined = undefined => undefined
            properties.reported.temperature >= 35.5 => true
            version = 7.0 => true
        "#]],
    );
}

#[test]
fn logical_operators_are_three_valued() {
    check_values(
        &[
            "true AND true",
            "true AND false",
            "false AND tags.missing",
            "true AND tags.missing",
            "tags.missing AND false",
            "true OR tags.missing",
            "false OR tags.missing",
            "false OR false",
            "NOT true",
            "NOT false",
            "NOT tags.missing",
            "NOT 1",
            "1 AND true",
            "not (1 = 2) and (2 = 2 or 1 = 0)",
            "true AND true AND true AND false",
            "false OR false OR false OR true",
        ],
        expect![[r#"
            true AND true => true
            true AND false => false
            false AND tags.missing => false
            true AND tags.missing => undefined
            tags.missing AND false => false
            true OR tags.missing => true
            false OR tags.missing => undefined
            false OR false => false
            NOT true => false
            NOT false => true
            NOT tags.missing => undefined
            NOT 1 => undefined
            1 AND true => undefined
            not (1 = 2) and (2 = 2 or 1 = 0) => true
            true AND true AND true AND false => false
            false OR false OR false OR true => true
        "#]],
    );
}

#[test]
fn in_and_nin() {
    check_values(
        &[
            "1 IN [1, 2]",
            "3 IN [1, 2]",
            "'US' in ['EU', tags.location.region]",
            "1 NIN [2, 3]",
            "1 nin [1]",
            "tags.missing IN [1]",
            "tags.missing NIN [1]",
            "null IN [null]",
            "1 IN tags.floors",
            "3 NIN tags.floors",
            "1 IN tags.location",
            "tags.location IN [1]",
            "1 IN []",
            "'1' IN [1]",
        ],
        expect![[r#"
            1 IN [1, 2] => true
            3 IN [1, 2] => false
            'US' in ['EU', tags.location.region] => true
            1 NIN [2, 3] => true
            1 nin [1] => false
            tags.missing IN [1] => undefined
            tags.missing NIN [1] => undefined
            null IN [null] => true
            1 IN tags.floors => true
            3 NIN tags.floors => true
            1 IN tags.location => undefined
            tags.location IN [1] => undefined
            1 IN [] => false
            '1' IN [1] => false
        "#]],
    );
}

#[test]
fn arithmetic_and_literals() {
    check_values(
        &[
            "1 + 2 * 3",
            "(1 + 2) * 3",
            "7 / 2",
            "7 % 3",
            "-7 % 3",
            "10 - 4 - 3",
            "1 / 0",
            "-version",
            "+2",
            "0x1F",
            "0XfF + 1",
            "1.5e3",
            "2E-2",
            "'a' + 1",
            "tags.missing + 1",
            "version * 2",
            "'it\\'s'",
            "\"say \\\"hi\\\"\"",
            "'back\\\\slash'",
            "'\\u00e9\\u20AC'",
            "'\\ud83d\\ude00'",
            "true",
            "null",
            "undefined",
            "[1, 'a', null, [true]]",
            "[tags.missing, 1]",
            "'con' || 'cat'",
            "tags.missing ?? 'fallback'",
            "version ?? 0",
        ],
        expect![[r#"
            1 + 2 * 3 => 7
            (1 + 2) * 3 => 9
            7 / 2 => 3.5
            7 % 3 => 1
            -7 % 3 => -1
            10 - 4 - 3 => 3
            1 / 0 => undefined
            -version => -7
            +2 => 2
            0x1F => 31
            0XfF + 1 => 256
            1.5e3 => 1500
            2E-2 => 0.02
            'a' + 1 => undefined
            tags.missing + 1 => undefined
            version * 2 => 14
            'it\'s' => "it's"
            "say \"hi\"" => "say \"hi\""
            'back\\slash' => "back\\slash"
            '\u00e9\u20AC' => "é€"
            '\ud83d\ude00' => "😀"
            true => true
            null => null
            undefined => undefined
            [1, 'a', null, [true]] => [1,"a",null,[true]]
            [tags.missing, 1] => [1]
            'con' || 'cat' => "concat"
            tags.missing ?? 'fallback' => "fallback"
            version ?? 0 => 7
        "#]],
    );
}

#[test]
fn type_checking_functions() {
    check_values(
        &[
            "IS_DEFINED(tags.env)",
            "is_defined(tags.missing)",
            "IS_DEFINED(statusReason)",
            "IS_NULL(statusReason)",
            "IS_NULL(tags.missing)",
            "IS_BOOL(capabilities.iotEdge)",
            "IS_BOOL(1)",
            "IS_NUMBER(version)",
            "IS_NUMBER('1')",
            "IS_STRING(deviceId)",
            "IS_STRING(1)",
            "IS_OBJECT(tags.location)",
            "IS_OBJECT(tags.floors)",
            "IS_ARRAY(tags.floors)",
            "IS_ARRAY([])",
            "IS_PRIMITIVE(null)",
            "IS_PRIMITIVE('x')",
            "IS_PRIMITIVE(tags)",
            "Is_Primitive(tags.missing)",
        ],
        expect![[r#"
            IS_DEFINED(tags.env) => true
            is_defined(tags.missing) => false
            IS_DEFINED(statusReason) => true
            IS_NULL(statusReason) => true
            IS_NULL(tags.missing) => false
            IS_BOOL(capabilities.iotEdge) => true
            IS_BOOL(1) => false
            IS_NUMBER(version) => true
            IS_NUMBER('1') => false
            IS_STRING(deviceId) => true
            IS_STRING(1) => false
            IS_OBJECT(tags.location) => true
            IS_OBJECT(tags.floors) => false
            IS_ARRAY(tags.floors) => true
            IS_ARRAY([]) => true
            IS_PRIMITIVE(null) => true
            IS_PRIMITIVE('x') => true
            IS_PRIMITIVE(tags) => false
            Is_Primitive(tags.missing) => false
        "#]],
    );
}

#[test]
fn string_functions() {
    check_values(
        &[
            "STARTSWITH(deviceId, 'd')",
            "starts_with(deviceId, 'x')",
            "ENDSWITH(tags.location.plant, '43')",
            "ends_with(tags.location.plant, 'Redmond')",
            "CONTAINS(tags.location.plant, 'mond')",
            "CONTAINS(1, 'a')",
            "LOWER('MiXeD')",
            "UPPER('straße')",
            "LOWER(1)",
            "LENGTH('héllo')",
            "LENGTH(tags.missing)",
            "SUBSTRING('abcdef', 2)",
            "SUBSTRING('abcdef', 1, 3)",
            "SUBSTRING('abc', 5, 1)",
            "SUBSTRING('abc', -1, 2)",
            "SUBSTRING('abc', '1')",
            "INDEX_OF('abcabc', 'ca')",
            "INDEX_OF('héllo', 'l')",
            "INDEX_OF('abc', 'z')",
            "CONCAT('a', 'b', 'c', 'd')",
            "CONCAT(deviceId)",
            "CONCAT('a', 1)",
            "STARTSWITH(deviceId)",
        ],
        expect![[r#"
            STARTSWITH(deviceId, 'd') => true
            starts_with(deviceId, 'x') => false
            ENDSWITH(tags.location.plant, '43') => true
            ends_with(tags.location.plant, 'Redmond') => false
            CONTAINS(tags.location.plant, 'mond') => true
            CONTAINS(1, 'a') => undefined
            LOWER('MiXeD') => "mixed"
            UPPER('straße') => "STRASSE"
            LOWER(1) => undefined
            LENGTH('héllo') => 5
            LENGTH(tags.missing) => undefined
            SUBSTRING('abcdef', 2) => "cdef"
            SUBSTRING('abcdef', 1, 3) => "bcd"
            SUBSTRING('abc', 5, 1) => ""
            SUBSTRING('abc', -1, 2) => "ab"
            SUBSTRING('abc', '1') => undefined
            INDEX_OF('abcabc', 'ca') => 2
            INDEX_OF('héllo', 'l') => 2
            INDEX_OF('abc', 'z') => -1
            CONCAT('a', 'b', 'c', 'd') => "abcd"
            CONCAT(deviceId) => "d1"
            CONCAT('a', 1) => undefined
            STARTSWITH(deviceId) => error: function `STARTSWITH` takes 2 arguments, found 1
        "#]],
    );
}

#[test]
fn math_functions() {
    check_values(
        &[
            "ABS(-2.5)",
            "ABS('x')",
            "CEILING(1.2)",
            "CEILING(-1.2)",
            "FLOOR(1.8)",
            "FLOOR(-1.2)",
            "EXP(0)",
            "POWER(2, 10)",
            "POWER(2, 'x')",
            "SQUARE(-3)",
            "SIGN(-4)",
            "SIGN(0)",
            "SIGN(9.5)",
            "SQRT(16)",
            "SQRT(-1)",
            "AS_NUMBER('42')",
            "as_number(' -1.5e2 ')",
            "AS_NUMBER('0x10')",
            "AS_NUMBER('abc')",
            "AS_NUMBER('inf')",
            "AS_NUMBER(7)",
            "AS_NUMBER(true)",
        ],
        expect![[r#"
            ABS(-2.5) => 2.5
            ABS('x') => undefined
            CEILING(1.2) => 2
            CEILING(-1.2) => -1
            FLOOR(1.8) => 1
            FLOOR(-1.2) => -2
            EXP(0) => 1
            POWER(2, 10) => 1024
            POWER(2, 'x') => undefined
            SQUARE(-3) => 9
            SIGN(-4) => -1
            SIGN(0) => 0
            SIGN(9.5) => 1
            SQRT(16) => 4
            SQRT(-1) => undefined
            AS_NUMBER('42') => 42
            as_number(' -1.5e2 ') => -150
            AS_NUMBER('0x10') => 16
            AS_NUMBER('abc') => undefined
            AS_NUMBER('inf') => undefined
            AS_NUMBER(7) => 7
            AS_NUMBER(true) => undefined
        "#]],
    );
}

#[test]
fn comments_whitespace_and_keyword_case() {
    let twins = sample_twins();
    check(
        "sElEcT /* all of them */ *\n\tFrOm devices\nWhErE tags.location.region = 'US' aNd NoT (status = 'disabled')",
        &twins,
        expect![[r#"
            twin (1 rows)
            "d1"
        "#]],
    );
}
