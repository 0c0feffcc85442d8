"""Keeping vLLM serving: ``sourcebook llm serve`` supervises it, in the foreground or with ``--detach``.

The supervisor starts vLLM, measures its speed (``sourcebook.llm.speed``), then checks it every
``llm_health_interval_s``: a vLLM that has exited, or that fails its ``/health`` check
``llm_health_failures`` times in a row (each within ``llm_health_timeout_s``), is stopped and started
again, after a backoff that doubles with each restart of the last ten minutes (up to
``llm_restart_backoff_max_s``). Its status (state, restarts, the last reason, the measured speed) is
a JSON file under ``<data_dir>/run``, written atomically; ``doctor`` and ``/health/ready`` read it.
SIGTERM (``llm stop``) or Ctrl-C stops vLLM and removes the file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.llm import server as llm_server
from sourcebook.llm.speed import Speed, context_chars, measure
from sourcebook.settings import Settings

log = logging.getLogger(__name__)

RECENT_S = 600.0  # restarts this recent count towards the backoff
Notify = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ServeOptions:
    spec: str
    host: str = "127.0.0.1"
    port: int = 8001
    max_model_len: int = 2048


@dataclass(slots=True)
class Status:
    """The supervisor's record; ``pid`` is the supervisor's (what ``llm stop`` signals)."""

    pid: int
    url: str
    model: str
    log: str
    max_model_len: int
    state: str = "starting"  # starting | measuring (serving; its speed being measured) | ready | restarting
    vllm_pid: int | None = None
    restarts: int = 0
    last_restart: dict[str, str] | None = None
    speed: dict[str, float | int] | None = None
    started_at: str = field(default_factory=lambda: _now())

    def measured(self) -> Speed | None:
        return Speed.of(self.speed)


def backoff_s(restarts: Sequence[float], now: float, *, cap_s: float) -> float:
    """1 s after the first restart of the last ten minutes, doubling with each further one, to ``cap_s``."""
    recent = sum(1 for at in restarts if now - at < RECENT_S)
    return float(min(cap_s, 2.0 ** max(recent - 1, 0)))


def healthy(url: str, timeout_s: float) -> bool:
    try:
        return httpx.get(url.removesuffix("/v1") + "/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def watch(server: llm_server.VllmServer, settings: Settings) -> str:
    """Block while vLLM serves; return why it must be restarted."""
    failures = 0
    while True:
        time.sleep(settings.llm_health_interval_s)
        if not server.running():
            code = server.process.returncode if server.process is not None else None
            return f"vLLM exited (code {code})"
        if healthy(server.url, settings.llm_health_timeout_s):
            failures = 0
            continue
        failures += 1
        if failures >= settings.llm_health_failures:
            return f"vLLM failed its health check {failures} times in a row"


class Supervisor:
    def __init__(self, settings: Settings, options: ServeOptions, *, notify: Notify) -> None:
        self.settings = settings
        self.options = options
        self.path = llm_server.pidfile(settings, options.port)
        self.log_path = settings.data_dir / "logs" / f"vllm-{options.port}.log"
        self._notify = notify
        self._restarts: list[float] = []
        self.status = Status(
            os.getpid(), f"http://{options.host}:{options.port}/v1", "", str(self.log_path), options.max_model_len
        )

    def run(self, *, on_ready: Callable[[Status], None]) -> None:
        """Serve until interrupted (KeyboardInterrupt: Ctrl-C, or SIGTERM turned into it by the CLI).
        The first start's failure is raised; later ones are retried."""
        server = self._start()
        on_ready(self.status)
        try:
            while True:
                reason = watch(server, self.settings)
                # Said before the old server is stopped: while it shuts down it may still answer, and
                # readers must not take that for the restarted one.
                self.status.state, self.status.vllm_pid = "restarting", None
                self._write()
                server.stop()
                server = self._restart(reason)
        finally:
            server.stop()
            self.path.unlink(missing_ok=True)

    def _start(self) -> llm_server.VllmServer:
        self._write()
        options = self.options
        server = llm_server.start(
            self.settings,
            options.spec,
            host=options.host,
            port=options.port,
            max_model_len=options.max_model_len,
            log_path=self.log_path,
        )
        self.status.model, self.status.vllm_pid, self.status.state = server.model, server.pid, "measuring"
        self._write()
        try:
            self.status.speed = measure(server.url, server.model).as_dict()
        except SourcebookError as exc:
            log.warning("could not measure the model server's speed", extra={"error": exc.message})
            self.status.speed = None
        self.status.state = "ready"
        self._write()
        return server

    def _restart(self, reason: str) -> llm_server.VllmServer:
        while True:
            self._restarts.append(time.monotonic())
            self.status.restarts += 1
            self.status.last_restart = {"at": _now(), "reason": reason}
            wait = backoff_s(self._restarts, time.monotonic(), cap_s=self.settings.llm_restart_backoff_max_s)
            log.warning("restarting vLLM", extra={"reason": reason, "restarts": self.status.restarts, "wait_s": wait})
            self._notify(f"{reason}: restarting in {wait:g} s (restart {self.status.restarts})")
            self._write()
            time.sleep(wait)
            try:
                return self._start()
            except SourcebookError as exc:
                reason = f"restart failed: {exc.message.splitlines()[0]}"

    def _write(self) -> None:
        write_status(self.path, self.status)


def write_status(path: Path, status: Status) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(asdict(status)))
    partial.replace(path)


def read_status(path: Path) -> Status | None:
    """The status of a live supervisor (None for a missing file, a stale one or an old pidfile)."""
    try:
        data = json.loads(path.read_text())
        status = Status(**data)
    except (OSError, ValueError, TypeError):
        return None
    try:
        os.kill(status.pid, 0)
    except OSError:
        return None
    return status


def status_for(settings: Settings, url: str) -> Status | None:
    """The supervisor status of the server at ``url``, when one on this machine supervises it."""
    want = _address(url)
    for path in sorted((settings.data_dir / "run").glob("vllm-*.json")):
        status = read_status(path)
        if status is not None and _address(status.url) == want:
            return status
    return None


def measured_context_chars(settings: Settings) -> int:
    """The answer's context budget from the speed measured for the first answer endpoint (when this
    machine supervises it; else the setting or the fixed fallback)."""
    urls = settings.llm_answer_urls
    status = status_for(settings, urls[0]) if urls else None
    if status is None:
        return context_chars(None, settings)
    return context_chars(status.measured(), settings, max_model_len=status.max_model_len)


def describe_supervision(status: Status) -> str:
    text = f"supervised ({status.state}), restarted {status.restarts} time{'s' if status.restarts != 1 else ''}"
    if status.last_restart:
        text += f", last at {status.last_restart['at']}: {status.last_restart['reason']}"
    return text


def detach(settings: Settings, options: ServeOptions, *, timeout_s: float = 900.0) -> Status:
    """Start the supervisor in the background (its own session) and wait until vLLM serves."""
    out = settings.data_dir / "logs" / f"llm-serve-{options.port}.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "sourcebook", "llm", "serve", "--model", options.spec, "--host", options.host]
    args += ["--port", str(options.port), "--max-model-len", str(options.max_model_len)]
    with out.open("ab") as sink:
        child = subprocess.Popen(
            args, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    path = llm_server.pidfile(settings, options.port)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = read_status(path)
        if status is not None and status.pid == child.pid and status.state == "ready":
            return status
        if child.poll() is not None:
            raise SourcebookError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"the model server did not start; the end of {out}:\n{llm_server.log_tail(out)}",
            )
        time.sleep(0.5)
    raise SourcebookError(ErrorCode.TIMEOUT, f"vLLM was not ready within {timeout_s:.0f} s; see {out}")


def _address(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return ("127.0.0.1" if host in {"localhost", "::1"} else host, parts.port)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
