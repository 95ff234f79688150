"""The health crate's gRPC health service against Python's grpcio-health-checking.

Run by `cargo xtask grpc-health`: python3 grpc_health_client.py EXAMPLE_BINARY SERVICE_BINARY

First starts the example server (crates/health/examples/grpc_health_server.rs) on a free port,
drives it with grpc_health.v1's own stub (Check, List, Watch), fails and recovers its components
through the example's stdin, and shuts it down with open Watch calls. Then does the same with
the real accountservice binary on its management port (h2c, next to HTTP/1.1 on that port):
its names, a switch forced unhealthy and back and the database failed and back through the
testability routes (asked over HTTP/1.1 on the same port), and SIGTERM with Watch calls open.
Every wait has a deadline; the first failed expectation exits 1 with one line saying what
differed.
"""

import importlib.metadata
import json
import os
import queue
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
NAMES = ["", "liveness", "readiness", "database", "worker", "cache"]
# Each step's deadline: generous against a loaded machine; a pass takes milliseconds.
STEP = 10.0


class Failed(Exception):
    """An expectation that did not hold."""


def status_name(status):
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def show(name):
    return repr(name) if name == "" else name


class Example:
    """The example server process, its address, and its command channel (stdin/stdout)."""

    def __init__(self, binary):
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--interval-ms", "100"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        line = self.read_line()
        if not line.startswith("listening on "):
            raise Failed(f"example printed {line!r}, expected 'listening on ADDR'")
        self.addr = line.removeprefix("listening on ")

    def read_line(self):
        deadline = time.monotonic() + STEP
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if line == "":
                    raise Failed("example closed its stdout")
                return line.strip()
        raise Failed(f"example printed nothing within {STEP}s")

    def command(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        answer = self.read_line()
        if answer != f"ok {text}":
            raise Failed(f"example answered {answer!r} to {text!r}")
        print(f"  example: {text}")

    def stop(self):
        """Closes stdin (the example's shutdown signal); returns its exit code and last line."""
        self.proc.stdin.close()
        last = self.read_line()
        try:
            code = self.proc.wait(timeout=STEP)
        except subprocess.TimeoutExpired:
            raise Failed(f"example did not exit within {STEP}s of shutdown")
        return code, last

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Watch:
    """A Watch call read by a thread into a queue, so each expectation has a deadline."""

    def __init__(self, stub, name):
        self.name = name
        self.call = stub.Watch(health_pb2.HealthCheckRequest(service=name), timeout=120)
        self.messages = queue.Queue()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        try:
            for response in self.call:
                self.messages.put(("message", response.status))
            self.messages.put(("end", grpc.StatusCode.OK))
        except grpc.RpcError as e:
            self.messages.put(("end", e.code()))

    def next(self):
        try:
            return self.messages.get(timeout=STEP)
        except queue.Empty:
            raise Failed(f"Watch({show(self.name)}) sent nothing within {STEP}s")

    def expect(self, status):
        kind, value = self.next()
        if kind != "message" or value != status:
            got = status_name(value) if kind == "message" else f"end of call ({value})"
            raise Failed(f"Watch({show(self.name)}) sent {got}, expected {status_name(status)}")
        print(f"  Watch({show(self.name)}) -> {status_name(status)}")

    def expect_end(self, code):
        kind, value = self.next()
        if kind != "end" or value != code:
            got = status_name(value) if kind == "message" else f"end of call ({value})"
            raise Failed(f"Watch({show(self.name)}) sent {got}, expected the call to end with {code}")
        print(f"  Watch({show(self.name)}) ended with {code.name}")


def check(stub, name):
    return stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=STEP).status


def expect_checks(stub, expected):
    for name, status in expected.items():
        got = check(stub, name)
        if got != status:
            raise Failed(f"Check({show(name)}) = {status_name(got)}, expected {status_name(status)}")
    print("  Check: " + ", ".join(f"{show(n)} {status_name(s)}" for n, s in expected.items()))


def expect_not_found(stub, name):
    """Check(name) must fail with NOT_FOUND (a name the server does not know)."""
    try:
        check(stub, name)
        raise Failed(f"Check({name!r}) answered, expected NOT_FOUND")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            raise Failed(f"Check({name!r}) failed with {e.code()}, expected NOT_FOUND")
        print(f"  Check({name!r}) -> {e.code().name}: {e.details()}")


def expect_list(stub, expected):
    got = stub.List(health_pb2.HealthListRequest(), timeout=STEP)
    statuses = {name: response.status for name, response in got.statuses.items()}
    if statuses != expected:
        shown = {n: status_name(s) for n, s in statuses.items()}
        raise Failed(f"List = {shown}, expected {({n: status_name(s) for n, s in expected.items()})}")
    print("  List: " + ", ".join(f"{show(n)} {status_name(s)}" for n, s in sorted(statuses.items())))


def scenario(example):
    channel = grpc.insecure_channel(example.addr)
    grpc.channel_ready_future(channel).result(timeout=STEP)
    stub = health_pb2_grpc.HealthStub(channel)
    print(f"connected to {example.addr}; the stub has List: {hasattr(stub, 'List')}")
    if not hasattr(stub, "List"):
        raise Failed("this grpcio-health-checking has no List: pin one that has it")

    all_serving = {name: SERVING for name in NAMES}
    print("every name serving:")
    expect_checks(stub, all_serving)
    expect_list(stub, all_serving)

    print("an unknown name:")
    expect_not_found(stub, "no-such-component")
    unknown = Watch(stub, "no-such-component")
    unknown.expect(SERVICE_UNKNOWN)

    print("the database fails and recovers, seen by Watch as it happens:")
    database = Watch(stub, "database")
    overall = Watch(stub, "")
    database.expect(SERVING)
    overall.expect(SERVING)
    example.command("fail database")
    database.expect(NOT_SERVING)
    overall.expect(NOT_SERVING)
    down = dict(all_serving, **{"": NOT_SERVING, "readiness": NOT_SERVING, "database": NOT_SERVING})
    expect_checks(stub, down)
    expect_list(stub, down)
    example.command("recover database")
    database.expect(SERVING)
    overall.expect(SERVING)
    expect_checks(stub, all_serving)

    print("the worker fails: liveness too:")
    example.command("fail worker")
    overall.expect(NOT_SERVING)
    expect_checks(stub, dict(all_serving, **{"": NOT_SERVING, "liveness": NOT_SERVING,
                                             "readiness": NOT_SERVING, "worker": NOT_SERVING}))
    example.command("recover worker")
    overall.expect(SERVING)

    print("the cache (not critical) fails: only its own name stops serving:")
    cache = Watch(stub, "cache")
    cache.expect(SERVING)
    example.command("fail cache")
    cache.expect(NOT_SERVING)
    expect_checks(stub, dict(all_serving, cache=NOT_SERVING))
    example.command("recover cache")
    cache.expect(SERVING)
    expect_checks(stub, all_serving)

    print("shutdown with Watch calls open:")
    code, last = example.stop()
    database.expect(NOT_SERVING)
    database.expect_end(grpc.StatusCode.UNAVAILABLE)
    overall.expect(NOT_SERVING)
    overall.expect_end(grpc.StatusCode.UNAVAILABLE)
    unknown.expect_end(grpc.StatusCode.UNAVAILABLE)
    cache.expect(NOT_SERVING)
    cache.expect_end(grpc.StatusCode.UNAVAILABLE)
    if (code, last) != (0, "stopped"):
        raise Failed(f"example exited {code} after {last!r}, expected 0 after 'stopped'")
    print("  example exited 0")
    channel.close()


class Service:
    """The accountservice binary with a management port and the testability switches on; its
    JSON log read by a thread, so the pipe never fills and each wait has a deadline."""

    def __init__(self, binary, directory):
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", "0", "--management-port", "0",
             "--testability", "--db-path", os.path.join(directory, "accounts.db"),
             "--seed-accounts", "100", "--log-format", "json"],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self.read, daemon=True).start()
        self.management = None
        self.public = None
        # The management port is announced first; "listening on" comes once the service is up.
        while self.public is None:
            message, fields = self.next_line()
            if message.startswith("management endpoints"):
                self.management = fields["address"]
            elif message.startswith("listening on"):
                self.public = fields["address"]
        if self.management is None:
            raise Failed("accountservice never announced its management port")

    def read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self):
        try:
            line = self.lines.get(timeout=STEP)
        except queue.Empty:
            raise Failed(f"accountservice logged nothing within {STEP}s")
        if line is None:
            raise Failed(f"accountservice exited ({self.proc.wait()}) before it was ready")
        try:
            fields = json.loads(line)
        except json.JSONDecodeError:
            return line.strip(), {}
        return fields.get("message", ""), fields

    def http(self, path):
        """GET path on the management port over HTTP/1.1: the status and the body."""
        url = f"http://{self.management}{path}"
        try:
            with urllib.request.urlopen(url, timeout=STEP) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def switch(self, path, expected):
        status, body = self.http(path)
        if (status, json.loads(body)) != (200, expected):
            raise Failed(f"GET {path} answered {status} {body}, expected 200 {json.dumps(expected)}")
        print(f"  HTTP/1.1 GET {path} -> {status} {body}")

    def stop(self):
        """SIGTERM; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STEP)
        except subprocess.TimeoutExpired:
            raise Failed(f"accountservice did not exit within {STEP}s of SIGTERM")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def service_scenario(service):
    channel = grpc.insecure_channel(service.management)
    grpc.channel_ready_future(channel).result(timeout=STEP)
    stub = health_pb2_grpc.HealthStub(channel)
    print(f"accountservice: public port {service.public} (HTTP/1.1 only), "
          f"management port {service.management} (HTTP/1.1 and gRPC)")

    names = ["", "liveness", "readiness", "database"]
    all_serving = {name: SERVING for name in names}
    print("every name serving, and HTTP/1.1 on the same port:")
    expect_checks(stub, all_serving)
    expect_list(stub, all_serving)
    status, body = service.http("/health/ready")
    if status != 200:
        raise Failed(f"GET /health/ready answered {status} {body}, expected 200")
    print(f"  HTTP/1.1 GET /health/ready -> {status} {body}")

    print("an unknown name:")
    expect_not_found(stub, "no-such-component")

    print("forced unhealthy and back (the testability switch), seen by Watch as it happens:")
    overall = Watch(stub, "")
    liveness = Watch(stub, "liveness")
    overall.expect(SERVING)
    liveness.expect(SERVING)
    service.switch("/testability/healthy/false", {"healthy": False})
    overall.expect(NOT_SERVING)
    liveness.expect(NOT_SERVING)
    expect_checks(stub, dict({name: NOT_SERVING for name in names}, database=SERVING,
                             testability=NOT_SERVING))
    service.switch("/testability/healthy/true", {"healthy": True})
    overall.expect(SERVING)
    liveness.expect(SERVING)
    expect_checks(stub, all_serving)

    print("the database fails and recovers (its real check, within one health interval):")
    database = Watch(stub, "database")
    database.expect(SERVING)
    service.switch("/testability/database/down", {"database": "down"})
    database.expect(NOT_SERVING)
    overall.expect(NOT_SERVING)
    # The embedded database is the replica's own: a restart can cure it, so liveness fails too.
    liveness.expect(NOT_SERVING)
    expect_checks(stub, dict(all_serving, **{"": NOT_SERVING, "liveness": NOT_SERVING,
                                             "readiness": NOT_SERVING, "database": NOT_SERVING}))
    service.switch("/testability/database/up", {"database": "up"})
    database.expect(SERVING)
    overall.expect(SERVING)
    liveness.expect(SERVING)
    expect_checks(stub, all_serving)

    print("SIGTERM with Watch calls open:")
    code = service.stop()
    overall.expect(NOT_SERVING)
    overall.expect_end(grpc.StatusCode.UNAVAILABLE)
    liveness.expect(NOT_SERVING)
    liveness.expect_end(grpc.StatusCode.UNAVAILABLE)
    database.expect(NOT_SERVING)
    database.expect_end(grpc.StatusCode.UNAVAILABLE)
    if code != 0:
        raise Failed(f"accountservice exited {code} after SIGTERM, expected 0")
    print("  accountservice exited 0")
    channel.close()


def main():
    if len(sys.argv) != 3:
        print("usage: grpc_health_client.py EXAMPLE_BINARY SERVICE_BINARY", file=sys.stderr)
        return 2
    versions = {p: importlib.metadata.version(p) for p in ("grpcio", "grpcio-health-checking", "protobuf")}
    print("client: " + ", ".join(f"{p} {v}" for p, v in versions.items()) + f", Python {sys.version.split()[0]}")
    try:
        example = Example(sys.argv[1])
        try:
            scenario(example)
        finally:
            example.kill()
        with tempfile.TemporaryDirectory() as directory:
            service = Service(sys.argv[2], directory)
            try:
                service_scenario(service)
            finally:
                service.kill()
    except Failed as e:
        print(f"grpc-health: FAILED: {e}", file=sys.stderr)
        return 1
    print("grpc-health: every expectation held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
