"""What the runner asks of the load process, and what the load process answers, as JSON.

Plain dataclasses crossing a process boundary: the runner writes a `LoadSpec` to a file, the
load process prints one `LoadResult` as a JSON line on stdout.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, TypeVar

Driver = Literal["grpc", "http", "apprise"]
T = TypeVar("T")


@dataclass
class LoadSpec:
    scenario: str
    driver: Driver
    requests: int  # measured requests
    warmup: int  # requests sent first and not measured (connections, token, caches)
    concurrency: int
    max_seconds: float  # the measured phase stops issuing requests after this long, whatever is left
    watch: dict[str, int] = field(default_factory=dict)  # name -> pid whose CPU the phase is charged
    # name -> pid whose CPU is read with all its descendants' (`serve --processes N`: the parent
    # and its children); and "machine" is always read too (/proc/stat: every process on it)
    watch_trees: dict[str, int] = field(default_factory=dict)
    grpc_target: str = ""
    api_key: str = ""
    accounts: list[str] = field(default_factory=list)  # grpc: [dingtalk robot account, wecom app account]
    queued: bool = False  # grpc: the Sends ask for queued delivery (options.delivery)
    idempotency_keys: bool = False  # grpc: every Send carries an idempotency key of its own
    channels: int = 1  # grpc: connections, each its own channel, the Sends spread over them
    sandbox_url: str = ""
    dingtalk_token: str = ""
    wecom_key: str = ""  # apprise: the WeCom bot key
    wecom_app: dict[str, Any] = field(default_factory=dict)  # http: corp_id, corp_secret, agent_id


@dataclass
class LoadResult:
    scenario: str
    requests: int  # measured requests completed (failed ones included)
    concurrency: int
    errors: int
    error_samples: list[str]
    wall_seconds: float
    throughput_rps: float
    latency_ms: dict[str, float]  # p50, p90, p99, max, mean
    cpu_seconds: dict[str, float]  # "client" (the load process itself), "machine", every watched pid
    truncated: bool  # the time bound stopped the phase before `requests` were sent


def dump(value: LoadSpec | LoadResult) -> str:
    return json.dumps(asdict(value), ensure_ascii=False)


def load(cls: type[T], text: str) -> T:
    data = json.loads(text)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})
