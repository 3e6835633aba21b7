//! The hub's server certificate is replaced without a restart: the real binary serves the user's
//! `--cert-file`/`--key-file`, the files are renewed (as an ACME client would) and SIGHUP makes new
//! handshakes get the new certificate; a key that does not match is refused and the hub keeps
//! serving the certificate it had.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU8;

use support::edge::{tail, wait_for};
use support::{next_address, outpost_binary, served_chain};
use tls::{CertificateAuthority, CertificateValidity, IssuedCertificate, ServerCertificateRequest};

static ADDRESSES: AtomicU8 = AtomicU8::new(0);

fn issue(ca: &CertificateAuthority, address: &str) -> IssuedCertificate {
    ca.issue_server_certificate(&ServerCertificateRequest {
        common_name: address.to_owned(),
        dns_names: Vec::new(),
        ip_addresses: vec![address.parse().expect("an IP address")],
        validity: CertificateValidity::days_from_now(30),
    })
    .expect("a server certificate")
}

/// Writes the certificate chain and key files the hub reads, as a renewal client would.
fn install(directory: &Path, chain_pem: &str, key_pem: &str) {
    tls::write_pem_file(
        &directory.join("cert.pem"),
        chain_pem,
        tls::FileAccess::WorldReadable,
    )
    .expect("write the certificate");
    tls::write_pem_file(
        &directory.join("key.pem"),
        key_pem,
        tls::FileAccess::OwnerOnly,
    )
    .expect("write the key");
}

/// The hub process, killed when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hang_up(child: &Child) {
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[test]
fn the_hub_reloads_its_certificate_files_on_sighup_and_refuses_a_mismatched_key() {
    let address = next_address(43, &ADDRESSES);
    let temp = tempfile::tempdir().expect("temporary directory");
    let directory = temp.path();
    let ca = CertificateAuthority::generate("user CA", CertificateValidity::days_from_now(90))
        .expect("a CA");
    let first = issue(&ca, &address);
    install(directory, &first.chain_pem(), &first.private_key_pem());

    let log_path = directory.join("hub.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut hub = KillOnDrop(
        Command::new(outpost_binary())
            .args(["hub", "serve", "--data-dir"])
            .arg(directory.join("hub"))
            .args(["--hostname", &address])
            .args(["--mqtt-addr", &format!("{address}:8883")])
            .args(["--https-addr", &format!("{address}:443")])
            .arg("--cert-file")
            .arg(directory.join("cert.pem"))
            .arg("--key-file")
            .arg(directory.join("key.pem"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn outpost hub serve"),
    );
    let child = &mut hub.0;
    let hub_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let served = |port: u16| served_chain(&address, port, ca.certificate());
    let chain = wait_for("the hub's TLS listeners", || {
        let mqtt = served(8883)?;
        let https = served(443)?;
        Ok::<_, String>((mqtt, https))
    });
    assert_eq!(chain.0[0], *first.end_entity());
    assert_eq!(chain.1[0], *first.end_entity());

    // The files are renewed; SIGHUP makes both listeners serve the new certificate.
    let second = issue(&ca, &address);
    install(directory, &second.chain_pem(), &second.private_key_pem());
    hang_up(child);
    wait_for("the renewed certificate on both listeners", || {
        let mqtt = served(8883)?;
        let https = served(443)?;
        if mqtt[0] == *second.end_entity() && https[0] == *second.end_entity() {
            Ok(())
        } else {
            Err(tail(&hub_log(), 5))
        }
    });

    // A certificate with somebody else's key is refused; the hub keeps serving the second one.
    let third = issue(&ca, &address);
    let stranger = issue(&ca, &address);
    install(directory, &third.chain_pem(), &stranger.private_key_pem());
    hang_up(child);
    wait_for("the refusal in the hub's log", || {
        let log = hub_log();
        if log.contains("cannot reload the server certificate") {
            Ok(())
        } else {
            Err(tail(&log, 5))
        }
    });
    assert_eq!(served(8883).expect("a handshake")[0], *second.end_entity());
    assert!(
        child.try_wait().expect("hub status").is_none(),
        "the hub kept running"
    );
    let log = hub_log();
    assert_eq!(log.matches("hub started").count(), 1, "{log}");
    assert!(
        !log.contains(&stranger.private_key_pem()),
        "no key in the log"
    );
}
