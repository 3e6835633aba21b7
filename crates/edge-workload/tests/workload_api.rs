//! The workload API over real Unix sockets and loopback TCP, called as the SDKs call it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use edge_workload::{
    AnyCaller, CallerCheck, MAX_CONCURRENT_REQUESTS, ModuleKeyError, ModuleKeys, WorkloadApi,
    WorkloadCertificates, WorkloadListener,
};
use expect_test::expect;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use iothub_auth::{SasToken, SymmetricKey};
use iothub_types::ModuleId;
use serde_json::{Value, json};
use tls::{CertificateAuthority, CertificateValidity};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;

/// How long any single wait in these tests may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

/// Module keys for the tests: one key and generation per module, optionally held at a gate.
#[derive(Clone, Default)]
struct TestKeys {
    keys: Arc<BTreeMap<String, (SymmetricKey, String)>>,
    gate: Option<Arc<Gate>>,
    requests: Arc<Mutex<Vec<String>>>,
}

/// Holds `module_key` calls until opened, counting the ones waiting.
#[derive(Default)]
struct Gate {
    waiting: Mutex<usize>,
    arrived: Notify,
    open: Notify,
}

impl TestKeys {
    fn new(modules: &[(&str, &str)]) -> TestKeys {
        TestKeys {
            keys: Arc::new(
                modules
                    .iter()
                    .map(|(module, generation)| {
                        (
                            (*module).to_owned(),
                            (SymmetricKey::generate_random(), (*generation).to_owned()),
                        )
                    })
                    .collect(),
            ),
            ..TestKeys::default()
        }
    }

    fn key(&self, module: &str) -> SymmetricKey {
        self.keys[module].0.clone()
    }
}

impl ModuleKeys for TestKeys {
    async fn module_key(
        &self,
        module_id: &ModuleId,
        generation_id: &str,
    ) -> Result<SymmetricKey, ModuleKeyError> {
        self.requests
            .lock()
            .unwrap()
            .push(format!("{module_id}@{generation_id}"));
        if let Some(gate) = &self.gate {
            let opened = gate.open.notified();
            *gate.waiting.lock().unwrap() += 1;
            gate.arrived.notify_one();
            opened.await;
        }
        let (key, generation) = self
            .keys
            .get(module_id.as_str())
            .ok_or_else(|| ModuleKeyError::UnknownModule(module_id.to_string()))?;
        if generation != generation_id {
            return Err(ModuleKeyError::WrongGeneration {
                module: module_id.to_string(),
                generation_id: generation_id.to_owned(),
            });
        }
        Ok(key.clone())
    }
}

fn module_id(text: &str) -> ModuleId {
    ModuleId::new(text).unwrap()
}

fn edge_ca() -> CertificateAuthority {
    CertificateAuthority::generate("Outpost edge CA", CertificateValidity::days_from_now(365))
        .unwrap()
}

fn api<C: CallerCheck>(keys: TestKeys, caller_check: C) -> WorkloadApi<TestKeys, C> {
    WorkloadApi::new(
        keys,
        WorkloadCertificates::new(edge_ca()).unwrap(),
        caller_check,
    )
}

/// One HTTP/1.1 request over an established stream; the body is sent without a Content-Type,
/// as the Python SDK does.
async fn request_over<S>(stream: S, method: &str, uri: &str, body: Option<Value>) -> (u16, Value)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let body = body.map(|value| value.to_string()).unwrap_or_default();
    let request = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "workload.sock")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("an answer");
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn call(socket: &Path, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect to the workload socket");
    request_over(stream, method, uri, body).await
}

fn sign_body(data: &[u8]) -> Value {
    json!({"keyId": "primary", "algo": "HMACSHA256", "data": BASE64.encode(data)})
}

async fn listen<C: CallerCheck>(
    api: &WorkloadApi<TestKeys, C>,
    directory: &Path,
    module: &str,
) -> (WorkloadListener, PathBuf) {
    let path = directory.join("mnt").join(format!("{module}.sock"));
    let listener = api.listen_unix(module_id(module), &path).await.unwrap();
    (listener, path)
}

#[tokio::test]
async fn the_trust_bundle_is_the_edge_ca() {
    let directory = tempfile::tempdir().unwrap();
    let api = api(TestKeys::new(&[]), AnyCaller);
    let (listener, socket) = listen(&api, directory.path(), "sensor").await;
    assert_eq!(
        listener.uri(),
        format!("unix://{}", socket.display()),
        "the URI goes into IOTEDGE_WORKLOADURI"
    );

    let (status, body) = call(&socket, "GET", "/trust-bundle?api-version=2020-07-07", None).await;
    assert_eq!(status, 200);
    let pem = body["certificate"].as_str().unwrap();
    let certificates = tls::certificates_from_pem(pem.as_bytes(), "trust bundle").unwrap();
    assert_eq!(certificates.len(), 1);
    let summary = tls::summarize_certificate(&certificates[0]).unwrap();
    assert!(summary.is_ca && summary.self_issued);
    assert_eq!(
        summary.subject_common_name.as_deref(),
        Some("Outpost edge CA")
    );

    let (status, body) = call(&socket, "GET", "/manifest-trust-bundle", None).await;
    assert_eq!((status, body), (200, json!({"certificate": ""})));
    assert_eq!(api.counters().trust_bundle, 1);

    drop(listener);
    assert!(!socket.exists(), "dropping the listener removes its socket");
}

#[tokio::test]
async fn sign_returns_the_hmac_of_the_module_key() {
    let directory = tempfile::tempdir().unwrap();
    let keys = TestKeys::new(&[("sensor", "gen-1"), ("$edgeHub", "gen-9")]);
    let api = api(keys.clone(), AnyCaller);
    let (_sensor, sensor_socket) = listen(&api, directory.path(), "sensor").await;
    let (_hub, hub_socket) = listen(&api, directory.path(), "$edgeHub").await;

    let string_to_sign = b"hub.example.net%2Fdevices%2Fedge-1%2Fmodules%2Fsensor\n1795752533";
    let (status, body) = call(
        &sensor_socket,
        "POST",
        "/modules/sensor/genid/gen-1/sign?api-version=2019-01-30",
        Some(sign_body(string_to_sign)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"digest": keys.key("sensor").sign_to_base64(string_to_sign)})
    );

    // The module id is URL-encoded in the path, and may be given with or without its `$`.
    for path in [
        "/modules/%24edgeHub/genid/gen-9/sign",
        "/modules/edgeHub/genid/gen-9/sign",
    ] {
        let (status, body) = call(&hub_socket, "POST", path, Some(sign_body(b"abc"))).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["digest"], keys.key("$edgeHub").sign_to_base64(b"abc"));
    }
    assert_eq!(api.counters().sign, 3);
    assert_eq!(
        *keys.requests.lock().unwrap(),
        ["sensor@gen-1", "$edgeHub@gen-9", "$edgeHub@gen-9"]
    );
}

#[tokio::test]
async fn what_the_workload_api_refuses() {
    let directory = tempfile::tempdir().unwrap();
    let keys = TestKeys::new(&[("sensor", "gen-1"), ("other", "gen-1")]);
    let api = api(keys.clone(), AnyCaller);
    let (_listener, socket) = listen(&api, directory.path(), "sensor").await;
    let cases = [
        (
            "POST",
            "/modules/other/genid/gen-1/sign",
            Some(sign_body(b"x")),
        ),
        (
            "POST",
            "/modules/%24other/genid/gen-1/sign",
            Some(sign_body(b"x")),
        ),
        (
            "POST",
            "/modules/sensor/genid/gen-0/sign",
            Some(sign_body(b"x")),
        ),
        (
            "POST",
            "/modules/sensor/genid/gen-1/sign",
            Some(json!({"data": "not base64!"})),
        ),
        (
            "POST",
            "/modules/sensor/genid/gen-1/sign",
            Some(json!({"algo": "HMACSHA1", "data": ""})),
        ),
        (
            "POST",
            "/modules/sensor/genid/gen-1/sign",
            Some(json!({"keyId": "primary"})),
        ),
        (
            "POST",
            "/modules/sensor/genid/gen-1/sign?api-version=1999-01-01",
            Some(sign_body(b"x")),
        ),
        ("GET", "/trust-bundle?api-version=garbage", None),
        (
            "POST",
            "/modules/sensor/genid/gen-1/encrypt",
            Some(json!({})),
        ),
        (
            "POST",
            "/modules/sensor/genid/gen-1/certificate/server",
            Some(json!({"commonName": "edge-1.local", "expiration": "tomorrow"})),
        ),
        (
            "POST",
            "/modules/sensor/genid/gen-1/certificate/server",
            Some(json!({"commonName": "has space", "expiration": "2099-01-01T00:00:00Z"})),
        ),
        (
            "POST",
            "/modules/sensor/genid/gen-1/certificate/server",
            Some(json!({"commonName": "edge-1.local", "expiration": "2001-01-01T00:00:00Z"})),
        ),
        (
            "POST",
            "/modules/other/certificate/identity",
            Some(json!({"expiration": "2099-01-01T00:00:00Z"})),
        ),
    ];
    let mut rendered = String::new();
    for (method, uri, body) in cases {
        let (status, answer) = call(&socket, method, uri, body).await;
        rendered.push_str(&format!("{method} {uri}\n  {status} {answer}\n"));
    }
    expect![[r#"
        POST /modules/other/genid/gen-1/sign
          403 {"message":"this workload endpoint belongs to module sensor; it cannot act as module other"}
        POST /modules/%24other/genid/gen-1/sign
          403 {"message":"this workload endpoint belongs to module sensor; it cannot act as module $other"}
        POST /modules/sensor/genid/gen-0/sign
          404 {"message":"generation gen-0 is not the current generation of module sensor"}
        POST /modules/sensor/genid/gen-1/sign
          400 {"message":"data is not base64: Invalid symbol 32, offset 3."}
        POST /modules/sensor/genid/gen-1/sign
          400 {"message":"algo \"HMACSHA1\" is not supported; only HMACSHA256 is"}
        POST /modules/sensor/genid/gen-1/sign
          400 {"message":"malformed request body: missing field `data` at line 1 column 19"}
        POST /modules/sensor/genid/gen-1/sign?api-version=1999-01-01
          400 {"message":"api-version \"1999-01-01\" is not supported; use one of 2018-06-28, 2019-01-30, 2019-10-22, 2019-11-05, 2020-07-07, 2021-12-07, 2022-08-03"}
        GET /trust-bundle?api-version=garbage
          400 {"message":"api-version \"garbage\" is not supported; use one of 2018-06-28, 2019-01-30, 2019-10-22, 2019-11-05, 2020-07-07, 2021-12-07, 2022-08-03"}
        POST /modules/sensor/genid/gen-1/encrypt
          404 {"message":"no such workload API route"}
        POST /modules/sensor/genid/gen-1/certificate/server
          400 {"message":"expiration \"tomorrow\" is not an RFC 3339 time: premature end of input"}
        POST /modules/sensor/genid/gen-1/certificate/server
          400 {"message":"commonName \"has space\" is not a host name or IP address"}
        POST /modules/sensor/genid/gen-1/certificate/server
          400 {"message":"expiration 2001-01-01T00:00:00Z is not in the future"}
        POST /modules/other/certificate/identity
          403 {"message":"this workload endpoint belongs to module sensor; it cannot act as module other"}
    "#]]
    .assert_eq(&rendered);
    assert_eq!(api.counters().refused, 3);
    assert_eq!(
        *keys.requests.lock().unwrap(),
        ["sensor@gen-0"],
        "refused callers and malformed requests never reach the keys"
    );
}

#[tokio::test]
async fn a_server_certificate_from_the_edge_ca_serves_tls_to_trust_bundle_clients() {
    let directory = tempfile::tempdir().unwrap();
    let api = api(TestKeys::new(&[]), AnyCaller);
    let (_listener, socket) = listen(&api, directory.path(), "$edgeHub").await;
    let requested = chrono::Utc::now() + chrono::TimeDelta::days(30);
    let (status, body) = call(
        &socket,
        "POST",
        "/modules/%24edgeHub/genid/gen-1/certificate/server?api-version=2020-07-07",
        Some(json!({"commonName": "edge-1.local", "expiration": requested.to_rfc3339()})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["privateKey"]["type"], "key");
    let chain =
        tls::certificates_from_pem(body["certificate"].as_str().unwrap().as_bytes(), "chain")
            .unwrap();
    assert_eq!(chain.len(), 2, "the leaf, then the edge CA");
    let leaf = tls::summarize_certificate(&chain[0]).unwrap();
    assert_eq!(leaf.subject_common_name.as_deref(), Some("edge-1.local"));
    assert_eq!(leaf.issuer_common_name.as_deref(), Some("Outpost edge CA"));
    assert!(!leaf.is_ca);
    assert_eq!(leaf.not_after_unix_secs, requested.timestamp());
    let expiration =
        chrono::DateTime::parse_from_rfc3339(body["expiration"].as_str().unwrap()).unwrap();
    assert_eq!(expiration.timestamp(), requested.timestamp());

    // A client that trusts only the trust bundle accepts the certificate for both names.
    let (_, bundle) = call(&socket, "GET", "/trust-bundle", None).await;
    let roots =
        tls::certificates_from_pem(bundle["certificate"].as_str().unwrap().as_bytes(), "bundle")
            .unwrap();
    let private_key = tls::private_key_from_pem(
        body["privateKey"]["bytes"].as_str().unwrap().as_bytes(),
        "key",
    )
    .unwrap();
    let resolver =
        Arc::new(tls::ReloadableCertificateResolver::from_parts(chain, private_key).unwrap());
    let server_config =
        Arc::new(tls::server_config(resolver, tls::ClientCertificates::NotRequested).unwrap());
    let client_config = Arc::new(tls::client_config(&roots).unwrap());
    for server_name in ["edge-1.local", "edgehub"] {
        let (client_stream, server_stream) = tokio::io::duplex(64 * 1024);
        let acceptor = tls::tokio_rustls::TlsAcceptor::from(server_config.clone());
        let server = tokio::spawn(async move { acceptor.accept(server_stream).await.map(|_| ()) });
        let connector = tls::tokio_rustls::TlsConnector::from(client_config.clone());
        let name = tls::rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
        let client = connector
            .connect(name, client_stream)
            .await
            .unwrap_or_else(|error| panic!("TLS to {server_name}: {error}"));
        server.await.unwrap().unwrap();
        drop(client);
    }

    let (status, body) = call(
        &socket,
        "POST",
        "/modules/%24edgeHub/certificate/identity",
        Some(json!({"expiration": requested.to_rfc3339()})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let identity =
        tls::certificates_from_pem(body["certificate"].as_str().unwrap().as_bytes(), "identity")
            .unwrap();
    let summary = tls::summarize_certificate(&identity[0]).unwrap();
    assert_eq!(summary.subject_common_name.as_deref(), Some("$edgeHub"));
    let counters = api.counters();
    assert_eq!(
        (counters.server_certificates, counters.identity_certificates),
        (1, 1)
    );
}

#[tokio::test]
async fn a_caller_check_vets_the_calling_process_on_sockets_and_loopback_tcp() {
    let directory = tempfile::tempdir().unwrap();
    let keys = TestKeys::new(&[("sensor", "gen-1")]);
    let own_pid = std::process::id();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_by_check = seen.clone();
    let api = api(keys.clone(), move |module: &ModuleId, pid: u32| {
        seen_by_check
            .lock()
            .unwrap()
            .push(format!("{module}:{}", pid == own_pid));
        pid == own_pid
    });
    let (_listener, socket) = listen(&api, directory.path(), "sensor").await;
    let (status, _) = call(
        &socket,
        "POST",
        "/modules/sensor/genid/gen-1/sign",
        Some(sign_body(b"x")),
    )
    .await;
    assert_eq!(status, 200);

    let tcp = api
        .listen_loopback(module_id("sensor"), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let address = tcp.local_address().unwrap();
    assert_eq!(tcp.uri(), format!("http://{address}"));
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (status, body) = request_over(
        stream,
        "POST",
        "/modules/sensor/genid/gen-1/sign?api-version=2020-07-07",
        Some(sign_body(b"over tcp")),
    )
    .await;
    assert_eq!(
        (status, body["digest"].clone()),
        (200, json!(keys.key("sensor").sign_to_base64(b"over tcp")))
    );
    assert_eq!(*seen.lock().unwrap(), ["sensor:true", "sensor:true"]);

    let refused = api
        .listen_loopback(module_id("sensor"), "0.0.0.0:0".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);

    // A check that knows no process of this module refuses the same call.
    let strict = WorkloadApi::new(
        keys,
        WorkloadCertificates::new(edge_ca()).unwrap(),
        |_: &ModuleId, _: u32| false,
    );
    let (_strict_listener, strict_socket) =
        listen(&strict, &directory.path().join("strict"), "sensor").await;
    let (status, body) = call(
        &strict_socket,
        "POST",
        "/modules/sensor/genid/gen-1/sign",
        Some(sign_body(b"x")),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"message": format!("process {own_pid} is not part of module sensor")})
    );
    assert_eq!(strict.counters().refused, 1);
}

#[tokio::test]
async fn a_listener_serves_ten_requests_at_once_and_refuses_more() {
    let directory = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let mut keys = TestKeys::new(&[("sensor", "gen-1")]);
    keys.gate = Some(gate.clone());
    let api = api(keys, AnyCaller);
    let (_listener, socket) = listen(&api, directory.path(), "sensor").await;

    let mut held = tokio::task::JoinSet::new();
    for _ in 0..MAX_CONCURRENT_REQUESTS {
        let socket = socket.clone();
        held.spawn(async move {
            call(
                &socket,
                "POST",
                "/modules/sensor/genid/gen-1/sign",
                Some(sign_body(b"x")),
            )
            .await
        });
    }
    tokio::time::timeout(PATIENCE, async {
        while *gate.waiting.lock().unwrap() < MAX_CONCURRENT_REQUESTS {
            gate.arrived.notified().await;
        }
    })
    .await
    .expect("all requests arrive");

    let (status, body) = call(&socket, "GET", "/trust-bundle", None).await;
    assert_eq!(
        (status, body),
        (
            503,
            json!({"message": "more than 10 workload requests at once"})
        )
    );
    gate.open.notify_waiters();
    while let Some(answer) = held.join_next().await {
        assert_eq!(answer.unwrap().0, 200);
    }
    let (status, _) = call(&socket, "GET", "/trust-bundle", None).await;
    assert_eq!(status, 200);
}

/// The Python interpreter of the venv `scripts/test` prepares.
fn python() -> PathBuf {
    if let Ok(path) = std::env::var("OUTPOST_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python venv with the Azure IoT SDKs at {}: run `bash scripts/test`, which creates it",
        venv.display()
    );
    venv
}

const PYTHON_MODULE: &str = r#"
import os, sys
from azure.iot.device import IoTHubModuleClient
client = IoTHubModuleClient.create_from_edge_environment()
config = client._mqtt_pipeline.pipeline_configuration
print("TOKEN " + str(config.sastoken))
print("CERT " + config.server_verification_cert.replace("\n", "|"))
print("GATEWAY " + str(config.gateway_hostname))
sys.stdout.flush()
os._exit(0)
"#;

#[tokio::test]
async fn the_python_sdk_creates_a_module_client_from_the_edge_environment() {
    let directory = tempfile::tempdir().unwrap();
    let keys = TestKeys::new(&[("pymodule", "637000000000000042")]);
    let api = api(keys.clone(), AnyCaller);
    let (listener, socket) = listen(&api, directory.path(), "pymodule").await;

    let output = tokio::time::timeout(
        PATIENCE,
        tokio::process::Command::new(python())
            .arg("-c")
            .arg(PYTHON_MODULE)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("IOTEDGE_WORKLOADURI", listener.uri())
            .env("IOTEDGE_DEVICEID", "edge-1")
            .env("IOTEDGE_MODULEID", "pymodule")
            .env("IOTEDGE_MODULEGENERATIONID", "637000000000000042")
            .env("IOTEDGE_IOTHUBHOSTNAME", "hub.example.net")
            .env("IOTEDGE_GATEWAYHOSTNAME", "edge-1.local")
            .env("IOTEDGE_AUTHSCHEME", "sasToken")
            .env("IOTEDGE_APIVERSION", "2020-07-07")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python finishes in time")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {stdout}"))
            .to_owned()
    };

    // The token the SDK built from our digest is valid for the module key and identity.
    let token = SasToken::parse(&field("TOKEN ")).unwrap();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    token.verify(&keys.key("pymodule"), now).unwrap();
    assert_eq!(
        token.scope().resource_uri(),
        "hub.example.net/devices/edge-1/modules/pymodule"
    );
    assert_eq!(field("GATEWAY "), "edge-1.local");
    let counters = api.counters();
    assert_eq!(
        (counters.trust_bundle, counters.sign, counters.refused),
        (1, 1, 0)
    );
    assert_eq!(
        *keys.requests.lock().unwrap(),
        ["pymodule@637000000000000042"]
    );
    // The trust bundle became the certificate the SDK verifies the edge hub with.
    let (_, bundle) = call(&socket, "GET", "/trust-bundle", None).await;
    let served = bundle["certificate"].as_str().unwrap();
    let certificate = field("CERT ").replace('|', "\n");
    assert_eq!(
        tls::certificates_from_pem(certificate.as_bytes(), "sdk").unwrap(),
        tls::certificates_from_pem(served.as_bytes(), "served").unwrap()
    );
}
