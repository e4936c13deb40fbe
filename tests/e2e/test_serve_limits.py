"""A served instance over real sockets: slow clients are cut off, chunked bodies are held to
the size limits, the first start says how to make an administrator; ``scripts/run``
installs only when needed; ``prepaid demo`` keeps to its own database and stops whole."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.e2e.test_serve import PREPAID, ROOT, STARTUP_TIMEOUT_S, create_admin, \
    environment, free_port


class Output:
    """A process's output, read as it comes (a full pipe would stall the process)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process) -> None:
        for line in process.stdout:
            self.lines.append(line.decode(errors="replace"))

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while text not in self.text:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True


@contextmanager
def served(env: dict[str, str], cwd: Path):
    port = free_port()
    process = subprocess.Popen([*PREPAID, "serve", "--port", str(port)], cwd=cwd,
                               env=environment(env), start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = Output(process)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"prepaid serve did not start:\n{output.text}")
        time.sleep(0.2)
    try:
        yield port, process, output
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(10)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closes the connection within ``seconds``; what it sent."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except socket.timeout:
        return False, received
    except ConnectionResetError:
        pass
    return True, received


def test_slow_request_headers_and_bodies_are_cut_off(tmp_path):
    env = {"PREPAID_REQUEST_HEADER_TIMEOUT_S": "1", "PREPAID_REQUEST_BODY_TIMEOUT_S": "2"}
    with served(env, tmp_path) as (port, _, _):
        # Nothing at all after connecting.
        idle = connect(port)
        started = time.monotonic()
        closed, _ = closed_within(idle, 4)
        assert closed and time.monotonic() - started < 3

        # Headers a byte at a time, slower than the deadline allows.
        slow = connect(port)
        started = time.monotonic()
        request = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"a" * 100
        answer = b""
        try:
            for byte in request:
                slow.sendall(bytes([byte]))
                time.sleep(0.1)
                if time.monotonic() - started > 6:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed, answer = closed_within(slow, 1)
        assert closed, "a connection sending its headers a byte at a time stayed open"
        assert time.monotonic() - started < 4
        assert answer.startswith(b"HTTP/1.1 408")

        # Headers complete, the body never finishes.
        body = connect(port)
        body.sendall(b"POST /api/v1/auth/token HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 100\r\n\r\nusername=")
        started = time.monotonic()
        closed, answer = closed_within(body, 5)
        assert closed and time.monotonic() - started < 4
        assert answer.startswith(b"HTTP/1.1 408")

        # A prompt client is served as before, on a kept-alive connection too.
        prompt = connect(port)
        for _ in range(2):
            prompt.sendall(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = b""
            while b'{"status":"ok"}' not in answer:
                answer += prompt.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(1.5)  # longer than the header deadline, between requests
        prompt.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def send_chunked(port: int, path: str, total: int, chunk: int = 64 * 1024) -> bytes:
    """POST ``total`` bytes as a chunked body; the answer the server gives (it may answer
    and close before everything is sent)."""
    sock = connect(port)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: localhost\r\n"
                 f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                 .encode())
    received = bytearray()

    def read() -> None:
        try:
            while data := sock.recv(65536):
                received.extend(data)
        except OSError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    piece = f"{chunk:x}\r\n".encode() + b"[" * chunk + b"\r\n"
    try:
        for _ in range(total // chunk):
            sock.sendall(piece)
        sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    reader.join(timeout=10)
    sock.close()
    return bytes(received)


def test_chunked_bodies_are_held_to_the_limits_as_they_stream_in(tmp_path):
    env = {"PREPAID_MAX_BULK_BODY_BYTES": str(1024 * 1024)}
    with served(env, tmp_path) as (port, process, _):
        httpx.post(f"http://127.0.0.1:{port}/api/v1/accounts", json={"name": "warm"})
        before = rss_kib(process.pid)
        answer = send_chunked(port, "/api/v1/accounts", 40 * 1024 * 1024)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"application/problem+json" in answer and b"body-too-large" in answer
        assert b"connection: close" in answer.lower()
        after = rss_kib(process.pid)
        assert after - before < 5 * 1024, f"RSS went from {before} KiB to {after} KiB"

        bulk = send_chunked(port, "/api/v1/readings", 5 * 1024 * 1024)
        assert bulk.startswith(b"HTTP/1.1 413"), bulk[:200]
        assert b"1048576 bytes" in bulk
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200


def test_first_start_without_an_administrator_says_how_to_make_one(tmp_path):
    with served({}, tmp_path) as (_, _, output):
        assert output.wait_for("admin create --username", 10), output.text
        assert "prepaid admin create --username admin" in output.text
    with served({"PREPAID_COMMAND": "scripts/run"}, tmp_path) as (_, _, output):
        assert output.wait_for("scripts/run admin create --username admin", 10), output.text
    create_admin({}, tmp_path)
    with served({}, tmp_path) as (_, _, output):
        assert output.wait_for("serving on", 10)
        time.sleep(0.5)
        assert "admin create" not in output.text


def test_scripts_run_installs_only_when_pyproject_changes(tmp_path):
    """A stand-in virtualenv records every ``python`` call: pip runs on the first call and
    after pyproject.toml changes, not on the calls between."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "run", tmp_path / "scripts" / "run")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "calls"
    (bin_dir / "python").write_text(f'#!/bin/sh\necho "python $*" >> {log}\n')
    (bin_dir / "prepaid").write_text(
        f'#!/bin/sh\necho "prepaid $* ($PREPAID_COMMAND)" >> {log}\n')
    for script in bin_dir.iterdir():
        script.chmod(0o755)

    def run() -> list[str]:
        log.unlink(missing_ok=True)
        done = subprocess.run(["bash", str(tmp_path / "scripts" / "run"), "--help"],
                              env=environment({}), capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return log.read_text().splitlines()

    first = run()
    assert any("pip install" in call for call in first)
    second = run()
    assert not any("pip" in call for call in second), second
    assert second == ["prepaid --help (scripts/run)"]
    with open(tmp_path / "pyproject.toml", "a") as handle:
        handle.write("\n# changed\n")
    assert any("pip install" in call for call in run())


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(100):
        base = random.randint(20000, 60000)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                socks.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise AssertionError("no free ports")


def bindable(port: int) -> bool:
    """Whether a server could listen on ``port`` again, as a restarted demo would: with
    SO_REUSEADDR, so connections the demo closed last (in TIME_WAIT) do not count."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start_demo(cwd: Path, base: int) -> tuple[subprocess.Popen, Output]:
    process = subprocess.Popen(
        [*PREPAID, "demo", "--port", str(base), "--control-port", str(base + 1),
         "--port-base", str(base + 2)], cwd=cwd,
        env=environment({"PREPAID_DTU_LISTEN": f"127.0.0.1:{base + 9}"}),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return process, Output(process)


def test_demo_has_its_own_database_and_sigterm_stops_everything(tmp_path):
    base = free_ports(10)  # API, control, 5 Modbus, 2 serial gateways and the DTU port
    process, output = start_demo(tmp_path, base)
    try:
        assert output.wait_for("Demo mall ready", 90), output.text
        assert "demo database: sqlite:///./var/demo.db" in output.text
        assert (tmp_path / "var" / "demo.db").exists()
        assert not (tmp_path / "var" / "prepaid.db").exists()
        assert httpx.get(f"http://127.0.0.1:{base}/health").status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while not all(bindable(port) for port in range(base, base + 10)):
            assert time.monotonic() < deadline, "the demo left its ports bound"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()


def test_demo_that_cannot_bind_its_ports_says_so_and_exits_non_zero(tmp_path):
    base = free_ports(10)  # API, control, 5 Modbus, 2 serial gateways and the DTU port
    taken = socket.socket()
    taken.bind(("127.0.0.1", base + 1))  # the simulator's control port
    taken.listen()
    try:
        process, output = start_demo(tmp_path, base)
        assert process.wait(timeout=60) != 0
        output._thread.join(timeout=5)
        assert f"{base + 1}" in output.text and "in use" in output.text
        assert "Demo mall ready" not in output.text
        assert all(bindable(port) for port in (base, base + 2))
    finally:
        taken.close()
