"""Child processes of the bench: start, wait for readiness, talk to by lines, stop; CPU from /proc.

Each measured party runs in a process of its own so that `cpu_seconds(pid)` (utime + stime from
the kernel, all threads included) charges it with its own work only.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
# Loopback only: a proxy variable in the environment must never route bench traffic elsewhere
# (requests, aiohttp with trust_env and gRPC core all honour them).
_PROXY_VARIABLES: Final = ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (all its threads, living or gone).

    The kernel counts in clock ticks (10 ms at the usual 100 Hz), which is why every scenario
    sends a few thousand messages: the reading then has a resolution of about 1%.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (man 5 proc).
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def free_port() -> int:
    """A loopback port that was free a moment ago (the child binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """The bench's environment for children: no proxies, loopback exempt, the repo importable."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES}
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Child:
    """A child process whose stdout is read line by line in a thread, so waits can time out."""

    def __init__(self, name: str, args: list[str], *, log: Path, stdin: bool = False) -> None:
        self.name = name
        self.log = log
        self._log_file: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=child_env(),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, name=f"{name}-stdout", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def read_line(self, timeout: float) -> str:
        """The child's next stdout line; RuntimeError (with its log's tail) if it dies or is silent."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise self.failure(f"said nothing for {timeout:.0f} s") from None
        if line is None:
            raise self.failure(f"exited with status {self.process.wait()}")
        return line

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        """Waits for a line starting with `prefix` and returns the rest of it."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.read_line(max(0.1, deadline - time.monotonic()))
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise self.failure(f"exited with status {self.process.returncode}")

    def failure(self, what: str) -> RuntimeError:
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        return RuntimeError(f"{self.name} (pid {self.pid}) {what}; its log ({self.log}) ends:\n{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        self._log_file.close()


def python_module(module: str, *args: str) -> list[str]:
    """The command line that runs `python -m module args` with the bench's interpreter."""
    return [sys.executable, "-m", module, *args]
