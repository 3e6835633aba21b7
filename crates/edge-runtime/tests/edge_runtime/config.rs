use edge_runtime::EdgeSettings;
use expect_test::{Expect, expect};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Parses `text` and renders the settings (key redacted) or the refusal.
fn check(text: &str, expected: Expect) {
    let rendered = match EdgeSettings::from_toml(text) {
        Ok(settings) => format!(
            "hub={} device={} key_len={} ca={} gateway={} data={} runtime={} sockets={} mqtt={} https={} ca_days={}",
            settings.hub_hostname,
            settings.device_id,
            settings.device_key.as_bytes().len(),
            settings.hub_ca_file.display(),
            settings.gateway_hostname,
            settings.data_dir.display(),
            settings.runtime,
            settings.workload_socket_dir.display(),
            settings.hub_mqtt_port,
            settings.hub_https_port,
            settings.edge_ca_validity_days,
        ),
        Err(error) => format!("error: {error}"),
    };
    expected.assert_eq(&rendered);
}

fn minimal(extra: &str) -> String {
    format!(
        "hub_hostname = \"hub.local\"\ndevice_id = \"edge-1\"\ndevice_key = \"{KEY}\"\n\
         hub_ca_file = \"/etc/outpost/ca.pem\"\ndata_dir = \"/var/lib/outpost/edge\"\n{extra}"
    )
}

#[test]
fn minimal_configuration_takes_defaults() {
    check(
        &minimal(""),
        expect![
            "hub=hub.local device=edge-1 key_len=32 ca=/etc/outpost/ca.pem gateway=hub.local data=/var/lib/outpost/edge runtime=process sockets=/var/lib/outpost/edge/mnt mqtt=8883 https=443 ca_days=90"
        ],
    );
}

#[test]
fn every_key_given() {
    check(
        &minimal(
            "gateway_hostname = \"edge-1.lan\"\nruntime = \"docker\"\nworkload_socket_dir = \"/run/outpost\"\nhub_mqtt_port = 18883\nhub_https_port = 8443\nedge_ca_validity_days = 365\n",
        ),
        expect![
            "hub=hub.local device=edge-1 key_len=32 ca=/etc/outpost/ca.pem gateway=edge-1.lan data=/var/lib/outpost/edge runtime=docker sockets=/run/outpost mqtt=18883 https=8443 ca_days=365"
        ],
    );
}

#[test]
fn connection_string_instead_of_parts() {
    check(
        &format!(
            "connection_string = \"HostName=hub.local;DeviceId=edge-2;SharedAccessKey={KEY}\"\n\
             hub_ca_file = \"/ca.pem\"\ndata_dir = \"/data\"\n"
        ),
        expect![
            "hub=hub.local device=edge-2 key_len=32 ca=/ca.pem gateway=hub.local data=/data runtime=process sockets=/data/mnt mqtt=8883 https=443 ca_days=90"
        ],
    );
    check(
        &format!(
            "connection_string = \"HostName=hub.local;DeviceId=edge-2;SharedAccessKey={KEY}\"\n\
             device_id = \"edge-3\"\nhub_ca_file = \"/ca.pem\"\ndata_dir = \"/data\"\n"
        ),
        expect![
            "error: give either connection_string or hub_hostname, device_id and device_key, not both"
        ],
    );
    check(
        "connection_string = \"HostName=hub.local;SharedAccessKeyName=iothubowner;SharedAccessKey=MDEy\"\nhub_ca_file = \"/ca.pem\"\ndata_dir = \"/data\"\n",
        expect![
            "error: connection_string: an edge device needs a device connection string (HostName=…;DeviceId=…;SharedAccessKey=…)"
        ],
    );
}

#[test]
fn refusals_name_the_key() {
    check(
        &minimal("colour = \"blue\"\n"),
        expect![
            "error: the configuration is not valid TOML: unknown field `colour`, expected one of `connection_string`, `hub_hostname`, `device_id`, `device_key`, `hub_ca_file`, `gateway_hostname`, `data_dir`, `runtime`, `workload_socket_dir`, `hub_mqtt_port`, `hub_https_port`, `edge_ca_validity_days`, `edge_hub`"
        ],
    );
    check(
        &minimal("[edge_hub]\noverflow = \"discard\"\n"),
        expect![[r#"error: edge_hub.overflow: "discard" is neither refuse_new nor drop_oldest"#]],
    );
    check(
        &minimal("[edge_hub]\nstore_max_bytes = 1000\n"),
        expect!["error: edge_hub.store_max_bytes: the store needs at least 16 MiB"],
    );
    check(
        &minimal("[edge_hub]\nmqtt_addr = \"localhost\"\n"),
        expect![[r#"error: edge_hub.mqtt_addr: "localhost" is not an IP:port address"#]],
    );
    check(
        &minimal("[edge_hub]\nport = 1\n"),
        expect![
            "error: the configuration is not valid TOML: unknown field `port`, expected one of `enabled`, `mqtt_addr`, `https_addr`, `store_max_bytes`, `overflow`"
        ],
    );
    check(
        &minimal("runtime = \"podman\"\n"),
        expect![[
            r#"error: the configuration is not valid TOML: unknown variant `podman`, expected `process` or `docker`"#
        ]],
    );
    check(
        "device_id = \"edge-1\"\n",
        expect!["error: hub_hostname is required"],
    );
    check(
        &minimal("").replace(KEY, "not base64!"),
        expect![
            "error: device_key: symmetric key is not valid base64: Invalid symbol 32, offset 3."
        ],
    );
    check(
        &minimal("").replace("/var/lib/outpost/edge", "outpost-data/edge"),
        expect!["error: data_dir must be an absolute path, not outpost-data/edge"],
    );
    check(
        &minimal("edge_ca_validity_days = 0\n"),
        expect!["error: edge_ca_validity_days: must be between 1 and 3650 days, not 0"],
    );
    check(
        &minimal("edge_ca_validity_days = 3651\n"),
        expect!["error: edge_ca_validity_days: must be between 1 and 3650 days, not 3651"],
    );
    check(
        &minimal("hub_mqtt_port = 0\n"),
        expect!["error: hub_mqtt_port: the port must not be 0"],
    );
    check(
        &minimal("").replace("edge-1", "bad device/id"),
        expect![
            "error: device_id: device id contains the character ' ' at byte 3, which IoT Hub does not allow"
        ],
    );
    check(
        &minimal("gateway_hostname = \"not a host\"\n"),
        expect![
            "error: gateway_hostname: host name contains the character ' ' at byte 3, expected ASCII letters, digits or `-._:[]`"
        ],
    );
}

#[test]
fn written_configuration_reads_back_the_same() {
    let settings = EdgeSettings::from_toml(&minimal("runtime = \"process\"\n")).expect("valid");
    let text = settings.to_toml();
    assert!(text.starts_with("# Outpost edge runtime configuration"));
    assert_eq!(
        EdgeSettings::from_toml(&text).expect("round trip"),
        settings
    );
    let debug = format!("{settings:?}");
    assert!(
        !debug.contains(KEY),
        "the key never shows in debug output: {debug}"
    );
}

#[test]
fn the_automatic_store_bound_is_a_share_of_the_free_disk() {
    use edge_runtime::config::automatic_store_bytes;
    assert_eq!(automatic_store_bytes(1_000_000_000_000), 100_000_000_000);
    assert_eq!(automatic_store_bytes(100 * 1024 * 1024), 64 * 1024 * 1024);
    assert_eq!(automatic_store_bytes(0), 64 * 1024 * 1024);
}
