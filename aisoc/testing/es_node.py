"""A real, throwaway Elasticsearch node for tests and local development.

The distribution is Elastic's `integ-test-zip` (core server plus x-pack-core/security, no bundled JDK,
no ingest-common), fetched once from Maven Central with `mvn` into `$AISOC_CACHE` (default
`~/.cache/aisoc`) and unpacked once.  Nodes run single-node on 127.0.0.1 with free ports and fresh
temp data/log dirs, security disabled.  Elasticsearch refuses to run as root, so when we are root the
node runs as a system user (`esrun`, or `$AISOC_ES_RUN_USER`) created on demand.

Environment knobs: `AISOC_CACHE`, `AISOC_ES_VERSION`, `AISOC_ES_JAVA_HOME`, `AISOC_ES_RUN_USER`,
`AISOC_TEST_ES_URL` (use an existing cluster instead of starting one; see `session_es_url`).

Command line (also wrapped by `scripts/es-node.sh`)::

    python -m aisoc.testing.es_node start [--version V]   # prints the URL
    python -m aisoc.testing.es_node status
    python -m aisoc.testing.es_node stop
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

MAVEN_COORDINATES = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
DEFAULT_VERSION = "9.2.0"  # needs JDK 21+
FALLBACK_VERSION = "8.19.0"  # runs on JDK 17
JVM_ROOTS: tuple[Path, ...] = (Path("/usr/lib/jvm"),)
DEFAULT_RUN_USER = "esrun"
STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0

# Settings we would like but that some builds reject ("unknown setting" aborts startup): they are
# dropped and the start retried when rejected.  `ingest.geoip.downloader.enabled` is not listed:
# the integ-test-zip has no geoip module, so 8.19.0 and 9.2.0 both reject it.
OPTIONAL_SETTINGS: dict[str, str] = {
    "cluster.routing.allocation.disk.threshold_enabled": "false",
    "xpack.ml.enabled": "false",
}

_UNKNOWN_SETTING = re.compile(r"unknown setting \[([^\]]+)\]")
_FATAL_LINE = re.compile(r"fatal exception|unknown setting|BindException|Address already in use|^ERROR:|Error:")
_PORT_IN_USE = re.compile(r"BindException|Address already in use|BindTransportException|BindHttpException")


class EsNodeError(RuntimeError):
    """Fetching, starting or reaching the test Elasticsearch failed."""


# --------------------------------------------------------------------------------------------------
# Distribution


def cache_root(cache_dir: Path | None = None) -> Path:
    """The aisoc cache: `cache_dir`, else `$AISOC_CACHE`, else `~/.cache/aisoc`."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("AISOC_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "aisoc"


def _es_cache(cache_dir: Path | None) -> Path:
    return cache_root(cache_dir) / "elasticsearch"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock, so parallel test processes fetch/unpack only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tail(text: str, lines: int = 40, width: int = 500) -> str:
    out = [line if len(line) <= width else line[:width] + " ..." for line in text.splitlines()[-lines:]]
    return "\n".join(out)


def _mvn_download(version: str, out_dir: Path) -> Path:
    """Fetch the integ-test zip of `version` into `out_dir` with Maven; returns the zip path."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EsNodeError(
            "Maven (`mvn`) is not on PATH; it is needed once to fetch the Elasticsearch test distribution "
            f"({MAVEN_COORDINATES.format(version=version)}) from Maven Central. Install Maven "
            "(e.g. `apt-get install maven`), or set AISOC_TEST_ES_URL to use an existing cluster."
        )
    cmd = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "dependency:copy",
        f"-Dartifact={MAVEN_COORDINATES.format(version=version)}",
        f"-DoutputDirectory={out_dir}",
    ]
    try:
        proc = subprocess.run(cmd, cwd=out_dir, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as exc:
        raise EsNodeError(f"`{shlex.join(cmd)}` did not finish within {exc.timeout:.0f} s") from exc
    zip_path = out_dir / f"elasticsearch-{version}.zip"
    if proc.returncode != 0 or not zip_path.is_file():
        raise EsNodeError(
            f"downloading Elasticsearch {version} failed: `{shlex.join(cmd)}` exited with {proc.returncode}"
            f"{'' if zip_path.is_file() else ' and produced no zip'}; output tail:\n" + _tail(proc.stdout + proc.stderr)
        )
    return zip_path


def _unpack(zip_path: Path, home: Path, version: str) -> None:
    """Unpack `zip_path` so that `home` appears atomically (unpack to a temp dir, then rename)."""
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=home.parent))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                for info in zf.infolist():
                    target = zf.extract(info, tmp)
                    if not info.is_dir():
                        mode = ((info.external_attr >> 16) & 0o777) or 0o644
                        mode |= 0o044 | (0o111 if mode & 0o111 else 0)  # readable by the run user
                        os.chmod(target, mode)
        except zipfile.BadZipFile as exc:
            zip_path.unlink(missing_ok=True)  # fetch it again next time
            raise EsNodeError(f"{zip_path} is not a valid zip ({exc}); deleted it, try again") from exc
        inner = tmp / f"elasticsearch-{version}"
        if not (inner / "bin" / "elasticsearch").is_file():
            raise EsNodeError(f"{zip_path} does not contain elasticsearch-{version}/bin/elasticsearch")
        for dirpath, _dirs, _files in os.walk(inner):
            os.chmod(dirpath, 0o755)
        os.rename(inner, home)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _is_unpacked(home: Path) -> bool:
    return (home / "bin" / "elasticsearch").is_file()


def ensure_distribution(version: str | None = None, cache_dir: Path | None = None) -> Path:
    """Download (once) and unpack (once) the Elasticsearch test distribution; returns its home.

    `version` defaults to what the installed JDKs can run (see `select_runtime`).  The zip is kept
    under `<cache>/elasticsearch/downloads/`, the unpacked home at `<cache>/elasticsearch/elasticsearch-V`.
    """
    if version is None:
        version = select_runtime()[0]
    root = _es_cache(cache_dir)
    home = root / f"elasticsearch-{version}"
    if _is_unpacked(home):
        return home
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / ".lock"):
        if _is_unpacked(home):
            return home
        zip_path = root / "downloads" / f"elasticsearch-{version}.zip"
        if not zip_path.is_file():
            tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
            try:
                fetched = _mvn_download(version, tmp)
                zip_path.parent.mkdir(exist_ok=True)
                os.replace(fetched, zip_path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        _unpack(zip_path, home, version)
    return home


# --------------------------------------------------------------------------------------------------
# JDK selection


@dataclass(frozen=True)
class Jdk:
    """An installed JDK and its feature version."""

    home: Path
    major: int


def _parse_major(version: str) -> int | None:
    parts = version.split(".")
    head = parts[1] if parts[0] == "1" and len(parts) > 1 else parts[0]  # "1.8.0_x" -> 8
    m = re.match(r"\d+", head)
    return int(m.group()) if m else None


def jdk_major(java_home: Path) -> int | None:
    """Feature version of the JDK at `java_home` (from its `release` file, else `java -version`)."""
    release = java_home / "release"
    if release.is_file():
        m = re.search(r'^JAVA_VERSION="([^"]+)"', release.read_text(errors="replace"), re.M)
        if m:
            return _parse_major(m.group(1))
    java = java_home / "bin" / "java"
    if not java.is_file():
        return None
    try:
        proc = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "([^"]+)"', proc.stderr + proc.stdout)
    return _parse_major(m.group(1)) if m else None


def find_jdks(roots: tuple[Path, ...] = JVM_ROOTS) -> list[Jdk]:
    """JDKs from $ES_JAVA_HOME, $JAVA_HOME, `java` on PATH and the directories under `roots`."""
    candidates: list[Path] = []
    for var in ("ES_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]))
    java = shutil.which("java")
    if java:
        candidates.append(Path(java).resolve().parent.parent)
    for root in roots:
        if root.is_dir():
            candidates.extend(sorted(root.iterdir()))
    seen: set[Path] = set()
    found: list[Jdk] = []
    for cand in candidates:
        real = cand.resolve()
        if real in seen or not (real / "bin" / "java").is_file():
            continue
        seen.add(real)
        major = jdk_major(real)
        if major is not None:
            found.append(Jdk(real, major))
    return found


def min_jdk(version: str) -> int:
    """Oldest JDK feature version the given Elasticsearch version runs on."""
    major = int(version.split(".")[0])
    return 21 if major >= 9 else 17 if major == 8 else 11


def select_runtime(version: str | None = None, java_home: Path | str | None = None) -> tuple[str, Path]:
    """Pick (Elasticsearch version, JDK home).

    Defaults: `$AISOC_ES_VERSION` / `$AISOC_ES_JAVA_HOME` when set; else 9.2.0 on the newest JDK >= 21
    if one is installed, otherwise 8.19.0 on the oldest JDK >= 17.
    """
    version = version or os.environ.get("AISOC_ES_VERSION") or None
    java_home = java_home or os.environ.get("AISOC_ES_JAVA_HOME") or None
    if java_home is not None:
        jh = Path(java_home)
        major = jdk_major(jh)
        if major is None:
            raise EsNodeError(f"{jh} does not look like a JDK (no release file or bin/java)")
        version = version or (DEFAULT_VERSION if major >= min_jdk(DEFAULT_VERSION) else FALLBACK_VERSION)
        if major < min_jdk(version):
            raise EsNodeError(f"Elasticsearch {version} needs JDK {min_jdk(version)}+, {jh} is JDK {major}")
        return version, jh
    jdks = find_jdks()
    if version is None:
        modern = any(j.major >= min_jdk(DEFAULT_VERSION) for j in jdks)
        version = DEFAULT_VERSION if modern else FALLBACK_VERSION
    need = min_jdk(version)
    usable = [j for j in jdks if j.major >= need]
    if not usable:
        have = ", ".join(f"{j.home} (JDK {j.major})" for j in jdks) or "none"
        raise EsNodeError(
            f"Elasticsearch {version} needs JDK {need}+ and none was found (looked at $ES_JAVA_HOME, "
            f"$JAVA_HOME, java on PATH, {', '.join(map(str, JVM_ROOTS))}; found: {have}). "
            "Install one or set AISOC_ES_JAVA_HOME."
        )
    # 9.x: newest JDK (it bundles the newest one itself); 8.x: oldest supported one (17 is the safe bet).
    pick = max(usable, key=lambda j: j.major) if need >= 21 else min(usable, key=lambda j: j.major)
    return version, pick.home


# --------------------------------------------------------------------------------------------------
# Running as a non-root user


def _run_user() -> pwd.struct_passwd | None:
    """The user to run Elasticsearch as when we are root (created if missing); None when not root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("AISOC_ES_RUN_USER", DEFAULT_RUN_USER)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EsNodeError(f"Elasticsearch refuses to run as root and user {name!r} is missing (no useradd)")
    cmd = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return pwd.getpwnam(name)  # also fine if a parallel process created it first
    except KeyError:
        raise EsNodeError(
            f"`{shlex.join(cmd)}` failed ({proc.returncode}): {_tail(proc.stdout + proc.stderr, 5)}"
        ) from None


def _world_readable(home: Path) -> bool:
    """Can a different, unprivileged user reach and read `home`?"""
    real = home.resolve()
    if any(not d.stat().st_mode & stat.S_IXOTH for d in (real, *real.parents)):
        return False
    return bool((real / "bin" / "elasticsearch").stat().st_mode & stat.S_IROTH)


def _runnable_home(home: Path) -> Path:
    """`home`, or a root-owned world-readable copy of it when the run user cannot reach it
    (e.g. the cache lives under a 0700 /root)."""
    if _world_readable(home):
        return home
    base = Path(tempfile.gettempdir()) / f"aisoc-es-dist-{os.geteuid()}"
    base.mkdir(mode=0o755, exist_ok=True)
    st = base.lstat()
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise EsNodeError(f"{base} is not a directory owned by us and writable only by us; remove it")
    os.chmod(base, 0o755)
    target = base / home.name
    if _is_unpacked(target):
        return target
    with _file_lock(base / ".lock"):
        if not _is_unpacked(target):
            tmp = Path(tempfile.mkdtemp(prefix=".copy-", dir=base))
            try:
                shutil.copytree(home, tmp / home.name, symlinks=True)
                os.rename(tmp / home.name, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------------------
# Process helpers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = _free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _group_alive(pgid: int) -> bool:
    """Does process group `pgid` still have a live (non-zombie) member?"""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()  # state ppid pgrp ...
        if len(fields) >= 3 and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _terminate_group(pgid: int, proc: subprocess.Popen[bytes] | None, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the group, wait up to `timeout`, then SIGKILL whatever is left."""
    _signal_group(pgid, signal.SIGTERM)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    # The server JVM is a child of the launcher; give it a moment after the launcher is gone.
    if not _wait_group_gone(pgid, 2 if proc is not None else timeout):
        _signal_group(pgid, signal.SIGKILL)
        _wait_group_gone(pgid, 10)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def wait_for_health(url: str, timeout: float = STARTUP_TIMEOUT, status: str = "yellow") -> dict[str, object]:
    """Block until `GET url/_cluster/health?wait_for_status=...` answers 200; returns the health body."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=10) as client:
        while True:
            try:
                resp = client.get(
                    f"{url.rstrip('/')}/_cluster/health", params={"wait_for_status": status, "timeout": "1s"}
                )
                if resp.status_code == 200:
                    return dict(resp.json())
                last = f"HTTP {resp.status_code}: {resp.text[:300]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise EsNodeError(f"{url} not {status} within {timeout:.0f} s (last: {last})")
            time.sleep(0.5)


_LIVE: set[ElasticsearchNode] = set()


@atexit.register
def _stop_live_nodes() -> None:
    for node in list(_LIVE):
        with contextlib.suppress(Exception):
            node.stop()


# --------------------------------------------------------------------------------------------------
# The node


class ElasticsearchNode:
    """A single-node Elasticsearch on 127.0.0.1 with its own ports and temp dirs.

    Use as a context manager (`with ElasticsearchNode() as es: es.url`) or call `start()`/`stop()`.
    `kill()` SIGKILLs it (fault tests); `restart()` brings it back on the same port and data.
    """

    def __init__(
        self,
        version: str | None = None,
        *,
        java_home: Path | str | None = None,
        cache_dir: Path | None = None,
        heap: str = "512m",
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        self.version, self.java_home = select_runtime(version, java_home)
        self.cache_dir = cache_dir
        self.heap = heap
        self.settings = dict(settings or {})
        self.startup_timeout = startup_timeout
        self.http_port: int | None = None
        self.transport_port: int | None = None
        self.node_dir: Path | None = None
        self.startup_seconds: float | None = None  # of the latest start/restart
        self._optional = dict(OPTIONAL_SETTINGS)
        self._proc: subprocess.Popen[bytes] | None = None
        self._home: Path | None = None
        self._user: pwd.struct_passwd | None = None

    # -- public API -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:45123`."""
        if self.http_port is None:
            raise EsNodeError("node has not been started")
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int | None:
        """PID of the Elasticsearch launcher (also its process group id), None when not running."""
        return self._proc.pid if self._proc is not None else None

    @property
    def data_dir(self) -> Path:
        """The node's `path.data`."""
        return self._dir("data")

    @property
    def log_dir(self) -> Path:
        """The node's `path.logs`."""
        return self._dir("logs")

    def is_running(self) -> bool:
        """Is the Elasticsearch process alive (not necessarily ready)?"""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> ElasticsearchNode:
        """Start on fresh free ports and fresh temp dirs; returns once the cluster is yellow."""
        if self.is_running():
            raise EsNodeError(f"node already running at {self.url}")
        self._cleanup_dirs()
        home = ensure_distribution(self.version, self.cache_dir)
        self._user = _run_user()
        self._home = _runnable_home(home) if self._user is not None else home
        attempts = 3 + len(self._optional)
        for attempt in range(attempts):
            self.http_port, self.transport_port = _free_ports(2)
            self._prepare_dirs()
            try:
                self._launch()
                return self
            except EsNodeError as exc:
                self._cleanup_dirs()
                _LIVE.discard(self)
                rejected = _UNKNOWN_SETTING.search(str(exc))
                if rejected and rejected.group(1) in self._optional:
                    del self._optional[rejected.group(1)]
                    continue
                if _PORT_IN_USE.search(str(exc)) and attempt < attempts - 1:
                    continue  # lost a race for the port: pick new ones
                raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL after 30 s) and delete the temp dirs."""
        self._stop_process(graceful=True)
        self._cleanup_dirs()
        _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL the node (simulated crash); dirs and ports are kept so `restart()` can follow."""
        self._stop_process(graceful=False)

    def restart(self) -> ElasticsearchNode:
        """Stop (if running) and start again on the same port and data dir."""
        if self.node_dir is None or self.http_port is None:
            raise EsNodeError("restart() needs a node that was started before")
        self._stop_process(graceful=True)
        self._launch()
        return self

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the node's console output (stdout/stderr of Elasticsearch)."""
        console = self._dir("console.log") if self.node_dir else None
        if console is None or not console.is_file():
            return "(no console output)"
        return _tail(console.read_text(errors="replace"), lines)

    def _failure_report(self) -> str:
        """The likely cause (fatal lines) plus the console tail, for start errors."""
        console = self._dir("console.log")
        text = console.read_text(errors="replace") if console.is_file() else ""
        causes: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            if _FATAL_LINE.search(line) and line not in causes:
                causes.append(line if len(line) <= 500 else line[:500] + " ...")
        summary = "\n".join(causes[:6]) or "(no fatal line found)"
        return f"Likely cause:\n{summary}\nConsole tail:\n{_tail(text, 25)}"

    def detach(self) -> dict[str, object]:
        """Leave the node running after this Python process exits; returns its state for `stop_detached`."""
        if self._proc is None:
            raise EsNodeError("node is not running")
        state: dict[str, object] = {
            "pid": self._proc.pid,
            "url": self.url,
            "version": self.version,
            "node_dir": str(self.node_dir),
        }
        _LIVE.discard(self)
        self._proc = None  # do not kill or wait for it any more
        return state

    def __enter__(self) -> ElasticsearchNode:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.http_port else "not started"
        return f"<ElasticsearchNode {self.version} {where} running={self.is_running()}>"

    # -- internals ---------------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        if self.node_dir is None:
            raise EsNodeError("node has not been started")
        return self.node_dir / name

    def _prepare_dirs(self) -> None:
        assert self._home is not None
        node_dir = Path(tempfile.mkdtemp(prefix="aisoc-es-node-"))
        self.node_dir = node_dir
        for sub in ("data", "logs", "tmp"):
            (node_dir / sub).mkdir()
        config = node_dir / "config"
        shutil.copytree(self._home / "config", config)  # ES writes its keystore here
        self._patch_jvm_options(config / "jvm.options")
        if self._user is not None:
            for dirpath, dirnames, filenames in os.walk(node_dir):
                for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                    os.chown(name, self._user.pw_uid, self._user.pw_gid)

    def _patch_jvm_options(self, path: Path) -> None:
        """Point GC log, error file and heap dumps at this node's dirs (8.x resolves them against
        ES home, which the run user cannot write)."""
        logs, data = self._dir("logs"), self._dir("data")
        text = path.read_text()
        text = re.sub(r"(:file=)[^:\s]+", rf"\g<1>{logs}/gc.log", text)
        text = re.sub(r"^(-XX:ErrorFile=).*$", rf"\g<1>{logs}/hs_err_pid%p.log", text, flags=re.M)
        text = re.sub(r"^(-XX:HeapDumpPath=).*$", rf"\g<1>{data}", text, flags=re.M)
        path.write_text(text)

    def _command(self) -> list[str]:
        assert self._home is not None and self.node_dir is not None
        settings = {
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": str(self.http_port),
            "transport.port": str(self.transport_port),
            "path.data": str(self.data_dir),
            "path.logs": str(self.log_dir),
            "node.name": "aisoc-test",
            "xpack.security.enabled": "false",
            **self._optional,
            **self.settings,
        }
        cmd = [str(self._home / "bin" / "elasticsearch")]
        for key, value in settings.items():
            cmd += ["-E", f"{key}={value}"]
        if self._user is not None:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise EsNodeError("running as root needs `setpriv` (util-linux) to drop to the ES user")
            cmd = [
                setpriv,
                f"--reuid={self._user.pw_uid}",
                f"--regid={self._user.pw_gid}",
                "--init-groups",
                *cmd,
            ]
        return cmd

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("ES_HOME", "ES_PATH_CONF", "JAVA_TOOL_OPTIONS")}
        env.update(
            ES_JAVA_HOME=str(self.java_home),
            ES_PATH_CONF=str(self._dir("config")),
            ES_TMPDIR=str(self._dir("tmp")),
            ES_JAVA_OPTS=f"-Xms{self.heap} -Xmx{self.heap}",
        )
        if self._user is not None:
            env["HOME"] = str(self.node_dir)
            env["USER"] = env["LOGNAME"] = self._user.pw_name
        return env

    def _launch(self) -> None:
        """Start the process on the current ports/dirs and wait until the cluster is yellow."""
        cmd = self._command()
        console_path = self._dir("console.log")
        with open(console_path, "ab") as console:
            console.write(f"\n=== aisoc: {time.strftime('%Y-%m-%dT%H:%M:%S')} {shlex.join(cmd)}\n".encode())
            console.flush()
            started = time.monotonic()
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.node_dir,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() signals launcher and server JVM
            )
        _LIVE.add(self)
        deadline = started + self.startup_timeout
        with httpx.Client(timeout=5) as client:
            while True:
                rc = self._proc.poll()
                if rc is not None:
                    self._stop_process(graceful=False)
                    raise EsNodeError(
                        f"Elasticsearch {self.version} ({self._home}, JDK {self.java_home}) exited with code "
                        f"{rc} before becoming ready.\n{self._failure_report()}"
                    )
                try:
                    resp = client.get(
                        f"{self.url}/_cluster/health", params={"wait_for_status": "yellow", "timeout": "1s"}
                    )
                    if resp.status_code == 200 and self._proc.poll() is None:
                        self.startup_seconds = time.monotonic() - started
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self._stop_process(graceful=False)
                    raise EsNodeError(
                        f"Elasticsearch {self.version} not ready within {self.startup_timeout:.0f} s at "
                        f"{self.url}.\n{self._failure_report()}"
                    )
                time.sleep(0.25)

    def _stop_process(self, graceful: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the launcher leads its own group
        if graceful:
            _terminate_group(pgid, proc)
        else:
            _signal_group(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            _wait_group_gone(pgid, 10)

    def _cleanup_dirs(self) -> None:
        if self.node_dir is not None:
            shutil.rmtree(self.node_dir, ignore_errors=True)
            self.node_dir = None


# --------------------------------------------------------------------------------------------------
# pytest glue (plain functions; the fixtures in tests/conftest.py wrap them)


@contextlib.contextmanager
def session_es_url(
    version: str | None = None, timeout: float = STARTUP_TIMEOUT
) -> Iterator[tuple[str, ElasticsearchNode | None]]:
    """Yield `(url, node)` for a test session.

    With `$AISOC_TEST_ES_URL` set, wait until that cluster is healthy and yield `(url, None)`;
    otherwise start an `ElasticsearchNode`, yield `(node.url, node)` and stop it afterwards.
    """
    external = os.environ.get("AISOC_TEST_ES_URL", "").strip()
    if external:
        url = external.rstrip("/")
        wait_for_health(url, timeout=timeout)
        yield url, None
        return
    with ElasticsearchNode(version, startup_timeout=timeout) as node:
        yield node.url, node


# --------------------------------------------------------------------------------------------------
# Command line: a long-lived node for developers / CI scripts


def _state_dir(cache_dir: Path | None) -> Path:
    return _es_cache(cache_dir) / "run"


def _read_state(cache_dir: Path | None) -> dict[str, object] | None:
    path = _state_dir(cache_dir) / "es-node.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _state_alive(state: Mapping[str, object]) -> bool:
    pid = state.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _group_alive(pid)
    return b"elasticsearch" in cmdline and _group_alive(pid)


def _clear_state(cache_dir: Path | None, state: Mapping[str, object] | None) -> None:
    if state and state.get("node_dir"):
        node_dir = Path(str(state["node_dir"]))
        if node_dir.name.startswith("aisoc-es-node-"):
            shutil.rmtree(node_dir, ignore_errors=True)
    for name in ("es-node.json", "es-node.pid", "es-node.url"):
        (_state_dir(cache_dir) / name).unlink(missing_ok=True)


def cli_start(version: str | None = None, cache_dir: Path | None = None) -> str:
    """Start a detached node (or reuse the running one); returns its URL."""
    state = _read_state(cache_dir)
    if state and _state_alive(state):
        return str(state["url"])
    _clear_state(cache_dir, state)
    node = ElasticsearchNode(version, cache_dir=cache_dir)
    node.start()
    new_state = node.detach()
    run = _state_dir(cache_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / "es-node.json").write_text(json.dumps(new_state, indent=2) + "\n")
    (run / "es-node.pid").write_text(f"{new_state['pid']}\n")
    (run / "es-node.url").write_text(f"{new_state['url']}\n")
    return node.url


def cli_stop(cache_dir: Path | None = None) -> bool:
    """Stop the detached node; returns whether one was running."""
    state = _read_state(cache_dir)
    running = bool(state and _state_alive(state))
    if state and running:
        _terminate_group(int(str(state["pid"])), None)
    _clear_state(cache_dir, state)
    return running


def cli_status(cache_dir: Path | None = None) -> tuple[int, str]:
    """(exit code, message): 0 running and healthy, 1 running but not healthy, 3 not running."""
    state = _read_state(cache_dir)
    if not state or not _state_alive(state):
        return 3, "not running"
    try:
        health = wait_for_health(str(state["url"]), timeout=0)
    except EsNodeError as exc:
        return 1, f"running (pid {state['pid']}) but not healthy: {exc}"
    return 0, f"{state['url']} (pid {state['pid']}, Elasticsearch {state['version']}, {health.get('status')})"


def main(argv: list[str] | None = None) -> int:
    """`python -m aisoc.testing.es_node start|stop|status [--version V] [--cache-dir DIR]`."""
    parser = argparse.ArgumentParser(prog="es-node", description="A throwaway Elasticsearch node for tests.")
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument("--version", help=f"Elasticsearch version (default: {DEFAULT_VERSION} on JDK 21+)")
    parser.add_argument("--cache-dir", type=Path, help="cache root (default: $AISOC_CACHE or ~/.cache/aisoc)")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            print(cli_start(args.version, args.cache_dir))
            return 0
        if args.command == "stop":
            print("stopped" if cli_stop(args.cache_dir) else "not running")
            return 0
        code, message = cli_status(args.cache_dir)
        print(message)
        return code
    except EsNodeError as exc:
        print(f"es-node: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
