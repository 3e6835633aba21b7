"""Scenarios that drive a running Outpost hub with the official Azure IoT Python SDKs, unchanged.

Each scenario is a function run as `python scenarios.py <name> [args...]`. The Rust integration tests in
crates/outpost/tests/ start the real `outpost` binary, then run one scenario and check its JSON output (one
object on the last line of stdout). A scenario raises (non-zero exit) on any failed expectation.

Environment, set by the Rust harness:
- OUTPOST_HUB_CS: the hub owner connection string (HostName is the address the hub listens on).
- OUTPOST_CA_FILE: the hub CA in PEM; REQUESTS_CA_BUNDLE points there too for the service SDK.
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

import paho.mqtt.client as mqtt
from azure.iot.device import X509
from azure.iot.hub.auth import ConnectionStringAuthentication
from msrest.exceptions import HttpOperationError

from azure.iot.device import IoTHubDeviceClient, IoTHubModuleClient, Message, MethodResponse
from azure.iot.device import exceptions as device_errors
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import CloudToDeviceMethod, QuerySpecification, Twin, TwinProperties

HUB_CS = os.environ["OUTPOST_HUB_CS"]
CA_PEM = open(os.environ["OUTPOST_CA_FILE"]).read()
HOST = dict(p.split("=", 1) for p in HUB_CS.split(";"))["HostName"]
WAIT = 20.0


def registry():
    return IoTHubRegistryManager.from_connection_string(HUB_CS)


def create_device(rm, device_id, edge=False):
    device = rm.create_device_with_sas(device_id, None, None, "enabled", iot_edge=edge)
    key = device.authentication.symmetric_key.primary_key
    assert key, "hub must generate keys when none are given"
    return device, f"HostName={HOST};DeviceId={device_id};SharedAccessKey={key}"


def device_client(cs, websockets=False, **kwargs):
    return IoTHubDeviceClient.create_from_connection_string(
        cs, server_verification_cert=CA_PEM, websockets=websockets, connection_retry=False, **kwargs
    )


def expect(condition, what):
    if not condition:
        raise AssertionError(what)


def wait_for(event, what):
    if not event.wait(WAIT):
        raise AssertionError(f"timed out waiting for {what}")


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def send_numbered(client, count):
    """Sends `count` JSON messages {"i", "temp"} with properties index and alert (odd: "high temp")."""
    for i in range(int(count)):
        msg = Message(json.dumps({"i": i, "temp": 20 + i % 7}))
        msg.message_id = f"m-{i}"
        msg.correlation_id = "corr 1"
        msg.content_type = "application/json"
        msg.content_encoding = "utf-8"
        msg.custom_properties["index"] = str(i)
        msg.custom_properties["alert"] = "high temp" if i % 2 else "ok&=/%"
        client.send_message(msg)


def telemetry(device_id, count, transport="tls"):
    """Creates a device and sends `count` messages with custom properties; the harness reads them back."""
    rm = registry()
    _, cs = create_device(rm, device_id)
    client = device_client(cs, websockets=(transport == "ws"))
    client.connect()
    send_numbered(client, count)
    client.shutdown()
    return {"sent": int(count), "deviceId": device_id}


def telemetry_existing(device_id, count):
    """The messages of `telemetry`, sent as an existing device (OUTPOST_DEVICE_CS, created by the harness)."""
    client = device_client(os.environ["OUTPOST_DEVICE_CS"])
    client.connect()
    send_numbered(client, count)
    client.shutdown()
    return {"sent": int(count), "deviceId": device_id}


def twin_and_methods(transport="tls"):
    """Desired patch reaches the device; reported patch shows in the service twin; a method round-trips."""
    rm = registry()
    device_id = unique("twin")
    _, cs = create_device(rm, device_id)
    client = device_client(cs, websockets=(transport == "ws"))
    patches = []
    got_patch = threading.Event()

    def on_patch(patch):
        # On connect the SDK fetches the twin and may hand over the whole desired section as a
        # synthetic patch (version 1, no content); wait for the patch the service sent.
        if "fan" in patch:
            patches.append(patch)
            got_patch.set()

    def on_method(request):
        payload = {"echo": request.payload, "name": request.name}
        client.send_method_response(MethodResponse.create_from_method_request(request, 201, payload))

    client.on_twin_desired_properties_patch_received = on_patch
    client.on_method_request_received = on_method
    client.connect()

    twin = rm.get_twin(device_id)
    rm.update_twin(device_id, Twin(properties=TwinProperties(desired={"fan": "on", "cfg": {"freq": 30}})), twin.etag)
    wait_for(got_patch, "desired patch")
    expect(patches[0]["fan"] == "on" and patches[0]["cfg"]["freq"] == 30, f"patch content {patches}")
    expect(isinstance(patches[0]["$version"], int), "desired patch carries $version")

    device_twin = client.get_twin()
    expect(device_twin["desired"]["fan"] == "on", f"device twin {device_twin}")
    client.patch_twin_reported_properties({"firmware": "1.2.3", "conn": {"type": "wifi"}})
    client.patch_twin_reported_properties({"conn": {"type": None, "rssi": -40}})
    service_twin = rm.get_twin(device_id)
    reported = service_twin.properties.reported
    expect(reported["firmware"] == "1.2.3", f"reported {reported}")
    expect(reported["conn"] == {"rssi": -40}, f"null deletes: {reported}")
    expect(reported["$version"] == 3, f"reported version {reported['$version']}")

    result = rm.invoke_device_method(
        device_id, CloudToDeviceMethod(method_name="reboot", payload={"delay": 3}, response_timeout_in_seconds=10)
    )
    expect(result.status == 201, f"method status {result.status}")
    expect(result.payload == {"echo": {"delay": 3}, "name": "reboot"}, f"method payload {result.payload}")
    client.shutdown()
    return {"desiredVersion": patches[0]["$version"], "reportedVersion": reported["$version"], "methodStatus": result.status}


def module():
    """A module identity: telemetry to an output, twin, method."""
    rm = registry()
    device_id = unique("modhost")
    create_device(rm, device_id)
    mod = rm.create_module_with_sas(device_id, "mod1", None, None, None)
    key = mod.authentication.symmetric_key.primary_key
    cs = f"HostName={HOST};DeviceId={device_id};ModuleId=mod1;SharedAccessKey={key}"
    client = IoTHubModuleClient.create_from_connection_string(cs, server_verification_cert=CA_PEM, connection_retry=False)

    def on_method(request):
        client.send_method_response(MethodResponse.create_from_method_request(request, 200, {"module": True}))

    client.on_method_request_received = on_method
    client.connect()
    client.send_message_to_output(Message("hello from module"), "output1")
    client.patch_twin_reported_properties({"state": "ready"})
    twin = rm.get_module_twin(device_id, "mod1")
    expect(twin.properties.reported["state"] == "ready", f"module twin {twin.properties.reported}")
    twin = rm.update_module_twin(device_id, "mod1", Twin(properties=TwinProperties(desired={"x": 1})), twin.etag)
    expect(client.get_twin()["desired"]["x"] == 1, "module desired visible to the module")
    result = rm.invoke_device_module_method(
        device_id, "mod1", CloudToDeviceMethod(method_name="ping", payload=None, response_timeout_in_seconds=10)
    )
    expect(result.status == 200 and result.payload == {"module": True}, f"module method {result}")
    client.shutdown()
    return {"deviceId": device_id, "moduleId": "mod1"}


def connect_error(cs, **kwargs):
    client = device_client(cs, **kwargs)
    try:
        client.connect()
    except Exception as error:  # noqa: BLE001 - the type is the answer
        return type(error).__name__
    finally:
        client.shutdown()
    return None


def refusals():
    """Disabled device, wrong key and expired token are refused; disabling drops a live connection."""
    rm = registry()
    device_id = unique("refuse")
    device, cs = create_device(rm, device_id)
    results = {}
    results["wrongKey"] = connect_error(f"HostName={HOST};DeviceId={device_id};SharedAccessKey=" + "A" * 43 + "=")
    results["unknownDevice"] = connect_error(f"HostName={HOST};DeviceId=nobody;SharedAccessKey=" + "A" * 43 + "=")

    # A live connection is dropped when the device is disabled, and reconnecting is refused.
    client = device_client(cs)
    dropped = threading.Event()
    client.on_connection_state_change = lambda: (not client.connected) and dropped.set()
    client.connect()
    device = rm.get_device(device_id)
    key = device.authentication.symmetric_key
    rm.update_device_with_sas(device_id, device.etag, key.primary_key, key.secondary_key, "disabled")
    wait_for(dropped, "disabled device to be disconnected")
    client.shutdown()
    results["disabled"] = connect_error(cs)

    for name, value in results.items():
        expect(value is not None, f"{name} must be refused")
    return results


def c2d_receive(device_id, count):
    """Connects as an existing device (created by the harness) and prints the C2D messages it receives."""
    cs = os.environ["OUTPOST_DEVICE_CS"]
    client = device_client(cs)
    received = []
    done = threading.Event()

    def on_message(message):
        received.append(
            {
                "body": message.data.decode(),
                "messageId": message.message_id,
                "correlationId": message.correlation_id,
                "properties": message.custom_properties,
            }
        )
        if len(received) >= int(count):
            done.set()

    client.on_message_received = on_message
    client.connect()
    wait_for(done, "c2d messages")
    client.shutdown()
    return {"deviceId": device_id, "received": received}


def query_paging(count):
    """Creates `count` devices and pages through them with query_iot_hub."""
    rm = registry()
    prefix = unique("q")
    for i in range(int(count)):
        create_device(rm, f"{prefix}-{i:03}")
    seen = []
    token = None
    pages = 0
    while True:
        result = rm.query_iot_hub(QuerySpecification(query="SELECT * FROM devices"), token, 7)
        pages += 1
        seen.extend(t.device_id for t in result.items if t.device_id.startswith(prefix))
        token = result.continuation_token
        if not token:
            break
    expect(len(seen) == int(count) and len(set(seen)) == int(count), f"paged {len(seen)} of {count}")
    return {"pages": pages, "seen": len(seen)}


def sas_token(resource_uri, key, expiry):
    """A device SAS token built by hand, exactly as the device SDK spells it."""
    sr = urllib.parse.quote(resource_uri, safe="")
    digest = hmac.new(base64.b64decode(key), f"{sr}\n{expiry}".encode(), hashlib.sha256).digest()
    sig = urllib.parse.quote(base64.b64encode(digest).decode(), safe="")
    return f"SharedAccessSignature sr={sr}&sig={sig}&se={expiry}"


class RawClient:
    """A bare paho MQTT client over TLS, for what the SDK would never send."""

    def __init__(self, device_id, password):
        self.connack = threading.Event()
        self.closed = threading.Event()
        self.rc = None
        self.messages = []
        self.acked = set()
        self.client = mqtt.Client(client_id=device_id, clean_session=False, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(f"{HOST}/{device_id}/?api-version=2021-04-12", password)
        self.client.tls_set_context(ssl.create_default_context(cadata=CA_PEM))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda client, userdata, rc: self.closed.set()
        self.client.on_message = lambda client, userdata, message: self.messages.append(message)
        self.client.on_publish = lambda client, userdata, mid: self.acked.add(mid)

    def _on_connect(self, client, userdata, flags, rc):
        self.rc = rc
        self.connack.set()

    def connect(self):
        self.client.connect(HOST, 8883, keepalive=60)
        self.client.loop_start()
        wait_for(self.connack, "CONNACK")
        return self.rc

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def bad_clients():
    """Expired tokens, foreign topics, oversized and malformed packets, invalid patches and QoS 2 are refused,
    and the hub keeps serving everyone else."""
    rm = registry()
    device_a, cs_a = create_device(rm, unique("bad-a"))
    device_b, _ = create_device(rm, unique("bad-b"))
    key_a = device_a.authentication.symmetric_key.primary_key
    uri_a = f"{HOST}/devices/{device_a.device_id}"
    results = {}

    expired = RawClient(device_a.device_id, sas_token(uri_a, key_a, int(time.time()) - 60))
    results["expiredTokenConnack"] = expired.connect()
    expired.stop()
    expect(results["expiredTokenConnack"] == 5, f"expired token refused with 5, got {results['expiredTokenConnack']}")

    valid = sas_token(uri_a, key_a, int(time.time()) + 3600)

    def closed_after(publish):
        client = RawClient(device_a.device_id, valid)
        expect(client.connect() == 0, "valid token accepted")
        info = publish(client.client)
        closed = client.closed.wait(WAIT)
        acked = info.mid in client.acked
        client.client.loop_stop()
        return closed and not acked

    results["foreignTopicClosed"] = closed_after(
        lambda c: c.publish(f"devices/{device_b.device_id}/messages/events/", b"spoof", qos=1)
    )
    results["oversizedClosed"] = closed_after(
        lambda c: c.publish(f"devices/{device_a.device_id}/messages/events/", b"x" * 300_000, qos=1)
    )
    results["qos2Closed"] = closed_after(
        lambda c: c.publish(f"devices/{device_a.device_id}/messages/events/", b"q2", qos=2)
    )

    client = RawClient(device_a.device_id, valid)
    expect(client.connect() == 0, "valid token accepted")
    client.client.subscribe("$iothub/twin/res/#", qos=1)
    time.sleep(0.2)
    client.client.publish("$iothub/twin/PATCH/properties/reported/?$rid=bad1", b"{not json", qos=1)
    deadline = time.time() + WAIT
    while time.time() < deadline and not any("rid=bad1" in m.topic for m in client.messages):
        time.sleep(0.05)
    replies = [m.topic for m in client.messages if "rid=bad1" in m.topic]
    results["invalidPatchReply"] = replies[0] if replies else None
    client.stop()
    expect(results["invalidPatchReply"] and "/res/400/" in results["invalidPatchReply"], f"400 for bad JSON: {replies}")

    raw = ssl.create_default_context(cadata=CA_PEM).wrap_socket(socket.create_connection((HOST, 8883)), server_hostname=HOST)
    raw.settimeout(WAIT)
    raw.sendall(b"\x10\xff\xff\xff\xff\x7fgarbage")
    try:
        results["malformedClosed"] = raw.recv(16) == b""
    except (ConnectionResetError, ssl.SSLError):
        results["malformedClosed"] = True
    raw.close()

    for name in ["foreignTopicClosed", "oversizedClosed", "qos2Closed", "malformedClosed"]:
        expect(results[name], f"{name}: {results}")

    # Everyone else is still served.
    healthy = device_client(cs_a)
    healthy.connect()
    healthy.send_message(Message("still served"))
    healthy.shutdown()
    results["stillServed"] = True
    return results


def bad_rest():
    """Wrong If-Match, invalid JSON, unknown routes and methods on offline devices get clear 4xx answers."""
    rm = registry()
    device_id = unique("rest")
    create_device(rm, device_id)
    results = {}
    try:
        rm.update_twin(device_id, Twin(tags={"a": 1}), "AAAAAAAAAAk=")
        results["wrongIfMatch"] = None
    except HttpOperationError as error:
        results["wrongIfMatch"] = error.response.status_code
    try:
        rm.invoke_device_method(device_id, CloudToDeviceMethod(method_name="reboot", response_timeout_in_seconds=5))
        results["offlineMethod"] = None
    except HttpOperationError as error:
        results["offlineMethod"] = error.response.status_code
    session = ConnectionStringAuthentication(HUB_CS).signed_session()
    session.verify = os.environ["OUTPOST_CA_FILE"]
    base = f"https://{HOST}"
    response = session.patch(
        f"{base}/twins/{device_id}?api-version=2021-04-12",
        data="{not json",
        headers={"Content-Type": "application/json", "If-Match": "*"},
    )
    results["invalidJson"] = response.status_code
    response = session.get(f"{base}/no/such/route?api-version=2021-04-12")
    results["unknownRoute"] = response.status_code
    results["unknownRouteBody"] = response.text[:200]
    response = session.get(f"{base}/devices/{device_id}?api-version=2021-04-12", headers={"Authorization": "SharedAccessSignature sr=x&sig=y&se=1"})
    results["badToken"] = response.status_code
    expect(results["wrongIfMatch"] == 412, f"412 for a stale etag: {results}")
    expect(results["offlineMethod"] == 404, f"404 for an offline device: {results}")
    expect(results["invalidJson"] == 400, f"400 for invalid JSON: {results}")
    expect(results["unknownRoute"] == 404, f"404 for an unknown route: {results}")
    expect(results["badToken"] == 401, f"401 for a bad token: {results}")
    return results


def x509_device(device_id, cert_file, key_file, thumbprint):
    """A device authenticated by a self-signed X.509 certificate's thumbprint."""
    rm = registry()
    rm.create_device_with_x509(device_id, thumbprint, thumbprint, "enabled")
    client = IoTHubDeviceClient.create_from_x509_certificate(
        x509=X509(cert_file, key_file),
        hostname=HOST,
        device_id=device_id,
        server_verification_cert=CA_PEM,
        connection_retry=False,
    )
    client.connect()
    client.send_message(Message("from an x509 device"))
    client.patch_twin_reported_properties({"auth": "x509"})
    client.shutdown()
    twin = rm.get_twin(device_id)
    expect(twin.properties.reported["auth"] == "x509", f"reported via x509: {twin.properties.reported}")
    return {"deviceId": device_id, "authenticationType": twin.authentication_type}


def x509_ca_device(device_id, cert_file, key_file, outcome):
    """A device registered with certificateAuthority authentication (created by the caller), connecting with a
    certificate signed by an uploaded CA. `outcome` is `accepted` (connect, send, patch reported) or `refused`."""
    client = IoTHubDeviceClient.create_from_x509_certificate(
        x509=X509(cert_file, key_file),
        hostname=HOST,
        device_id=device_id,
        server_verification_cert=CA_PEM,
        connection_retry=False,
    )
    if outcome == "refused":
        try:
            client.connect()
        except Exception as error:  # noqa: BLE001 - the type is the answer
            return {"deviceId": device_id, "refused": type(error).__name__}
        finally:
            client.shutdown()
        raise AssertionError(f"{device_id} must be refused")
    client.connect()
    client.send_message(Message("from an x509 CA device"))
    client.patch_twin_reported_properties({"auth": "x509-ca"})
    client.shutdown()
    twin = registry().get_twin(device_id)
    expect(twin.properties.reported.get("auth") == "x509-ca", f"reported via x509 CA: {twin.properties.reported}")
    return {"deviceId": device_id, "authenticationType": twin.authentication_type}


def main():
    name, args = sys.argv[1], sys.argv[2:]
    result = globals()[name](*args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
