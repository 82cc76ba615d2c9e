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

from bench.spec import LoadResult, LoadSpec, dump, load

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS_DIR: Final = REPO_ROOT / "bench" / "results"
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


def tree_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` of a process and of all its living descendants (`serve --processes N`: the
    parent supervises, the children serve). A child that died is not counted; the bench checks
    that none did."""
    return sum(_cpu_or_zero(p) for p in [*descendants(pid), pid])


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def descendants(pid: int) -> list[int]:
    """Every living descendant of `pid`, from each process's parent id in /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def machine_cpu_seconds() -> float:
    """CPU seconds every core of the machine has been busy so far, whoever kept it busy.

    From the first line of /proc/stat: all the time counted there but idle and iowait. Beside the
    bench's own processes it tells whether the machine (shared: other people's tests run on it)
    was the limit of a phase, which per-process readings cannot.
    """
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]
    return busy / _CLOCK_TICKS


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


def start_sandbox(stack: contextlib.ExitStack, spec_path: Path, workdir: Path) -> tuple[Child, str]:
    """The vendor sandbox (`bench.sandbox_proc`) with the identities in `spec_path`, stopped with
    `stack`; returns it and its base URL."""
    sandbox = Child(
        "sandbox",
        python_module("bench.sandbox_proc", str(spec_path)),
        log=workdir / "sandbox.log",
        stdin=True,
    )
    stack.callback(sandbox.stop)
    return sandbox, sandbox.expect("READY ")


def start_otlp_sink(stack: contextlib.ExitStack, workdir: Path) -> tuple[Child, str]:
    """The OTLP sink (`bench.otlp_sink`: accepts and discards), stopped with `stack`; returns it and
    its port."""
    sink = Child("OTLP sink", python_module("bench.otlp_sink"), log=workdir / "otlp-sink.log", stdin=True)
    stack.callback(sink.stop)
    return sink, sink.expect("READY ")


def otlp_telemetry(sink_port: str) -> dict[str, str]:
    """A gateway's telemetry config for the batch exporter operators run (OTLP over gRPC, the
    config's default protocol), to the sink: every span is serialised and shipped as in production."""
    return {"exporter": "otlp", "protocol": "grpc", "endpoint": f"http://127.0.0.1:{sink_port}"}


def run_load(spec: LoadSpec, workdir: Path, prefix: tuple[str, ...] = ()) -> LoadResult:
    """One load process for one scenario; bounded by the spec's time bound plus start-up slack.
    `prefix` runs it under another program (valgrind, for bench.instructions)."""
    path = workdir / f"load-{spec.driver}-{len(list(workdir.glob('load-*')))}.json"
    path.write_text(dump(spec))
    completed = subprocess.run(
        [*prefix, *python_module("bench.load", str(path))],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=spec.max_seconds + 60 + 30,  # measured phase + warm-up bound + start-up
        check=False,
    )
    if completed.returncode != 0 or not completed.stdout.strip():
        raise RuntimeError(
            f"load process for {spec.scenario!r} failed ({completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    return load(LoadResult, completed.stdout.strip().splitlines()[-1])
