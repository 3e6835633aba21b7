//! Pure helpers for what goes on the wire at connect time and for the timing of reconnections:
//! the CONNECT packet as azure-iot-device 2.14 writes it, token renewal times and back-off delays.

use std::time::Duration;

use bytes::Bytes;
use iothub_auth::{HostName, quote_nothing_safe};
use iothub_types::Identity;
use mqtt_codec::Connect;

use crate::options::ReconnectPolicy;

/// The `api-version` this client announces in its user name.
pub const API_VERSION: &str = "2021-04-12";

/// The MQTT client id: `{deviceId}` or `{deviceId}/{moduleId}`.
pub fn client_id(identity: &Identity) -> String {
    identity.to_string()
}

/// The CONNECT user name: `{hub host}/{deviceId}[/{moduleId}]/?api-version=...&DeviceClientType=...`.
/// Host and ids are written raw; the product information is percent-encoded with nothing safe, as
/// the SDK's `urlencode` does (so `/` becomes `%2F`).
pub fn username(host_name: &HostName, identity: &Identity, product_info: &str) -> String {
    format!(
        "{host_name}/{identity}/?api-version={API_VERSION}&DeviceClientType={}",
        quote_nothing_safe(product_info)
    )
}

/// The CONNECT packet: clean session 0, no will, the user name above and the token (absent for
/// X.509) as password.
pub fn connect_packet(
    host_name: &HostName,
    identity: &Identity,
    product_info: &str,
    password: Option<String>,
    keep_alive: Duration,
) -> Connect {
    Connect {
        client_id: client_id(identity),
        clean_session: false,
        keep_alive: u16::try_from(keep_alive.as_secs()).unwrap_or(u16::MAX),
        will: None,
        username: Some(username(host_name, identity, product_info)),
        password: password.map(Bytes::from),
    }
}

/// How long after connecting with a token that expires at `expiry_unix_secs` (now being
/// `now_unix_secs`) the client should reconnect with a fresh one: `margin` before expiry, or at
/// half the remaining lifetime when that is shorter than twice the margin. Never less than one
/// second, so an already expired token does not cause a reconnect loop faster than the hub can
/// refuse it.
pub fn token_renewal_delay(
    now_unix_secs: u64,
    expiry_unix_secs: u64,
    margin: Duration,
) -> Duration {
    let remaining = Duration::from_secs(expiry_unix_secs.saturating_sub(now_unix_secs));
    let delay = if remaining > margin * 2 {
        remaining - margin
    } else {
        remaining / 2
    };
    delay.max(Duration::from_secs(1))
}

/// The wait before reconnection attempt `attempt` (0 for the first after a connection ended),
/// with `random_unit` in `[0, 1)` choosing the jitter.
pub fn backoff_delay(policy: &ReconnectPolicy, attempt: u32, random_unit: f64) -> Duration {
    let multiplier = f64::from(policy.multiplier.max(1));
    let exponent = i32::try_from(attempt.min(64)).unwrap_or(64);
    let uncapped_secs = policy.initial_delay.as_secs_f64() * multiplier.powi(exponent);
    let capped_secs = uncapped_secs.min(policy.max_delay.as_secs_f64());
    let jitter_share = f64::from(policy.jitter_percent.min(100)) / 100.0;
    let random_unit = random_unit.clamp(0.0, 1.0);
    Duration::from_secs_f64(capped_secs * (1.0 - jitter_share * random_unit))
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    use super::*;

    fn check_connect(identity: &str, password: Option<&str>, expect: Expect) {
        let host_name = HostName::new("hub.example.net").unwrap();
        let identity: Identity = identity.parse().unwrap();
        let connect = connect_packet(
            &host_name,
            &identity,
            crate::options::DEFAULT_PRODUCT_INFO,
            password.map(str::to_owned),
            Duration::from_secs(60),
        );
        let rendered = format!(
            "client_id={} clean_session={} keep_alive={} will={:?}\nusername={}\npassword={:?}",
            connect.client_id,
            connect.clean_session,
            connect.keep_alive,
            connect.will,
            connect.username.unwrap_or_default(),
            connect
                .password
                .map(|password| String::from_utf8_lossy(&password).into_owned()),
        );
        expect.assert_eq(&rendered);
    }

    #[test]
    fn device_connect_packet() {
        check_connect(
            "dev1",
            Some("SharedAccessSignature sr=x&sig=y&se=1"),
            expect![[r#"
                client_id=dev1 clean_session=false keep_alive=60 will=None
                username=hub.example.net/dev1/?api-version=2021-04-12&DeviceClientType=outpost%2F0.1
                password=Some("SharedAccessSignature sr=x&sig=y&se=1")"#]],
        );
    }

    #[test]
    fn module_connect_packet_without_password() {
        check_connect(
            "dev1/$edgeAgent",
            None,
            expect![[r#"
                client_id=dev1/$edgeAgent clean_session=false keep_alive=60 will=None
                username=hub.example.net/dev1/$edgeAgent/?api-version=2021-04-12&DeviceClientType=outpost%2F0.1
                password=None"#]],
        );
    }

    #[test]
    fn renewal_delays() {
        let margin = Duration::from_secs(120);
        let rendered: Vec<String> = [(0, 3600), (0, 240), (0, 100), (100, 50), (0, 1)]
            .into_iter()
            .map(|(now, expiry)| {
                format!(
                    "now={now} se={expiry} -> {:?}",
                    token_renewal_delay(now, expiry, margin)
                )
            })
            .collect();
        expect![[r#"
            [
                "now=0 se=3600 -> 3480s",
                "now=0 se=240 -> 120s",
                "now=0 se=100 -> 50s",
                "now=100 se=50 -> 1s",
                "now=0 se=1 -> 1s",
            ]
        "#]]
        .assert_debug_eq(&rendered);
    }

    #[test]
    fn backoff_sequence_without_jitter() {
        let policy = ReconnectPolicy {
            jitter_percent: 0,
            ..ReconnectPolicy::default()
        };
        let delays: Vec<u64> = (0..9)
            .map(|attempt| backoff_delay(&policy, attempt, 0.7).as_secs())
            .collect();
        expect![[r#"
            [
                1,
                2,
                4,
                8,
                16,
                32,
                60,
                60,
                60,
            ]
        "#]]
        .assert_debug_eq(&delays);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn backoff_stays_within_bounds(
            attempt in 0u32..200,
            random_unit in 0.0f64..1.0,
            jitter_percent in 0u8..=100,
            initial_ms in 1u64..5_000,
            max_ms in 1u64..600_000,
            multiplier in 1u32..5,
        ) {
            let policy = ReconnectPolicy {
                initial_delay: Duration::from_millis(initial_ms),
                max_delay: Duration::from_millis(max_ms),
                multiplier,
                jitter_percent,
            };
            let delay = backoff_delay(&policy, attempt, random_unit);
            let uncapped_secs =
                initial_ms as f64 / 1000.0 * f64::from(multiplier).powi(attempt.min(64) as i32);
            let ceiling_secs = policy.max_delay.as_secs_f64().min(uncapped_secs);
            prop_assert!(delay.as_secs_f64() <= ceiling_secs + 1e-6);
            let floor_secs = ceiling_secs * (1.0 - f64::from(jitter_percent) / 100.0);
            prop_assert!(delay.as_secs_f64() + 1e-6 >= floor_secs);
            // Without jitter, later attempts never wait less.
            let next = backoff_delay(&policy, attempt + 1, random_unit);
            if jitter_percent == 0 {
                prop_assert!(next >= delay);
            }
        }
    }
}
