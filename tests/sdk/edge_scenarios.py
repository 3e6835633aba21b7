"""The official Azure IoT Python SDK against an Outpost edge hub, unchanged.

`python edge_scenarios.py module` is a module program the edge runtime starts as a process module:
it bootstraps exactly as an Azure IoT Edge module does (`IoTHubModuleClient.create_from_edge_environment()`,
which reads the IOTEDGE_* environment, fetches the trust bundle and signs its tokens through the workload
socket) and then:
- on input `input1`, forwards messages whose JSON body has temp >= 24 to output `output1` (property filtered=yes);
- answers the direct method `ping` with {"pong": <payload>, "module": <its id>};
- reports {"started": true} and reports every desired patch back as {"seen": <desired value of "threshold">};
- if CALL_MODULE is set, invokes `ping` on that module through the edge hub (module-to-module method);
- writes its state (forwarded count, last method result, errors) to $STATE_DIR/<module>.json after each event.

The other scenarios print one JSON object on their last line:
- `leaf_send CS COUNT START`: a leaf device (connection string with GatewayHostName) sends COUNT messages
  {"i", "temp"} (temp = 20 + i % 8) and prints {"sent": COUNT}; EDGE_CA_FILE is the edge CA.
- `leaf_x509_send DEVICE HUB GATEWAY CERT KEY COUNT START`: the same as a leaf authenticated by a
  self-signed X.509 certificate (thumbprint registered in the hub).
- `leaf_refused CS`: the leaf is refused; prints {"refused": true}.
- `leaf_twin CS`: patches reported {"leaf": "patched"} and gets its twin; prints the twin.
- `leaf_c2d CS COUNT`: waits for COUNT cloud-to-device messages; prints {"received": [{body, properties}]}.
- `leaf_c2d_no_ack CS`: a hand-made MQTT client (the SDK always acknowledges) connects as the leaf with a clean
  session, takes one cloud-to-device message and closes the connection without PUBACK; prints {"body": ...}.
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse

from azure.iot.device import IoTHubDeviceClient, IoTHubModuleClient, Message, MethodResponse
from azure.iot.device import exceptions as device_errors


def leaf_client(cs):
    return IoTHubDeviceClient.create_from_connection_string(
        cs, server_verification_cert=open(os.environ["EDGE_CA_FILE"]).read(), connection_retry=False
    )


def leaf_send(cs, count, start):
    client = leaf_client(cs)
    client.connect()
    for i in range(int(start), int(start) + int(count)):
        message = Message(json.dumps({"i": i, "temp": 20 + i % 8}))
        message.content_type = "application/json"
        message.content_encoding = "utf-8"
        message.message_id = f"leaf-{i}"
        message.custom_properties["index"] = str(i)
        client.send_message(message)
    client.shutdown()
    print(json.dumps({"sent": int(count)}))


def leaf_x509_send(device_id, hub, gateway, cert_file, key_file, count, start):
    from azure.iot.device import X509

    client = IoTHubDeviceClient.create_from_x509_certificate(
        x509=X509(cert_file, key_file),
        hostname=hub,
        device_id=device_id,
        gateway_hostname=gateway,
        server_verification_cert=open(os.environ["EDGE_CA_FILE"]).read(),
        connection_retry=False,
    )
    client.connect()
    for i in range(int(start), int(start) + int(count)):
        message = Message(json.dumps({"i": i, "temp": 20 + i % 8}))
        message.content_type = "application/json"
        message.content_encoding = "utf-8"
        message.custom_properties["index"] = str(i)
        client.send_message(message)
    client.shutdown()
    print(json.dumps({"sent": int(count)}))


def leaf_refused(cs):
    client = leaf_client(cs)
    try:
        client.connect()
    except (device_errors.CredentialError, device_errors.ConnectionFailedError, device_errors.ClientError) as error:
        print(json.dumps({"refused": True, "error": type(error).__name__}))
        return
    client.shutdown()
    raise AssertionError("a device outside the edge device's scope was accepted")


def leaf_c2d(cs, count):
    client = leaf_client(cs)
    received = []
    done = threading.Event()

    def on_message(message):
        received.append({"body": message.data.decode(), "properties": dict(message.custom_properties)})
        if len(received) >= int(count):
            done.set()

    client.on_message_received = on_message
    client.connect()
    if not done.wait(30):
        raise AssertionError(f"received {len(received)} of {count} cloud-to-device messages")
    client.shutdown()
    print(json.dumps({"received": received}))


def mqtt_string(text):
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def mqtt_packet(first_byte, body):
    length, encoded = len(body), b""
    while True:
        digit, length = length % 128, length // 128
        encoded += bytes([digit | (0x80 if length else 0)])
        if not length:
            return bytes([first_byte]) + encoded + body


def read_exactly(stream, count):
    data = b""
    while len(data) < count:
        chunk = stream.recv(count - len(data))
        if not chunk:
            raise AssertionError("the edge hub closed the connection")
        data += chunk
    return data


def read_packet(stream):
    first = read_exactly(stream, 1)[0]
    length, shift = 0, 0
    while True:
        digit = read_exactly(stream, 1)[0]
        length |= (digit & 0x7F) << shift
        shift += 7
        if not digit & 0x80:
            return first, read_exactly(stream, length)


def leaf_c2d_no_ack(cs):
    parts = dict(part.split("=", 1) for part in cs.split(";"))
    hub, device, gateway = parts["HostName"], parts["DeviceId"], parts["GatewayHostName"]
    resource = urllib.parse.quote(f"{hub}/devices/{device}", safe="")
    expiry = int(time.time()) + 3600
    signature = hmac.new(
        base64.b64decode(parts["SharedAccessKey"]), f"{resource}\n{expiry}".encode(), hashlib.sha256
    ).digest()
    token = (
        f"SharedAccessSignature sr={resource}"
        f"&sig={urllib.parse.quote(base64.b64encode(signature), safe='')}&se={expiry}"
    )
    context = ssl.create_default_context(cafile=os.environ["EDGE_CA_FILE"])
    stream = context.wrap_socket(socket.create_connection((gateway, 8883), timeout=30), server_hostname=gateway)
    # CONNECT: MQTT 3.1.1, user name + password + clean session, keep-alive 60 s.
    connect = mqtt_string("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 60)
    connect += mqtt_string(device) + mqtt_string(f"{hub}/{device}/?api-version=2021-04-12") + mqtt_string(token)
    stream.sendall(mqtt_packet(0x10, connect))
    kind, body = read_packet(stream)
    if kind != 0x20 or body[1] != 0:
        raise AssertionError(f"CONNACK {kind:#x} {body!r}")
    subscribe = struct.pack(">H", 1) + mqtt_string(f"devices/{device}/messages/devicebound/#") + bytes([1])
    stream.sendall(mqtt_packet(0x82, subscribe))
    while True:
        kind, body = read_packet(stream)
        if kind >> 4 == 3:
            topic_length = struct.unpack(">H", body[:2])[0]
            payload = body[2 + topic_length + (2 if kind & 0x06 else 0):]
            break
    # Gone without PUBACK: the message must not count as delivered.
    stream.close()
    print(json.dumps({"body": payload.decode()}))


def leaf_twin(cs):
    client = leaf_client(cs)
    client.connect()
    client.patch_twin_reported_properties({"leaf": "patched"})
    twin = client.get_twin()
    client.shutdown()
    print(json.dumps(twin))


def module():
    """Runs the module; any failure of its main thread ends the process at once (no interpreter
    shutdown with the SDK's threads still acknowledging messages that nothing handles)."""
    try:
        run_module()
    except BaseException as error:  # noqa: BLE001
        import traceback

        sys.stderr.write(f"module main thread failed: {error!r}\n{traceback.format_exc()}")
        sys.stderr.flush()
        os._exit(1)


def run_module():
    module_id = os.environ["IOTEDGE_MODULEID"]
    state_file = os.path.join(os.environ["STATE_DIR"], f"{module_id}.json")
    state = {
        "forwarded": 0,
        "forwarded_indexes": [],
        "received": 0,
        "desired_seen": [],
        "errors": [],
        "method_result": None,
    }
    lock = threading.Lock()
    error_log = os.path.join(os.environ["STATE_DIR"], f"{module_id}.errors")

    def record_error(text):
        import traceback

        with lock:
            state["errors"].append(text)
        with open(error_log, "a") as out:
            out.write(f"{os.getpid()} {time.time():.3f} {text}\n{traceback.format_exc()}\n")

    def save():
        # Called from the handler threads and the main thread: one writer at a time, each with
        # its own temporary file.
        with lock:
            temporary = f"{state_file}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(temporary, "w") as out:
                out.write(json.dumps(state))
            os.replace(temporary, state_file)

    client = IoTHubModuleClient.create_from_edge_environment()
    client.connect()

    def on_message(message):
        try:
            body = json.loads(message.data)
            with lock:
                state["received"] += 1
            if message.input_name == "input1" and body.get("temp", 0) >= 24:
                out = Message(json.dumps(body))
                out.content_type = "application/json"
                out.content_encoding = "utf-8"
                out.custom_properties["filtered"] = "yes"
                out.custom_properties["index"] = message.custom_properties.get("index", "")
                client.send_message_to_output(out, "output1")
                with lock:
                    state["forwarded"] += 1
                    state["forwarded_indexes"].append(body.get("i"))
        except Exception as error:  # noqa: BLE001 - recorded for the test to see
            record_error("on_message: " + repr(error))
            save()
            # The SDK acknowledged this message already: die at once rather than acknowledge
            # more that cannot be handled; the runtime restarts the module.
            os._exit(1)
        save()

    def on_method(request):
        if request.name == "ping":
            response = MethodResponse.create_from_method_request(
                request, 200, {"pong": request.payload, "module": module_id}
            )
        else:
            response = MethodResponse.create_from_method_request(request, 404, {"error": "unknown method"})
        client.send_method_response(response)

    def on_patch(patch):
        client.patch_twin_reported_properties({"seen": patch.get("threshold")})
        with lock:
            state["desired_seen"].append(patch.get("threshold"))
        save()

    client.on_message_received = on_message
    client.on_method_request_received = on_method
    client.on_twin_desired_properties_patch_received = on_patch
    try:
        client.patch_twin_reported_properties({"started": True})
    except Exception as error:  # noqa: BLE001 - a module must not half-die: record and exit at once
        record_error("main: " + repr(error))
        save()
        # Exit without interpreter shutdown, so that no message is acknowledged by a process
        # that can no longer handle it; the runtime restarts the module.
        os._exit(1)
    save()

    target = os.environ.get("CALL_MODULE")
    if target:
        for _ in range(60):
            try:
                result = client.invoke_method(
                    {"methodName": "ping", "payload": {"from": module_id}, "responseTimeoutInSeconds": 10},
                    os.environ["IOTEDGE_DEVICEID"],
                    target,
                )
                with lock:
                    state["method_result"] = result
                save()
                break
            except Exception as error:  # noqa: BLE001 - the target may not be up yet
                with lock:
                    state["errors"].append("invoke: " + repr(error))
                time.sleep(1)
    while True:
        time.sleep(3600)


def main():
    name, args = sys.argv[1], sys.argv[2:]
    scenarios = {
        "module": module,
        "leaf_send": leaf_send,
        "leaf_refused": leaf_refused,
        "leaf_twin": leaf_twin,
        "leaf_c2d": leaf_c2d,
        "leaf_c2d_no_ack": leaf_c2d_no_ack,
        "leaf_x509_send": leaf_x509_send,
    }
    scenarios[name](*args)


if __name__ == "__main__":
    main()
