//! The edge CA is renewed in place while `outpost edge run` keeps running: the real binary is
//! given an edge CA that falls due a few seconds after start, and the test watches the edge hub
//! serve a server certificate from the renewed CA to new TLS handshakes, with no restart.

mod support;

use std::path::Path;
use std::sync::atomic::AtomicU8;
use std::time::{Duration, SystemTime};

use support::edge::{init_edge, tail, wait_for};
use support::{Hub, next_address, served_chain};
use tls::{CertificateAuthority, CertificateDer, CertificateValidity};

static ADDRESSES: AtomicU8 = AtomicU8::new(0);

const EDGE: &str = "edge-ca-renewal";

fn not_after(certificate: &[u8]) -> i64 {
    tls::summarize_certificate(certificate)
        .expect("a certificate")
        .not_after_unix_secs
}

fn read_ca(path: &Path) -> CertificateDer<'static> {
    tls::read_certificates_file(path)
        .expect("the edge CA file")
        .remove(0)
}

#[test]
fn the_edge_ca_is_renewed_in_place_and_the_edge_hub_serves_from_it_without_a_restart() {
    let hub = Hub::start(&next_address(41, &ADDRESSES));
    let gateway = next_address(41, &ADDRESSES);
    hub.cli_ok(&["device", "create", EDGE, "--edge"]);
    let edge_cs = hub
        .cli_ok(&["device", "connection-string", EDGE])
        .trim()
        .to_owned();
    let temp = tempfile::tempdir().expect("temporary directory");
    let directory = temp.path();
    let mut edge = init_edge(&hub, &edge_cs, directory, &["--gateway-hostname", &gateway]);

    // A 3-day edge CA two thirds through its life but for 12 seconds: it falls due while the
    // runtime runs. (Renewal is due at two thirds of the lifetime.)
    let lifetime = Duration::from_secs(3 * 86_400);
    let not_before = SystemTime::now() - (lifetime * 2 / 3 - Duration::from_secs(12));
    let old_ca = CertificateAuthority::generate(
        &format!("Outpost edge CA {EDGE}"),
        CertificateValidity {
            not_before,
            not_after: not_before + lifetime,
        },
    )
    .expect("an edge CA");
    let agent_dir = directory.join("edge/agent");
    std::fs::create_dir_all(&agent_dir).expect("agent directory");
    let (ca_path, key_path) = edge_runtime::workload::edge_ca_paths(&agent_dir);
    tls::write_pem_file(
        &ca_path,
        &old_ca.certificate_pem(),
        tls::FileAccess::WorldReadable,
    )
    .expect("write the CA certificate");
    tls::write_pem_file(
        &key_path,
        &old_ca.private_key_pem(),
        tls::FileAccess::OwnerOnly,
    )
    .expect("write the CA key");

    edge.start();
    let first = wait_for("the edge hub's TLS listener", || {
        served_chain(&gateway, 8883, old_ca.certificate())
            .map_err(|error| format!("{error}\nedge log:\n{}", tail(&edge.log(), 20)))
    });
    assert_eq!(
        read_ca(&ca_path),
        *old_ca.certificate(),
        "the CA is not due yet at start"
    );
    let old_end = not_after(old_ca.certificate());
    assert!(
        not_after(&first[0]) <= old_end,
        "a server certificate never outlives its CA"
    );

    // The runtime renews the CA in place: same key, a new certificate valid for 90 days.
    let renewed = wait_for("the renewed edge CA on disk", || {
        let current = read_ca(&ca_path);
        if current == *old_ca.certificate() {
            Err(tail(&edge.log(), 10))
        } else {
            Ok(current)
        }
    });
    assert_eq!(
        std::fs::read_to_string(&key_path).expect("the CA key"),
        old_ca.private_key_pem(),
        "renewal keeps the key"
    );
    let renewed_summary = tls::summarize_certificate(&renewed).expect("the renewed CA");
    assert_eq!(
        renewed_summary.subject_common_name.as_deref(),
        Some(format!("Outpost edge CA {EDGE}").as_str())
    );
    assert!(renewed_summary.not_after_unix_secs > old_end + 80 * 86_400);

    // New handshakes get a server certificate from the renewed CA, valid past the old CA's end.
    let second = wait_for("a server certificate from the renewed CA", || {
        let chain = served_chain(&gateway, 8883, &renewed)?;
        if chain[0] != first[0] && not_after(&chain[0]) > old_end {
            Ok(chain)
        } else {
            Err("still the first server certificate".to_owned())
        }
    });
    assert_eq!(
        second[0],
        served_chain(&gateway, 8883, old_ca.certificate()).expect("the old CA's holders")[0]
    );

    // `outpost edge list` shows the renewed CA's dates.
    let expected_end = chrono::DateTime::from_timestamp(renewed_summary.not_after_unix_secs, 0)
        .expect("a date")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    wait_for("the renewed CA in the runtime's status", || {
        let status = edge.status().ok_or("no status yet")?;
        match status
            .pointer("/edgeCa/notAfter")
            .and_then(|end| end.as_str())
        {
            Some(end) if end == expected_end => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let listed = edge.cli_ok(&["list"]);
    assert!(
        listed.contains(&format!(
            "edge CA valid until {expected_end}; renewed in place from "
        )),
        "{listed}"
    );

    // All of it without a restart.
    let child = edge.child.as_mut().expect("the runtime was started");
    assert!(
        child.try_wait().expect("runtime status").is_none(),
        "the runtime kept running"
    );
    let log = edge.log();
    assert_eq!(
        log.matches("Starting the edge runtime.").count(),
        1,
        "{log}"
    );
    assert!(log.contains("Renewed the edge CA certificate"), "{log}");
    assert!(
        log.contains("Edge hub server certificate renewed in place."),
        "{log}"
    );
    edge.stop();
}
