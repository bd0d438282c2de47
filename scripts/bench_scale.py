r"""Scale benchmark of the chatrooms service: reads at a fixed rate on a big database.

Run it through scripts/bench-scale.sh (which makes sure .venv has Synapse and aiohttp);
`scripts/bench-scale.sh --help` lists the options:

    scripts/bench-scale.sh        # 100,000 rooms, 1,000,000 role entries, 200/s for 60 s, both
                                  # databases, target/release/chatrooms (cargo build --release)
    CHATROOMS_RECONCILE_INTERVAL_MS=5000 scripts/bench-scale.sh --bin target/debug/chatrooms \
        --rooms 2000 --organizations 20 --rate 50 --duration 15       # a quick try
    CHATROOMS_RECONCILE_INTERVAL_MS=300000 scripts/bench-scale.sh --duration 900
                                  # the pass's homeserver cost at the service's default interval

For each database (SQLite, Postgres) it:

1. builds the database directly, not through the homeserver: `chatrooms migrate` on a fresh
   SQLite file or a fresh Postgres database (chatrooms_bench, dropped at the end), then bulk
   inserts (sqlite3 executemany / psql COPY, one transaction) the organizations with their
   spaces, the rooms (each organization a default room, then event and custom rooms in turn,
   ids interleaved across organizations, fake but well-formed `!bench<N>:<server>` room ids),
   the role entries (per room a tenth admins, a fifth moderators, the rest assigned users, drawn
   from a pool of users per organization; and 100 busy users, each an assigned user of 50 rooms
   across organizations) and a Matrix account for every user, so that the
   service sees every room as created and in sync (no sync job) and registers nobody. The
   same seeded data goes into both databases; Postgres is vacuumed and analyzed after the load;
   SQLite is left without ANALYZE, as the service leaves it;
2. starts one Synapse for the whole run with scripts/synapse.sh (temp dir, free port); the
   fake rooms do not exist there, so the periodic drift pass fails on them;
3. starts `chatrooms serve` with the env scripts/run.sh would give it (generated API token,
   JWT and credentials secrets, the Synapse env file), JSON logs, debug logs of the sync loops;
4. sends an open-loop load at a fixed total rate: each request goes out at its scheduled time
   whether or not earlier ones have finished, and its latency is measured from that scheduled
   time to the end of the response (no coordinated omission); a mix of GET /chatrooms/{id},
   GET /chatrooms?organization_id=&limit=50&offset= (a random page), ...&all=true and
   GET /users/{userID}/chatrooms?limit=50 of a busy user, random rooms, organizations and busy
   users, with the API token. A warm-up at the same rate is not counted;
5. reports per request kind the count, the errors (non-2xx, connection errors, timeouts, by
   status or exception) and p50/p99/max latency over all requests, errors included; the
   longest read while a periodic pass runs; the service's peak RSS (VmHWM, read before it
   stops) and CPU, Synapse's CPU during the measured phase (utime+stime from /proc, as seconds
   and as % of one core: the load never reaches Synapse, so this is what the periodic pass
   costs it, idle Synapse included) and the load generator's own send lag (how late requests
   left: a large one means the client, not the service, was the bottleneck);
6. then reads GET /export (everything) to its end and reports its time, lines and size, and
   how far the service's memory rose above its RSS just before (VmHWM reset through
   /proc/<pid>/clear_refs first).

Periodic-pass windows come from the service's log: the drift loop sleeps the interval, queues
the pass's checks and logs "drift checks queued" (debug, src/sync/worker.rs), then the worker
logs each room's outcome (lines with a `chatroom` or `space_of` field). A pass is taken to
start one interval after the service was launched (first pass) or after the previous pass's
"drift checks queued" line (0.1 s earlier, to be safe), and to end at its last room outcome
before the next pass starts (or at the end of the run if its queueing never finished); a pass
still running when the next starts makes the windows adjoin. The report says "off" (interval
0), "none in phase" (no pass started before the end), "detected", or "not detected" (a pass
was due but no "drift checks queued" line came): then the overall longest read stands in.

Environment: every CHATROOMS_* variable (and RUST_LOG, to which the sync debug directive is
added) reaches the service, so settings can be tried; CHATROOMS_RECONCILE_INTERVAL_MS defaults
to 20000 here (the service's own default is 300000) so that passes fall in the measured phase
(set it to 0 for a baseline without passes). The run's address, database, API token, log
format and homeserver settings are the bench's own. SYNAPSE_* variables reach
scripts/synapse.sh config (SYNAPSE_SERVER_NAME also names the fake rooms' server).

Results: a markdown table on stdout and JSON in --json. Everything started (service, Synapse,
temp dir, the Postgres database) is cleaned up at the end, on error and on Ctrl-C.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
SYNAPSE_SH = ROOT / "scripts" / "synapse.sh"
BENCH_DATABASE = "chatrooms_bench"
SEED = 20251201
KINDS = ("get", "list50", "listall", "userrooms")
# Users in many rooms, for "a user's rooms": this many of them, each in this many rooms.
BUSY_USERS = 100
ROOMS_PER_BUSY_USER = 50
DEFAULT_INTERVAL_MS = "20000"
# The service's own default filter (src/telemetry.rs), plus the sync loops' debug lines.
DEFAULT_RUST_LOG = "info,sqlx=warn,tower_http=info,hyper=warn,reqwest=warn"
SYNC_DEBUG = "chatrooms::sync=debug"
PASS_START_MARGIN_S = 0.1


class BenchError(Exception):
    """A step failed; the message says which and shows the end of its log."""


def mix_weights(text: str) -> list[float]:
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        weights = []
    if len(weights) != len(KINDS) or min(weights) < 0 or sum(weights) <= 0:
        raise argparse.ArgumentTypeError("four non-negative weights, e.g. 65,25,5,5")
    return weights


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench-scale.sh",
        description="Reads at a fixed rate on a big chatrooms database, on SQLite and Postgres.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog=f"Every CHATROOMS_* variable reaches the service; CHATROOMS_RECONCILE_INTERVAL_MS "
        f"(the periodic pass) defaults to {DEFAULT_INTERVAL_MS} here, 0 turns the pass off.",
    )
    parser.add_argument("--bin", type=Path, default=ROOT / "target/release/chatrooms", help="service binary")
    parser.add_argument("--rooms", type=int, default=100_000, help="rooms in the database")
    parser.add_argument("--organizations", type=int, default=1_000, help="organizations sharing them")
    parser.add_argument("--roles-per-room", type=int, default=10, help="role entries per room")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, all kinds together")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before, not counted")
    parser.add_argument("--mix", type=mix_weights, default="65,25,5,5",
                        help="weights of get, list50, listall, userrooms")
    databases = ("sqlite", "postgres")
    parser.add_argument("--databases", nargs="+", choices=databases, default=databases, help="which, in turn")
    parser.add_argument(
        "--postgres-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help=f"a Postgres database to connect to; {BENCH_DATABASE} is made beside it and dropped after",
    )
    parser.add_argument(
        "--checked", choices=("recent", "never"), default="recent",
        help="when the rooms were last read back from the homeserver (services with a checked_at "
             "column): recent is a service in its steady state, never one whose pass must sweep them all",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "target/bench-scale.json", help="JSON output")
    args = parser.parse_args()
    if not 1 <= args.organizations <= args.rooms or args.roles_per_room < 1 or args.rate <= 0:
        parser.error("need 1 <= organizations <= rooms, roles-per-room >= 1 and a positive rate")
    return args


# ---------------------------------------------------------------- the data set


@dataclass(frozen=True)
class Layout:
    """Which organization a room belongs to and which users it may take its roles from."""

    rooms: int
    organizations: int
    roles: int

    def org_of(self, room: int) -> int:
        return (room - 1) % self.organizations + 1

    def index_in_org(self, room: int) -> int:
        return (room - 1) // self.organizations

    def rooms_of(self, org: int) -> int:
        return self.rooms // self.organizations + (org <= self.rooms % self.organizations)

    @property
    def users_per_org(self) -> int:
        return max(self.roles, self.rooms_of(1) * self.roles // 2)

    @property
    def first_busy_user(self) -> int:
        """After every organization's pool."""
        return self.organizations * self.users_per_org + 1


def organization_rows(layout: Layout, server: str, now: int):
    for org in range(1, layout.organizations + 1):
        yield org, f"Organization {org}", f"chatrooms_space_{org:032x}", f"!benchspace{org}:{server}", now


CHATROOM_COLUMNS = (
    "id", "kind", "organization_id", "event_id", "name", "automation_enabled", "matrix_room_id",
    "matrix_alias", "created_at", "updated_at", "topic", "read_only",
)


def chatroom_rows(layout: Layout, server: str, now: int):
    for room in range(1, layout.rooms + 1):
        index = layout.index_in_org(room)
        kind = "default" if index == 0 else "event" if index % 2 else "custom"
        event = index if kind == "event" else None
        name = {"default": "General", "event": f"Event {index}", "custom": f"Room {index}"}[kind]
        topic = f"Chat of event {index}" if kind == "event" else None
        created = now - (layout.rooms - room) * 1000
        yield (room, kind, layout.org_of(room), event, name, 0, f"!bench{room}:{server}",
               f"chatrooms_{room:032x}", created, created, topic, 0)


def member_rows(layout: Layout):
    admins = max(1, layout.roles // 10)
    moderators = min(layout.roles - admins, layout.roles // 5)
    assigned = layout.roles - admins - moderators
    roles = ["admin"] * admins + ["moderator"] * moderators + ["assigned"] * assigned
    rng = random.Random(SEED)
    pool = layout.users_per_org
    for room in range(1, layout.rooms + 1):
        first = (layout.org_of(room) - 1) * pool + 1
        for role, user in zip(roles, rng.sample(range(pool), layout.roles)):
            yield room, first + user, role
    # The busy users: each an assigned user of rooms drawn across all organizations.
    for busy in range(BUSY_USERS):
        for room in rng.sample(range(1, layout.rooms + 1), min(ROOMS_PER_BUSY_USER, layout.rooms)):
            yield room, layout.first_busy_user + busy, "assigned"


def account_rows(layout: Layout, now: int):
    for user in range(1, layout.first_busy_user + BUSY_USERS):
        yield user, now


def bench_tables(layout: Layout, server: str):
    """(table, columns, rows) in insertion order; rows are generated lazily."""
    now = int(time.time() * 1000)
    return [
        ("organizations", ("id", "name", "space_alias", "matrix_space_id", "updated_at"),
         organization_rows(layout, server, now)),
        ("chatrooms", CHATROOM_COLUMNS, chatroom_rows(layout, server, now)),
        ("chatroom_members", ("chatroom_id", "app_user_id", "role"), member_rows(layout)),
        ("matrix_accounts", ("app_user_id", "created_at"), account_rows(layout, now)),
    ]


def fill_sqlite(path: str, tables) -> None:
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA synchronous = OFF")
        with con:
            for table, columns, rows in tables:
                marks = ", ".join("?" * len(columns))
                con.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
    finally:
        con.close()


def psql(url: str, *args: str) -> list[str]:
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, *args]


def fill_postgres(url: str, tables) -> None:
    script = psql(url, "-f", "-")
    with subprocess.Popen(script, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True) as copy:
        write = copy.stdin.write
        write("BEGIN;\n")
        for table, columns, rows in tables:
            write(f"COPY {table} ({', '.join(columns)}) FROM STDIN;\n")
            for row in rows:
                write("\t".join(r"\N" if value is None else str(value) for value in row) + "\n")
            write("\\.\n")
        write("SELECT setval(pg_get_serial_sequence('chatrooms', 'id'), (SELECT max(id) FROM chatrooms));\n")
        write("COMMIT;\nVACUUM ANALYZE;\n")
    if copy.returncode:
        raise BenchError("loading the Postgres database failed (psql's messages above)")


# A service in its steady state: every room and space read back at build time, and the
# homeserver's pushes known to arrive since long before (the periodic pass skips them).
CHECKED = (
    "UPDATE chatrooms SET checked_at = {now}",
    "UPDATE organizations SET checked_at = {now}",
    "INSERT INTO intake_proof (id, since) VALUES (1, 0)",
)


def mark_checked(db: str, url: str, now: int) -> None:
    """Sets every room and space as read back at `now`, where the schema records it."""
    if db == "sqlite":
        con = sqlite3.connect(url.removeprefix("sqlite://"))
        try:
            if any(column[1] == "checked_at" for column in con.execute("PRAGMA table_info(chatrooms)")):
                with con:
                    for statement in CHECKED:
                        con.execute(statement.format(now=now))
        finally:
            con.close()
        return
    probe = "SELECT 1 FROM information_schema.columns WHERE table_name = 'chatrooms' AND column_name = 'checked_at'"
    found = subprocess.run(psql(url, "-At", "-c", probe), capture_output=True, text=True).stdout.strip()
    if found:
        run_psql(url, *(statement.format(now=now) for statement in CHECKED))


def run_psql(url: str, *statements: str) -> None:
    """Runs each statement in turn (one session, none in a transaction block)."""
    args = [arg for statement in statements for arg in ("-c", statement)]
    if subprocess.run(psql(url, *args)).returncode:
        raise BenchError(f"psql failed on: {'; '.join(statements)}")


@contextlib.contextmanager
def postgres_database(admin_url: str):
    """A fresh bench database beside `admin_url`'s, dropped afterwards."""
    url = urlunsplit(urlsplit(admin_url)._replace(path="/" + BENCH_DATABASE))
    quiet = "SET client_min_messages = warning"
    drop = f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"
    run_psql(admin_url, quiet, drop, f"CREATE DATABASE {BENCH_DATABASE}")
    try:
        yield url
    finally:
        run_psql(admin_url, quiet, drop)


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 30) -> str:
    """The log's last lines, a Rust error's backtrace left out."""
    try:
        text = path.read_text(errors="replace").split("\nStack backtrace:")[0]
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def run_logged(cmd: list, env: dict, log: Path) -> None:
    with open(log, "ab") as out:
        done = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        raise BenchError(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{log_tail(log)}")


def start(cmd: list, log: Path, env: dict | None = None) -> subprocess.Popen:
    """In a session of its own: Ctrl-C reaches only this script, which stops it in order."""
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_env_file(path: Path) -> dict:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def wait_for_synapse(proc: subprocess.Popen, port: int, log: Path) -> None:
    """`synapse.sh wait` gives up after about 30 s; a first start may take longer."""
    for _ in range(4):
        if subprocess.run([SYNAPSE_SH, "wait", f"http://127.0.0.1:{port}"]).returncode == 0:
            return
        if proc.poll() is not None:
            raise BenchError(f"Synapse exited ({proc.returncode}):\n{log_tail(log)}")
    raise BenchError(f"Synapse did not answer within 2 minutes:\n{log_tail(log)}")


@contextlib.contextmanager
def synapse(tmp: Path, service_port: int):
    """A Synapse from scripts/synapse.sh; yields its process and the env file for the service."""
    directory, port = tmp / "synapse", free_port()
    env = {**os.environ, "SYNAPSE_APPSERVICE_URL": f"http://127.0.0.1:{service_port}"}
    log = tmp / "synapse.log"
    run_logged([SYNAPSE_SH, "config", directory, str(port)], env, log)
    print(f"starting Synapse on port {port}", flush=True)
    proc = start([SYNAPSE_SH, "start", directory], log)  # the script execs Synapse: same pid
    try:
        wait_for_synapse(proc, port, log)
        yield proc, read_env_file(directory / "env")
    finally:
        stop(proc)


def wait_for_service(proc: subprocess.Popen, base: str, token: str, log: Path) -> None:
    """Until a room is served with the API token (a refusal or an error stops the run)."""
    request = urllib.request.Request(f"{base}/chatrooms/1", headers={"API-TOKEN": token})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the service exited ({proc.returncode}):\n{log_tail(log)}")
        try:
            with urllib.request.urlopen(request, timeout=5):
                return
        except urllib.error.HTTPError as e:
            raise BenchError(f"GET /chatrooms/1 answered {e.code}: {e.read()[:500]!r}\n{log_tail(log)}")
        except OSError:
            time.sleep(0.2)
    raise BenchError(f"the service did not answer within 120 s:\n{log_tail(log)}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no {field} in /proc/{pid}/status")


def export_everything(bench, pid: int) -> dict:
    """GET /export read to its end, after the load: how long it takes, how much it holds and how
    far the service's memory rises above what it used just before (its peak is reset first)."""
    before = rss_mib(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    request = urllib.request.Request(f"{bench.base}/export", headers={"API-TOKEN": bench.token})
    started, size, lines = time.monotonic(), 0, 0
    with urllib.request.urlopen(request, timeout=600) as response:
        while chunk := response.read(1 << 16):
            size += len(chunk)
            lines += chunk.count(b"\n")
    return {
        "seconds": round(time.monotonic() - started, 1),
        "lines": lines,
        "mib": round(size / (1 << 20), 1),
        "rss_before_mib": round(before, 1),
        "peak_rise_mib": round(rss_mib(pid, "VmHWM") - before, 1),
    }


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM in /proc/{pid}/status")


# ---------------------------------------------------------------- the load


@dataclass
class Sample:
    kind: str
    at: float  # scheduled send, wall-clock seconds
    latency: float  # seconds from the scheduled send to the end of the response
    lag: float  # seconds from the scheduled send to the actual one
    status: str  # the HTTP status, or the exception's name


@dataclass
class Run:
    launched: float  # when the service was started, wall-clock seconds
    samples: list[Sample]
    before: dict  # usage() as the measured phase began
    after: dict  # and as it ended
    peak_rss_mib: float
    export: dict  # export_everything()


def request_picker(layout: Layout, mix: list[float]):
    rng = random.Random(SEED)

    def pick() -> tuple[str, str]:
        kind = rng.choices(KINDS, weights=mix)[0]
        if kind == "get":
            return kind, f"/chatrooms/{rng.randint(1, layout.rooms)}"
        if kind == "userrooms":
            return kind, f"/users/{layout.first_busy_user + rng.randrange(BUSY_USERS)}/chatrooms?limit=50"
        org = rng.randint(1, layout.organizations)
        if kind == "listall":
            return kind, f"/chatrooms?organization_id={org}&all=true"
        offset = 50 * rng.randrange(math.ceil(layout.rooms_of(org) / 50))
        return kind, f"/chatrooms?organization_id={org}&limit=50&offset={offset}"

    return pick


async def fire(session, path: str, kind: str, scheduled: float, to_wall: float, samples: list) -> None:
    clock = asyncio.get_running_loop().time
    sent = clock()
    try:
        async with session.get(path) as response:
            await response.read()
            status = str(response.status)
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        status = type(e).__name__
    samples.append(Sample(kind, scheduled + to_wall, clock() - scheduled, sent - scheduled, status))


async def open_loop(session, rate: float, seconds: float, pick) -> list[Sample]:
    """Sends rate × seconds requests on a fixed schedule; returns when all have finished."""
    loop = asyncio.get_running_loop()
    to_wall = time.time() - loop.time()
    samples: list[Sample] = []
    tasks = []
    begin = loop.time() + 0.05
    for i in range(int(rate * seconds)):
        scheduled = begin + i / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        kind, path = pick()
        tasks.append(asyncio.create_task(fire(session, path, kind, scheduled, to_wall, samples)))
    await asyncio.gather(*tasks)
    return samples


def usage(pids: dict) -> dict:
    return {"at": time.monotonic(), **{name: cpu_seconds(pid) for name, pid in pids.items()}}


async def load(base: str, token: str, args, pick, pids: dict):
    """Warm-up (discarded), then the measured phase; the CPU use of `pids` across the latter."""
    session = aiohttp.ClientSession(
        base,
        headers={"API-TOKEN": token},
        connector=aiohttp.TCPConnector(limit=256),
        timeout=aiohttp.ClientTimeout(total=30),
    )
    async with session:
        await open_loop(session, args.rate, args.warmup, pick)
        before = usage(pids)
        samples = await open_loop(session, args.rate, args.duration, pick)
        after = usage(pids)
    return samples, before, after


# ---------------------------------------------------------------- periodic passes


def log_records(path: Path):
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "timestamp" in record:
            record["at"] = datetime.fromisoformat(record["timestamp"]).timestamp()
            yield record


def pass_windows(records: list[dict], launched: float, interval_s: float, end: float) -> tuple[list, bool]:
    """[(start, end)] of the periodic passes (see the header), and whether a pass was seen."""
    queued = [r["at"] for r in records if r.get("message") == "drift checks queued"]
    outcomes = [r["at"] for r in records if "chatroom" in r or "space_of" in r]
    if interval_s <= 0:
        return [], False
    windows, start = [], launched + interval_s - PASS_START_MARGIN_S
    for done in [*queued, None]:
        if start >= end:
            break
        next_start = math.inf if done is None else done + interval_s - PASS_START_MARGIN_S
        last = [t for t in outcomes if start <= t < next_start]
        windows.append((start, max([end if done is None else done, *last])))
        start = next_start
    return windows, bool(queued)


# ---------------------------------------------------------------- figures


def percentile(ordered: list[float], p: float) -> float:
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def failures(samples: list[Sample]) -> dict:
    return dict(Counter(s.status for s in samples if not s.status.startswith("2")))


def summarize(samples: list[Sample]) -> dict:
    if not samples:
        return {"count": 0, "errors": 0, "statuses": {}, "p50_ms": None, "p99_ms": None, "max_ms": None}
    latencies = sorted(s.latency for s in samples)
    errors = failures(samples)
    return {
        "count": len(samples),
        "errors": sum(errors.values()),
        "statuses": errors,
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(latencies[-1]),
    }


def phase_of(samples: list[Sample]) -> tuple[float, float]:
    """From the first scheduled send to the last response, wall-clock seconds."""
    return min(s.at for s in samples), max(s.at + s.latency for s in samples)


def pass_state(interval_ms: int, windows: list, detected: bool) -> str:
    if interval_ms == 0:
        return "off"
    if not windows:
        return "none in phase"
    return "detected" if detected else "not detected"


def pass_figures(samples: list[Sample], interval_ms: int, windows: list, detected: bool) -> dict:
    """Reads scheduled inside the windows; undetected windows: the overall longest read."""
    phase = phase_of(samples)
    state = pass_state(interval_ms, windows, detected)
    inside = [s for s in samples if any(a <= s.at <= b for a, b in windows)]
    stall = {"detected": inside, "not detected": samples}.get(state, [])
    return {
        "interval_ms": interval_ms,
        "state": state,
        "windows": [(round(a - phase[0], 2), round(b - phase[0], 2)) for a, b in windows],
        "seconds_in_phase": round(sum(max(0.0, min(b, phase[1]) - max(a, phase[0])) for a, b in windows), 1),
        "reads": len(inside),
        "errors": sum(failures(inside).values()),
        "longest_read_ms": ms(max(s.latency for s in stall)) if stall else None,
    }


def database_result(run: Run, build_s: float, passes: dict) -> dict:
    samples, before, after = run.samples, run.before, run.after
    elapsed = after["at"] - before["at"]
    synapse_s = after["synapse"] - before["synapse"]
    return {
        "build_seconds": round(build_s, 1),
        "requests": {kind: summarize([s for s in samples if s.kind == kind]) for kind in KINDS},
        "longest_read_ms": ms(max(s.latency for s in samples)),
        "periodic_pass": passes,
        "service_peak_rss_mib": round(run.peak_rss_mib, 1),
        "service_cpu_percent": round(100 * (after["service"] - before["service"]) / elapsed, 1),
        "synapse_cpu_seconds": round(synapse_s, 2),
        "synapse_cpu_percent": round(100 * synapse_s / elapsed, 2),
        "client_send_lag_p99_ms": ms(percentile(sorted(s.lag for s in samples), 99)),
        "export": run.export,
    }


# ---------------------------------------------------------------- one database


@dataclass
class Bench:
    args: argparse.Namespace
    layout: Layout
    tmp: Path
    binary: Path
    env: dict  # the service's, without DATABASE_URL
    synapse_pid: int

    @property
    def base(self) -> str:
        return "http://" + self.env["CHATROOMS_BIND_ADDR"]

    @property
    def token(self) -> str:
        return self.env["CHATROOMS_API_TOKENS"]


def service_env(synapse_env: dict, port: int) -> dict:
    env = dict(os.environ)
    env.setdefault("CHATROOMS_JWT_SECRET", secrets.token_hex(32))
    env.setdefault("CHATROOMS_CREDENTIALS_SECRET", secrets.token_hex(32))
    env.setdefault("CHATROOMS_WEBHOOKS_ALLOW_PRIVATE", "true")
    env.setdefault("CHATROOMS_RECONCILE_INTERVAL_MS", DEFAULT_INTERVAL_MS)
    env["RUST_LOG"] = f"{os.environ.get('RUST_LOG', DEFAULT_RUST_LOG)},{SYNC_DEBUG}"
    env.update(synapse_env)
    env.update({
        "CHATROOMS_BIND_ADDR": f"127.0.0.1:{port}",
        "CHATROOMS_API_TOKENS": secrets.token_hex(16),
        "CHATROOMS_LOG_FORMAT": "json",
    })
    return env


def build_database(bench: Bench, db: str, env: dict, log: Path) -> float:
    started = time.monotonic()
    run_logged([bench.binary, "migrate"], env, log)
    tables = bench_tables(bench.layout, env["CHATROOMS_MATRIX_SERVER_NAME"])
    url = env["DATABASE_URL"]
    if db == "sqlite":
        fill_sqlite(url.removeprefix("sqlite://"), tables)
    else:
        fill_postgres(url, tables)
    if bench.args.checked == "recent":
        mark_checked(db, url, int(time.time() * 1000))
    seconds = time.monotonic() - started
    layout = bench.layout
    print(f"{db}: built {layout.rooms} rooms, {layout.organizations} organizations and "
          f"{layout.rooms * layout.roles} role entries in {seconds:.1f} s", flush=True)
    return seconds


def measure(bench: Bench, db: str, env: dict, log: Path) -> Run:
    """Runs the service on the built database under the load."""
    args = bench.args
    launched = time.time()
    proc = start([bench.binary, "serve"], log, env)
    try:
        wait_for_service(proc, bench.base, bench.token, log)
        print(f"{db}: {args.warmup:g} s warm-up, then {args.duration:g} s at {args.rate:g} requests/s",
              flush=True)
        pids = {"service": proc.pid, "synapse": bench.synapse_pid}
        pick = request_picker(bench.layout, args.mix)
        samples, before, after = asyncio.run(load(bench.base, bench.token, args, pick, pids))
        peak = peak_rss_mib(proc.pid)
        print(f"{db}: exporting everything", flush=True)
        return Run(launched, samples, before, after, peak, export_everything(bench, proc.pid))
    finally:
        stop(proc)


def bench_database(bench: Bench, db: str) -> dict:
    log = bench.tmp / f"service-{db}.log"
    if db == "sqlite":
        database = contextlib.nullcontext(f"sqlite://{bench.tmp}/bench.db")
    else:
        database = postgres_database(bench.args.postgres_url)
    with database as url:
        env = {**bench.env, "DATABASE_URL": url}
        build_s = build_database(bench, db, env, log)
        run = measure(bench, db, env, log)
    interval_ms = int(env["CHATROOMS_RECONCILE_INTERVAL_MS"])
    end = phase_of(run.samples)[1]
    windows, detected = pass_windows(list(log_records(log)), run.launched, interval_ms / 1000, end)
    passes = pass_figures(run.samples, interval_ms, windows, detected)
    return database_result(run, build_s, passes)


# ---------------------------------------------------------------- report


def errors_cell(summary: dict) -> str:
    if not summary["errors"]:
        return "0"
    seen = ", ".join(f"{status}×{n}" for status, n in sorted(summary["statuses"].items()))
    return f"{summary['errors']} ({seen})"


def markdown(results: dict) -> str:
    lines = [
        "| database | request | count | errors | p50 ms | p99 ms | max ms |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for db, result in results.items():
        for kind, k in result["requests"].items():
            cells = [db, kind, k["count"], errors_cell(k), k["p50_ms"], k["p99_ms"], k["max_ms"]]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += [
        "",
        "| database | build s | periodic pass: windows (s of phase) | reads in passes | errors in passes "
        "| longest read in a pass ms | longest read ms | service peak RSS MiB | service CPU % "
        "| Synapse CPU s (% of a core) | client send lag p99 ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for db, r in results.items():
        p = r["periodic_pass"]
        windows = p["state"]
        if p["windows"]:
            windows += f": {len(p['windows'])} ({p['seconds_in_phase']} s)"
        stall = {"detected": p["longest_read_ms"], "not detected": f"{p['longest_read_ms']} (overall)"}
        stall = stall.get(p["state"], "n/a")
        lines.append(
            f"| {db} | {r['build_seconds']} | {windows} | {p['reads']} | {p['errors']} | {stall} "
            f"| {r['longest_read_ms']} | {r['service_peak_rss_mib']} | {r['service_cpu_percent']} "
            f"| {r['synapse_cpu_seconds']} ({r['synapse_cpu_percent']} %) | {r['client_send_lag_p99_ms']} |"
        )
    lines += [
        "",
        "| database | export of everything: s | lines | MiB | service RSS before, MiB | its rise during the export, MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for db, r in results.items():
        e = r["export"]
        lines.append(f"| {db} | {e['seconds']} | {e['lines']} | {e['mib']} | {e['rss_before_mib']} | {e['peak_rise_mib']} |")
    return "\n".join(lines)


def write_json(path: Path, args, env: dict, results: dict) -> None:
    settings = {
        "rooms": args.rooms,
        "organizations": args.organizations,
        "role_entries": args.rooms * args.roles_per_room,
        "rate_per_s": args.rate,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "mix_get_list50_listall_userrooms": args.mix,
        "reconcile_interval_ms": int(env["CHATROOMS_RECONCILE_INTERVAL_MS"]),
        "binary": str(args.bin),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": settings, "results": results}, indent=2) + "\n")


def copy_binary(binary: Path, tmp: Path) -> Path:
    """A private copy: a rebuild during the run cannot swap or remove it."""
    if not binary.is_file():
        raise BenchError(f"no service binary at {binary} (cargo build --release, or pass --bin)")
    return Path(shutil.copy2(binary, tmp / "chatrooms"))


def exit_on_signal(signum, _frame):
    sys.exit(128 + signum)


def main() -> int:
    args = parse_args()
    args.bin = args.bin.resolve()
    signal.signal(signal.SIGTERM, exit_on_signal)
    signal.signal(signal.SIGHUP, exit_on_signal)
    layout = Layout(args.rooms, args.organizations, args.roles_per_room)
    results = {}
    try:
        with contextlib.ExitStack() as cleanup:
            tmp = Path(tempfile.mkdtemp(prefix="chatrooms-bench-"))
            cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
            binary = copy_binary(args.bin, tmp)
            port = free_port()
            synapse_proc, synapse_env = cleanup.enter_context(synapse(tmp, port))
            env = service_env(synapse_env, port)
            bench = Bench(args, layout, tmp, binary, env, synapse_proc.pid)
            for db in args.databases:
                results[db] = bench_database(bench, db)
    except BenchError as e:
        print(f"bench-scale: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench-scale: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    print()
    print(markdown(results))
    write_json(args.json.resolve(), args, env, results)
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
