//! The IoT Hub MQTT user name: `{hostName}/{deviceId}[/{moduleId}]/?{query}` (pure).

use iothub_types::{DeviceId, IdError, Identity, ModuleId};

/// A parsed CONNECT user name.
///
/// Accepted spellings: `{host}/{device}/?{query}`, `{host}/{device}/{module}/?{query}` (what the
/// SDKs send), the older `{host}/{device}[/{module}]/api-version=...` without `?`, and the bare
/// `{host}/{device}[/{module}][/]`. Ids are taken raw (the SDKs do not encode them); query keys
/// and values are percent-decoded (never turning `+` into a space). Unknown query keys are kept in
/// [`ConnectUsername::other_parameters`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectUsername {
    /// The hub host name the client believes it talks to (never the gateway name).
    pub host_name: String,
    /// The identity named by the path segments.
    pub identity: Identity,
    /// `api-version`, if present.
    pub api_version: Option<String>,
    /// `DeviceClientType` (the SDK's user agent), if present.
    pub device_client_type: Option<String>,
    /// `model-id` (IoT Plug and Play), if present.
    pub model_id: Option<String>,
    /// Every other query parameter, in order; a key without `=` has the empty value.
    pub other_parameters: Vec<(String, String)>,
}

/// Why a user name is unacceptable (answered with CONNACK 4).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// The user name has no host name segment or no device segment.
    #[error("user name is not {{hostName}}/{{deviceId}}[/{{moduleId}}]/?{{query}}")]
    Shape,
    /// The device segment is not a valid device id.
    #[error("invalid device id in user name: {0}")]
    InvalidDeviceId(IdError),
    /// The module segment is not a valid module id.
    #[error("invalid module id in user name: {0}")]
    InvalidModuleId(IdError),
    /// A query value is not valid percent-encoded UTF-8.
    #[error("query parameter {key:?} is not valid percent-encoded UTF-8")]
    InvalidEncoding {
        /// The raw key.
        key: String,
    },
}

impl ConnectUsername {
    /// Parses a user name.
    pub fn parse(username: &str) -> Result<ConnectUsername, UsernameError> {
        let (path, query) = split_path_and_query(username);
        let mut segments: Vec<&str> = path.split('/').collect();
        if segments.last() == Some(&"") {
            segments.pop();
        }
        let (host_name, raw_device, raw_module) = match segments.as_slice() {
            [host_name, raw_device] => (*host_name, *raw_device, None),
            [host_name, raw_device, raw_module] => (*host_name, *raw_device, Some(*raw_module)),
            _ => return Err(UsernameError::Shape),
        };
        if host_name.is_empty() {
            return Err(UsernameError::Shape);
        }
        let device = DeviceId::new(raw_device).map_err(UsernameError::InvalidDeviceId)?;
        let module = raw_module
            .map(ModuleId::new)
            .transpose()
            .map_err(UsernameError::InvalidModuleId)?;
        let mut parsed = ConnectUsername {
            host_name: host_name.to_owned(),
            identity: Identity { device, module },
            api_version: None,
            device_client_type: None,
            model_id: None,
            other_parameters: Vec::new(),
        };
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let invalid = || UsernameError::InvalidEncoding {
                key: raw_key.to_owned(),
            };
            let key = percent_decode(raw_key).ok_or_else(invalid)?;
            let value = percent_decode(raw_value).ok_or_else(invalid)?;
            match key.as_str() {
                "api-version" => parsed.api_version = Some(value),
                "DeviceClientType" => parsed.device_client_type = Some(value),
                "model-id" => parsed.model_id = Some(value),
                _ => parsed.other_parameters.push((key, value)),
            }
        }
        Ok(parsed)
    }
}

/// Splits at the first `/?`; failing that, treats a last segment starting with `api-version=` as
/// the query (the old spelling without `?`).
fn split_path_and_query(username: &str) -> (&str, &str) {
    if let Some(index) = username.find("/?") {
        return (&username[..index], &username[index + 2..]);
    }
    if let Some((path, last)) = username.rsplit_once('/')
        && last.starts_with("api-version=")
    {
        return (path, last);
    }
    (username, "")
}

/// Percent-decodes to UTF-8 without turning `+` into a space; `None` for a bad escape or bad UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let high = hex_value(*bytes.get(index + 1)?)?;
            let low = hex_value(*bytes.get(index + 2)?)?;
            decoded.push(high << 4 | low);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(username: &str, expected: Expect) {
        let actual = match ConnectUsername::parse(username) {
            Ok(parsed) => format!(
                "host={} identity={} api={:?} client={:?} model={:?} other={:?}",
                parsed.host_name,
                parsed.identity,
                parsed.api_version,
                parsed.device_client_type,
                parsed.model_id,
                parsed.other_parameters
            ),
            Err(error) => format!("error: {error}"),
        };
        expected.assert_eq(&actual);
    }

    #[test]
    fn sdk_spellings() {
        check(
            "localhost/dev1/?api-version=2019-10-01&DeviceClientType=azure-iot-device-iothub-py%2F2.14.0%283.11.7%3BLinux%20%231%29",
            expect![[
                r#"host=localhost identity=dev1 api=Some("2019-10-01") client=Some("azure-iot-device-iothub-py/2.14.0(3.11.7;Linux #1)") model=None other=[]"#
            ]],
        );
        check(
            "localhost/dev1/mod1/?api-version=2020-09-30&DeviceClientType=x&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1",
            expect![[
                r#"host=localhost identity=dev1/mod1 api=Some("2020-09-30") client=Some("x") model=Some("dtmi:com:example:Thermostat;1") other=[]"#
            ]],
        );
        check(
            "hub.example/dev1/?api-version=2021-04-12",
            expect![[
                r#"host=hub.example identity=dev1 api=Some("2021-04-12") client=None model=None other=[]"#
            ]],
        );
    }

    #[test]
    fn older_and_bare_spellings() {
        check(
            "hub/dev1/api-version=2016-11-14",
            expect![[
                r#"host=hub identity=dev1 api=Some("2016-11-14") client=None model=None other=[]"#
            ]],
        );
        check(
            "hub/dev1/mod1/api-version=2016-11-14",
            expect![[
                r#"host=hub identity=dev1/mod1 api=Some("2016-11-14") client=None model=None other=[]"#
            ]],
        );
        check(
            "hub/dev1",
            expect![[r#"host=hub identity=dev1 api=None client=None model=None other=[]"#]],
        );
        check(
            "hub/dev1/",
            expect![[r#"host=hub identity=dev1 api=None client=None model=None other=[]"#]],
        );
        check(
            "hub/dev1/?flag&x=1+2",
            expect![[
                r#"host=hub identity=dev1 api=None client=None model=None other=[("flag", ""), ("x", "1+2")]"#
            ]],
        );
    }

    #[test]
    fn ids_with_unusual_characters_are_taken_raw() {
        check(
            "hub/dev=1?x/?api-version=1",
            expect![[r#"host=hub identity=dev=1?x api=Some("1") client=None model=None other=[]"#]],
        );
    }

    #[test]
    fn malformed_user_names() {
        check(
            "",
            expect!["error: user name is not {hostName}/{deviceId}[/{moduleId}]/?{query}"],
        );
        check(
            "hub",
            expect!["error: user name is not {hostName}/{deviceId}[/{moduleId}]/?{query}"],
        );
        check(
            "/dev1/?a=b",
            expect!["error: user name is not {hostName}/{deviceId}[/{moduleId}]/?{query}"],
        );
        check(
            "hub/a/b/c/?a=b",
            expect!["error: user name is not {hostName}/{deviceId}[/{moduleId}]/?{query}"],
        );
        check(
            "hub/dev 1/?a=b",
            expect![
                "error: invalid device id in user name: device id contains the character ' ' at byte 3, which IoT Hub does not allow"
            ],
        );
        check(
            "hub/dev1/?model-id=%ZZ",
            expect![[r#"error: query parameter "model-id" is not valid percent-encoded UTF-8"#]],
        );
        check(
            "hub/dev1/?model-id=%FF",
            expect![[r#"error: query parameter "model-id" is not valid percent-encoded UTF-8"#]],
        );
    }
}
