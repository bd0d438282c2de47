r"""Burst benchmark of the chatrooms service: many room creations at the same moment.

Run it through scripts/bench-burst.sh (which makes sure .venv has Synapse and aiohttp);
`scripts/bench-burst.sh --help` lists the options:

    scripts/bench-burst.sh            # 200 rooms, 2 fresh users each, SQLite, target/release/chatrooms
    scripts/bench-burst.sh --bin target/debug/chatrooms --rooms 20 --database postgres
    scripts/bench-burst.sh --rooms 200 --check-rate 10      # then what a drift check costs
    CHATROOMS_SYNC_CONCURRENCY=16 scripts/bench-burst.sh      # trying a setting

It:

1. makes a fresh, empty database (`chatrooms migrate` on a new SQLite file, or a new Postgres
   database chatrooms_burst beside --postgres-url, dropped at the end), starts one fresh Synapse
   (scripts/synapse.sh, through bench_scale.py's helpers) and `chatrooms serve` against both;
2. fires all --rooms `POST /chatrooms` at once (one aiohttp session, no connection limit): room
   i in an organization of its own (a random base + i, so each also needs its space), with
   --users-per-room fresh users (the first an admin, the rest assigned users), each of whom
   needs registering. It records each answer's status and its latency from the burst's start;
3. polls `GET /chatrooms/{id}` of every created room and `GET /organizations/{id}` of its
   organization (the space is a sync of its own, which a room's syncStatus does not wait for)
   while not yet settled, a round every 0.5 s at most (20 requests in flight at most), until
   each is `synced` or `failed` or --timeout has passed since the burst's start. A room's or
   space's time-to-synced runs from the burst's start to the first answer that showed it synced
   (for a room answered 201, its POST's);
4. reads what it cost the homeserver: the service's `/metrics` at the end (histogram
   chatrooms_homeserver_request_duration_seconds: calls and mean duration per operation and
   outcome); from the service's debug log ("homeserver call" lines, src/matrix/synapse.rs) the
   calls that got no answer within CHATROOMS_HOMESERVER_TIMEOUT_MS (outcome unreachable after at
   least 99 % of it: timed out) and those answered 403, per operation ("n/a" for one never
   logged), and the rooms and spaces retired as half-made (src/sync/reconciler.rs's warning);
   Synapse's and the service's CPU seconds (utime+stime from /proc) from the burst's start to
   the end of the polling, which is itself about 2 × rooms GETs a second at first;
5. with --check-rate R (off by default): what a drift check of a real, in-sync room costs the
   homeserver. Once every room and space has settled it waits until the service has made no
   homeserver call for --check-settle seconds (a drift check queued by the homeserver's pushes
   shows as synced until it runs, and may repair the room), then until Synapse's CPU over
   successive 10 s windows has stopped falling (it works on for a minute or more after a burst;
   --settle-max at most), measures Synapse's (and the service's) idle CPU over --baseline
   seconds, then --check-rounds times: forces one sync of every synced room, `POST
   /chatrooms/{id}/sync` open loop at R a second (each sent at its scheduled time whether or
   not earlier ones have answered), polls the rooms and their organizations' spaces until all
   have settled again (a forced sync also queues the room's space, which the worker syncs after
   the answer) and the log has shown no homeserver call for 1 s, and measures another idle
   baseline (the next round's before). A forced sync of a room in step reads its state from the
   homeserver and writes nothing: the homeserver work of a periodic drift check, here of one
   room and of its space (each burst room has a space of its own). A round's phase runs from
   its first send until all settled; its CPU less the mean of its two baselines' rates × its
   length is the checks' net cost (less the higher or the lower rate: the range shown). From
   the service's log: the homeserver calls of the phase by operation and by whether they read a
   checked room, its space or something else (the call's span names the Matrix room), and as a
   check of the baselines the calls made during them and the periodic passes begun ("drift
   checks queued"). A check is one read of a room or a space (what
   CHATROOMS_RECONCILE_ROOMS_PER_SECOND paces): Synapse CPU ms per check is the net cost over
   the phase's homeserver calls. It reports that per round and over all rounds, and what it
   implies at 1, 2 and 5 checks a second and for 10,000 rooms read once a day (10,000 / 86,400
   checks a second; their spaces are reads too), as % of one core. Unless
   CHATROOMS_RECONCILE_INTERVAL_MS is set, the periodic drift pass is turned off (0) for such a
   run, so that none falls in a window; R above CHATROOMS_RATE_LIMIT_BACKEND_PER_SECOND (200)
   gets 429s.

Environment: every CHATROOMS_* variable (and RUST_LOG, to which the sync and homeserver-call
debug directives are added) reaches the service, so settings can be tried; its address,
database, API token, log format and homeserver settings are the bench's own. The periodic drift
pass keeps the service's default interval unless CHATROOMS_RECONCILE_INTERVAL_MS is set (or
--check-rate is given: then it is off).

Results: markdown tables on stdout and JSON in --json. Everything started (service, Synapse,
temp dir, the Postgres database) is cleaned up at the end, on error and on Ctrl-C.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp

import bench_scale as scale
from bench_scale import ROOT, BenchError

BURST_DATABASE = "chatrooms_burst"
CALLS_METRIC = "chatrooms_homeserver_request_duration_seconds"
MATRIX_DEBUG = "chatrooms::matrix=debug"
DEFAULT_HOMESERVER_TIMEOUT_MS = 15_000  # src/config.rs
HALF_MADE = "the homeserver left this room half-made"
POLL_EVERY_S = 0.5
POLL_IN_FLIGHT = 20
SETTLED = ("synced", "failed")
PASS_QUEUED = "drift checks queued"  # src/sync/worker.rs
# Synapse works on for a minute or more after a burst: the check phase starts once its CPU over
# successive windows of this many seconds has stopped falling and is near the least seen.
IDLE_WINDOW_S = 10.0
IDLE_STEADY_POINTS = 0.25  # % of a core
# Check rates (a second) at which the drift-check phase states the homeserver load: JSON key, label.
LOAD_RATES = {
    "1_per_s": (1.0, "1 check/s"),
    "2_per_s": (2.0, "2 checks/s"),
    "5_per_s": (5.0, "5 checks/s"),
    "10000_rooms_once_a_day": (10_000 / 86_400, f"10,000 rooms read once a day ({10_000 / 86_400:.3f} checks/s)"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench-burst.sh",
        description="Fires many room creations at once at a fresh service and Synapse, "
        "then measures how fast the rooms converge and what it cost the homeserver.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Every CHATROOMS_* variable reaches the service.",
    )
    parser.add_argument("--bin", type=Path, default=ROOT / "target/release/chatrooms", help="service binary")
    parser.add_argument("--rooms", type=int, default=200, help="room creations in the burst")
    parser.add_argument("--users-per-room", type=int, default=2,
                        help="fresh users per room: one admin, the rest assigned users")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help=f"a Postgres database to connect to; {BURST_DATABASE} is made beside it and dropped after",
    )
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds from the burst's start to wait for every room and space to settle")
    parser.add_argument("--check-rate", type=float, default=0.0,
                        help="rooms a second whose sync is forced once settled, to measure what a drift "
                             "check costs the homeserver (0: no such phase)")
    parser.add_argument("--baseline", type=float, default=20.0,
                        help="seconds of idle CPU measured before the first round of forced syncs and after each")
    parser.add_argument("--check-rounds", type=int, default=2,
                        help="rounds of forced syncs (each every synced room once, then a baseline)")
    parser.add_argument("--check-settle", type=float, default=5.0,
                        help="seconds without a homeserver call the service must have been before the first "
                             "baseline")
    parser.add_argument("--settle-max", type=float, default=300.0,
                        help="seconds to wait at most for Synapse's CPU to stop falling before the first baseline")
    parser.add_argument("--service-log", type=Path, help="keep a copy of the service's log here")
    parser.add_argument("--json", type=Path, default=ROOT / "target/bench-burst.json", help="JSON output")
    args = parser.parse_args()
    if args.rooms < 1 or args.users_per_room < 1 or args.timeout <= 0:
        parser.error("need at least one room and one user per room, and a positive timeout")
    if args.check_rate < 0 or args.check_rate and (args.baseline <= 0 or args.check_rounds < 1
                                                     or args.check_settle < 0):
        parser.error("the check phase needs a rate >= 0, a positive baseline and at least one round")
    return args


# ---------------------------------------------------------------- database and service


@contextlib.contextmanager
def database(kind: str, tmp: Path, admin_url: str):
    """The service's DATABASE_URL: a new SQLite file, or a fresh Postgres database dropped after."""
    if kind == "sqlite":
        yield f"sqlite://{tmp}/burst.db"
        return
    url = urlunsplit(urlsplit(admin_url)._replace(path="/" + BURST_DATABASE))
    quiet = "SET client_min_messages = warning"
    drop = f"DROP DATABASE IF EXISTS {BURST_DATABASE} WITH (FORCE)"
    scale.run_psql(admin_url, quiet, drop, f"CREATE DATABASE {BURST_DATABASE}")
    try:
        yield url
    finally:
        scale.run_psql(admin_url, quiet, drop)


def burst_env(synapse_env: dict, port: int, database_url: str, check_phase: bool) -> dict:
    env = scale.service_env(synapse_env, port)
    if "CHATROOMS_RECONCILE_INTERVAL_MS" not in os.environ:
        if check_phase:
            env["CHATROOMS_RECONCILE_INTERVAL_MS"] = "0"  # no periodic pass inside the windows
        else:
            del env["CHATROOMS_RECONCILE_INTERVAL_MS"]  # bench_scale's 20 s: the service's own default
    env["RUST_LOG"] += "," + MATRIX_DEBUG
    env["DATABASE_URL"] = database_url
    return env


def wait_until_up(proc, base: str, log: Path) -> None:
    """Until /healthz answers (bench_scale's wait asks for room 1, which an empty database lacks)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the service exited ({proc.returncode}):\n{scale.log_tail(log)}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5):
                return
        except OSError:
            time.sleep(0.2)
    raise BenchError(f"the service did not answer within 120 s:\n{scale.log_tail(log)}")


# ---------------------------------------------------------------- the burst


@dataclass
class Sync:
    """Where a room's or a space's syncStatus is read, and what was seen."""

    path: str
    state: str | None = None  # the last syncStatus seen
    settled: float | None = None  # seconds from the burst's start to the first synced or failed seen
    matrix_id: str | None = None  # the room's or space's Matrix id, once an answer showed it

    def observe(self, state: str, at: float, answer: dict | None = None) -> None:
        self.state = state
        if answer:
            self.matrix_id = answer.get("matrixRoomID") or answer.get("matrixSpaceID") or self.matrix_id
        if state in SETTLED:
            self.settled = at


@dataclass
class Room:
    status: str  # of its POST: the HTTP status, or the exception's name
    answered: float  # seconds from the burst's start to the POST's answer
    sync: Sync | None = None  # the room's, after a 201 or 202
    space: Sync | None = None  # its organization's, likewise


@dataclass
class Window:
    """A stretch of the run: wall-clock bounds (to match the log's timestamps) and CPU used."""

    start: float
    end: float
    cpu_seconds: dict  # synapse, service

    @property
    def seconds(self) -> float:
        return self.end - self.start


def mark(pids: dict) -> dict:
    return {"wall": time.time(), **scale.usage(pids)}


def window(before: dict, after: dict, pids: dict) -> Window:
    return Window(before["wall"], after["wall"], {name: after[name] - before[name] for name in pids})


@dataclass
class CheckRound:
    """One round of the drift-check phase: one forced sync per room, between two idle baselines
    (the one after is the next round's before)."""

    before: Window
    phase: Window  # from the first forced sync's send until every room and space settled again
    after: Window
    answered: float  # wall-clock: when the last forced sync answered
    answers: list[tuple[str, float, float]]  # status (or exception), latency s, send lag s
    polls: Counter
    kinds: dict  # Matrix id: "room" or "space", of those checked (to tell the calls apart)


@dataclass
class Burst:
    rooms: list[Room]
    polls: Counter  # by answer: the HTTP status, or the exception's name
    cpu_seconds: dict  # synapse, service: from the burst's start to the end of the polling
    metrics: str  # the service's /metrics at the end
    settled: float  # wall-clock: the end of the polling
    checks: list[CheckRound]  # the drift-check phase's rounds (none without --check-rate)
    settling: list[float]  # Synapse's CPU (% of a core) over the windows waited before the phase


def room_body(i: int, users_per_room: int, org_base: int, user_base: int) -> dict:
    users = [user_base + i * users_per_room + j for j in range(users_per_room)]
    return {"organizationID": org_base + i, "name": f"Burst {i}", "admins": users[:1], "assignedUsers": users[1:]}


async def create(session, body: dict, since) -> Room:
    try:
        async with session.post("/chatrooms", json=body) as response:
            answer = await response.json(content_type=None) if response.status in (201, 202) else None
            room = Room(str(response.status), since())
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        return Room(type(e).__name__, since())
    if answer is not None:
        room.sync = Sync(f"/chatrooms/{answer['id']}")
        room.sync.observe(answer["syncStatus"], room.answered, answer)
        room.space = Sync(f"/organizations/{body['organizationID']}")
    return room


async def converge(session, syncs: list[Sync], since, timeout: float, proc, log: Path) -> Counter:
    """Polls until each is settled or the timeout; counts the polls by answer."""
    gate = asyncio.Semaphore(POLL_IN_FLIGHT)
    polls = Counter()

    async def poll(sync: Sync) -> None:
        async with gate:
            try:
                async with session.get(sync.path) as response:
                    polls[str(response.status)] += 1
                    if response.status == 200:
                        answer = await response.json()
                        sync.observe(answer["syncStatus"], since(), answer)
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                polls[type(e).__name__] += 1

    while (unsettled := [s for s in syncs if s.settled is None]) and since() < timeout:
        if proc.poll() is not None:
            raise BenchError(f"the service exited ({proc.returncode}):\n{scale.log_tail(log)}")
        round_started = since()
        await asyncio.gather(*map(poll, unsettled))
        await asyncio.sleep(max(0.0, POLL_EVERY_S - (since() - round_started)))
    return polls


async def burst(base: str, token: str, args, bodies: list[dict], proc, pids: dict, log: Path) -> Burst:
    session = aiohttp.ClientSession(
        base,
        headers={"API-TOKEN": token},
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=args.timeout),
    )
    async with session:
        clock = asyncio.get_running_loop().time
        before = scale.usage(pids)
        started = clock()

        def since() -> float:
            return clock() - started

        print(f"burst: {len(bodies)} POST /chatrooms at once", flush=True)
        rooms = await asyncio.gather(*(create(session, body, since) for body in bodies))
        print(f"all answered after {since():.1f} s; polling until the rooms and spaces settle", flush=True)
        syncs = [sync for room in rooms for sync in (room.sync, room.space) if sync]
        polls = await converge(session, syncs, since, args.timeout, proc, log)
        after = scale.usage(pids)
        settled = time.time()
        async with session.get("/metrics") as response:
            metrics = await response.text()
        checks, settling = [], []
        if args.check_rate:
            checks, settling = await check_phase(session, rooms, args, proc, pids, log)
    return Burst(rooms, polls, {name: after[name] - before[name] for name in pids}, metrics, settled, checks,
                 settling)


# ---------------------------------------------------------------- the drift-check phase


async def force_sync(session, path: str, scheduled: float, answers: list) -> None:
    clock = asyncio.get_running_loop().time
    sent = clock()
    try:
        async with session.post(f"{path}/sync") as response:
            await response.read()
            status = str(response.status)
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        status = type(e).__name__
    answers.append((status, clock() - scheduled, sent - scheduled))


async def forced_syncs(session, paths: list[str], rate: float) -> list:
    """One forced sync per path, open loop: each sent at its scheduled time; returns when all answered."""
    loop = asyncio.get_running_loop()
    answers, tasks = [], []
    begin = loop.time()
    for i, path in enumerate(paths):
        scheduled = begin + i / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        tasks.append(asyncio.create_task(force_sync(session, path, scheduled, answers)))
    await asyncio.gather(*tasks)
    return answers


class LogWatch:
    """Follows the service's log as it grows: when it last logged a homeserver call."""

    def __init__(self, path: Path):
        self.path, self.offset, self.rest = path, 0, b""
        self.last_call = 0.0  # wall-clock

    def last_call_at(self) -> float:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        self.offset += len(chunk)
        lines = (self.rest + chunk).split(b"\n")
        self.rest = lines.pop()  # a line still being written
        for line in lines:
            if b'"homeserver call"' not in line:
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                at = datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
                self.last_call = max(self.last_call, at)
        return self.last_call


async def wait_quiet(watch: LogWatch, quiet_s: float, cap_s: float, proc, log: Path) -> float:
    """Until the service has logged no homeserver call for quiet_s seconds (and quiet_s have
    passed), cap_s at most; the seconds waited."""
    began = time.time()
    while (now := time.time()) - max(began, watch.last_call_at()) < quiet_s:
        if proc.poll() is not None:
            raise BenchError(f"the service exited ({proc.returncode}):\n{scale.log_tail(log)}")
        if now - began >= cap_s:
            print(f"check phase: the service still calls the homeserver after {cap_s:g} s; going on",
                  flush=True)
            break
        await asyncio.sleep(0.25)
    return time.time() - began


async def baseline(seconds: float, pids: dict) -> Window:
    start = mark(pids)
    await asyncio.sleep(seconds)
    return window(start, mark(pids), pids)


async def wait_idle(pids: dict, cap_s: float) -> list[float]:
    """Until Synapse's CPU over the last IDLE_WINDOW_S has stopped falling and is within
    IDLE_STEADY_POINTS of the least seen, cap_s at most; the rates seen (% of a core)."""
    began, rates = time.time(), []
    while True:
        rates.append(round(100 * idle_rate(await baseline(IDLE_WINDOW_S, pids), "synapse"), 2))
        stopped_falling = len(rates) >= 2 and rates[-2] - rates[-1] <= IDLE_STEADY_POINTS
        if stopped_falling and rates[-1] - min(rates) <= IDLE_STEADY_POINTS:
            return rates
        if time.time() - began >= cap_s:
            print(f"check phase: Synapse's CPU still not steady after {cap_s:g} s; going on", flush=True)
            return rates


async def check_phase(session, rooms: list[Room], args, proc, pids: dict, log: Path) -> tuple[list, list]:
    checked = [room for room in rooms if room.sync and room.sync.state == "synced"]
    unsettled = sum(sync.settled is None for room in rooms for sync in (room.sync, room.space) if sync)
    if unsettled:
        print(f"check phase: {unsettled} rooms or spaces never settled; the baselines may not be idle",
              flush=True)
    if not checked:
        raise BenchError("the check phase has no synced room to check")
    paths = [room.sync.path for room in checked]
    clock = asyncio.get_running_loop().time
    watch = LogWatch(log)
    # "synced" does not mean idle: a drift check the homeserver's pushes queued shows as synced
    # until it runs, and may repair the room.
    waited = await wait_quiet(watch, args.check_settle, args.timeout, proc, log)
    print(f"check phase: the service quiet after {waited:.1f} s; waiting for Synapse's CPU to stop falling",
          flush=True)
    settling = await wait_idle(pids, args.settle_max)
    print(f"check phase: Synapse's CPU over {IDLE_WINDOW_S:g} s windows: {' → '.join(map(str, settling))} % "
          f"of a core; {args.baseline:g} s baseline, then {args.check_rounds} × "
          f"({len(paths)} forced syncs at {args.check_rate:g}/s, {args.baseline:g} s baseline)", flush=True)
    before = await baseline(args.baseline, pids)
    rounds = []
    for n in range(1, args.check_rounds + 1):
        start = mark(pids)
        began = clock()
        answers = await forced_syncs(session, paths, args.check_rate)
        answered = time.time()
        # Fresh records: the room (if answered 202) and its space (queued by the forced sync).
        again = [Sync(sync.path) for room in checked for sync in (room.sync, room.space) if sync]
        polls = await converge(session, again, lambda: clock() - began, args.timeout, proc, log)
        if unsettled_now := sum(sync.settled is None for sync in again):
            raise BenchError(f"round {n}: {unsettled_now} rooms or spaces did not settle after the forced syncs")
        await wait_quiet(watch, 1.0, args.timeout, proc, log)  # anything the syncs left running, in the phase
        phase = window(start, mark(pids), pids)
        after = await baseline(args.baseline, pids)
        kinds = {sync.matrix_id: kind for room in checked
                 for kind, sync in (("room", room.sync), ("space", room.space)) if sync and sync.matrix_id}
        rounds.append(CheckRound(before, phase, after, answered, answers, polls, kinds))
        statuses = Counter(status for status, _, _ in answers)
        idle = [w.cpu_seconds["synapse"] / w.seconds * 100 for w in (before, after)]
        print(f"round {n}: {counts_cell(statuses)} in {answered - phase.start:.1f} s, settled after "
              f"{phase.seconds:.1f} s; Synapse {phase.cpu_seconds['synapse']:.2f} CPU s "
              f"(idle {idle[0]:.1f} % of a core before, {idle[1]:.1f} % after)", flush=True)
        before = after
    return rounds, settling


# ---------------------------------------------------------------- homeserver figures

SAMPLE = re.compile(r"^(\w+)\{(.*)\} (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def homeserver_calls(metrics: str) -> dict:
    """{operation: {outcome: {"calls", "seconds"}}} from the call-duration histogram."""
    calls = defaultdict(dict)
    for line in metrics.splitlines():
        sample = SAMPLE.match(line)
        if not sample or sample[1] not in (f"{CALLS_METRIC}_count", f"{CALLS_METRIC}_sum"):
            continue
        labels = dict(LABEL.findall(sample[2]))
        entry = calls[labels["operation"]].setdefault(labels["outcome"], {"calls": 0, "seconds": 0.0})
        entry["calls" if sample[1].endswith("_count") else "seconds"] += float(sample[3])
    return calls


def log_figures(records: list[dict], timeout_ms: int, until: float) -> tuple[dict, int]:
    """Per operation the calls that timed out and those answered 403; the half-made rooms retired
    (all logged by `until`, wall-clock: with a drift-check phase, the burst's end)."""
    per_operation, half_made = defaultdict(Counter), 0
    for record in records:
        if record["at"] > until:
            continue
        message = record.get("message", "")
        if message == "homeserver call":
            counts = per_operation[record.get("operation")]
            if record.get("outcome") == "unreachable" and record.get("elapsed_ms", 0) >= 0.99 * timeout_ms:
                counts["timeouts"] += 1
            if record.get("status") == 403:
                counts["answered_403"] += 1
        elif message.startswith(HALF_MADE):
            half_made += 1
    return per_operation, half_made


def operation_rows(calls: dict, from_log: dict) -> dict:
    """Per operation, busiest first; the log's figures are None for one it never logged."""
    rows = {}
    for operation, outcomes in calls.items():
        total = sum(o["calls"] for o in outcomes.values())
        logged = from_log.get(operation)
        rows[operation] = {
            "calls": int(total),
            "mean_s": round(sum(o["seconds"] for o in outcomes.values()) / total, 3),
            **{key: None if logged is None else logged[key] for key in ("timeouts", "answered_403")},
            "not_success": {name: int(o["calls"]) for name, o in outcomes.items() if name != "success"},
        }
    return dict(sorted(rows.items(), key=lambda row: -row[1]["calls"]))


# ---------------------------------------------------------------- report


def quantile_s(ordered: list[float], p: float) -> float | None:
    return round(scale.percentile(ordered, p), 2) if ordered else None


def convergence(syncs: list[Sync], wanted: int) -> dict:
    """How many settled how; when the last of `wanted` was synced (None if not all were)."""
    synced = sorted(s.settled for s in syncs if s.state == "synced")
    return {
        "synced": len(synced),
        "failed": sum(s.state == "failed" for s in syncs),
        "unsettled": sum(s.settled is None for s in syncs),
        "all_synced_after_s": quantile_s(synced, 100) if len(synced) == wanted else None,
        "time_to_synced_p50_s": quantile_s(synced, 50),
        "time_to_synced_p99_s": quantile_s(synced, 99),
    }


def call_kind(record: dict, kinds: dict) -> str:
    """room, space or other: which the call was about (its span's `room` field, a Matrix id)."""
    spans = [*record.get("spans", []), record.get("span") or {}]
    rooms = [span.get("room") for span in spans if isinstance(span, dict) and span.get("room")]
    return next((kinds[room] for room in rooms if room in kinds), "other")


def within(records: list[dict], w: Window) -> list[dict]:
    return [r for r in records if w.start <= r["at"] <= w.end]


def idle_rate(w: Window, name: str) -> float:
    return w.cpu_seconds[name] / w.seconds


def net_cpu(check: CheckRound, name: str) -> tuple[float, float, float]:
    """CPU seconds in the phase less what the process used idle meanwhile: at the mean of the
    baselines' rates before and after, and (the range) at the higher and at the lower one."""
    rates = [idle_rate(check.before, name), idle_rate(check.after, name)]
    gross, seconds = check.phase.cpu_seconds[name], check.phase.seconds
    return gross - sum(rates) / 2 * seconds, gross - max(rates) * seconds, gross - min(rates) * seconds


def load_percent(cpu_per_check_s: float) -> dict:
    """% of one core that checks costing this much take at each of LOAD_RATES."""
    return {key: round(100 * cpu_per_check_s * rate, 3) for key, (rate, _) in LOAD_RATES.items()}


def check_round_figures(check: CheckRound, records: list[dict]) -> dict:
    rooms = len(check.answers)
    latencies = sorted(latency for _, latency, _ in check.answers)
    calls = [r for r in within(records, check.phase) if r.get("message") == "homeserver call"]
    per_operation = defaultdict(lambda: {"calls": Counter(), "ms": Counter(), "not_success": Counter()})
    for call in calls:
        entry = per_operation[call.get("operation")]
        kind = call_kind(call, check.kinds)
        entry["calls"][kind] += 1
        entry["ms"][kind] += call.get("elapsed_ms", 0)
        if call.get("outcome") != "success":
            entry["not_success"][str(call.get("outcome"))] += 1
    baselines = within(records, check.before) + within(records, check.after)
    phase_records = within(records, check.phase)
    synapse_net, synapse_low, synapse_high = net_cpu(check, "synapse")
    service_net = net_cpu(check, "service")[0]
    reads = len(calls) or math.nan
    return {
        "rooms_checked": rooms,
        "answers": dict(Counter(status for status, _, _ in check.answers)),
        "latency_p50_ms": scale.ms(scale.percentile(latencies, 50)),
        "latency_p99_ms": scale.ms(scale.percentile(latencies, 99)),
        "send_lag_p99_ms": scale.ms(scale.percentile(sorted(lag for _, _, lag in check.answers), 99)),
        "baselines_s": [round(w.seconds, 2) for w in (check.before, check.after)],
        "synapse_idle_cpu_percent": [round(100 * idle_rate(w, "synapse"), 2) for w in (check.before, check.after)],
        "service_idle_cpu_percent": [round(100 * idle_rate(w, "service"), 2) for w in (check.before, check.after)],
        "to_last_answer_s": round(check.answered - check.phase.start, 2),
        "phase_s": round(check.phase.seconds, 2),
        "polls": dict(check.polls),
        "synapse_cpu_seconds": round(check.phase.cpu_seconds["synapse"], 2),
        "synapse_net_cpu_seconds": round(synapse_net, 3),
        "synapse_net_cpu_seconds_range": [round(synapse_low, 3), round(synapse_high, 3)],
        "synapse_net_cpu_ms_per_forced_sync": round(1000 * synapse_net / rooms, 2),
        "synapse_net_cpu_ms_per_read": round(1000 * synapse_net / reads, 2) if calls else None,
        "synapse_net_cpu_ms_per_read_range": [round(1000 * synapse_low / reads, 2),
                                              round(1000 * synapse_high / reads, 2)] if calls else None,
        "service_net_cpu_ms_per_forced_sync": round(1000 * service_net / rooms, 2),
        "homeserver_load_percent_of_a_core": load_percent(synapse_net / reads) if calls else None,
        "homeserver_calls": len(calls),
        "homeserver_calls_per_forced_sync": round(len(calls) / rooms, 2),
        "homeserver_calls_by_operation": {
            op: {"per_forced_sync": round(sum(e["calls"].values()) / rooms, 2),
                 "by_kind_per_forced_sync": {k: round(n / rooms, 2) for k, n in sorted(e["calls"].items())},
                 "mean_ms_by_kind": {k: round(e["ms"][k] / n, 1) for k, n in sorted(e["calls"].items())},
                 "not_success": dict(e["not_success"])}
            for op, e in sorted(per_operation.items(), key=lambda item: -sum(item[1]["calls"].values()))
        },
        "homeserver_calls_in_baselines": sum(r.get("message") == "homeserver call" for r in baselines),
        "periodic_passes_in_windows": sum(r.get("message") == PASS_QUEUED for r in baselines + phase_records),
    }


def spread(values: list[float], digits: int) -> dict:
    return {"mean": round(sum(values) / len(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


def check_figures(checks: list[CheckRound], settling: list[float], records: list[dict], rate: float) -> dict:
    rounds = [check_round_figures(check, records) for check in checks]
    if any(r["synapse_net_cpu_ms_per_read"] is None for r in rounds):
        raise BenchError("a round of forced syncs logged no homeserver call (is chatrooms::matrix=debug logged?)")
    per_read = [r["synapse_net_cpu_ms_per_read"] for r in rounds]
    low = min(r["synapse_net_cpu_ms_per_read_range"][0] for r in rounds)
    high = max(r["synapse_net_cpu_ms_per_read_range"][1] for r in rounds)
    return {
        "rate_per_s": rate,
        "synapse_cpu_percent_while_settling": settling,
        "load_basis": "a check is one homeserver read of a room or a space (what "
                      "CHATROOMS_RECONCILE_ROOMS_PER_SECOND paces); a forced sync here reads a room and its space",
        "rounds": rounds,
        "synapse_net_cpu_ms_per_forced_sync": spread([r["synapse_net_cpu_ms_per_forced_sync"] for r in rounds], 2),
        "synapse_net_cpu_ms_per_read": {**spread(per_read, 2), "min_any_baseline": low, "max_any_baseline": high},
        "service_net_cpu_ms_per_forced_sync": spread([r["service_net_cpu_ms_per_forced_sync"] for r in rounds], 2),
        "synapse_idle_cpu_percent": spread([x for r in rounds for x in r["synapse_idle_cpu_percent"]], 2),
        "homeserver_load_percent_of_a_core": load_percent(sum(per_read) / len(per_read) / 1000),
        "homeserver_load_percent_of_a_core_range": {
            key: [round(100 * low / 1000 * rate, 3), round(100 * high / 1000 * rate, 3)]
            for key, (rate, _) in LOAD_RATES.items()
        },
    }


def summarize(run: Burst, log: Path, timeout_ms: int, check_rate: float) -> dict:
    rooms = run.rooms
    statuses = Counter(r.status for r in rooms)
    answered = sorted(r.answered for r in rooms)
    records = list(scale.log_records(log))
    from_log, half_made = log_figures(records, timeout_ms, run.settled if run.checks else math.inf)
    checks = {"drift_check": check_figures(run.checks, run.settling, records, check_rate)} if run.checks else {}
    return {
        "post": {
            "201": statuses.pop("201", 0),
            "202": statuses.pop("202", 0),
            "other": dict(statuses),
            "p50_s": quantile_s(answered, 50),
            "p99_s": quantile_s(answered, 99),
            "max_s": quantile_s(answered, 100),
        },
        "rooms": convergence([r.sync for r in rooms if r.sync], len(rooms)),
        "spaces": convergence([r.space for r in rooms if r.space], len(rooms)),
        "polls": dict(run.polls),
        "half_made_rooms_retired": half_made,
        "synapse_cpu_seconds": round(run.cpu_seconds["synapse"], 2),
        "service_cpu_seconds": round(run.cpu_seconds["service"], 2),
        "homeserver_calls": operation_rows(homeserver_calls(run.metrics), from_log),
        **checks,
    }


def counts_cell(counts: dict) -> str:
    return ", ".join(f"{name}×{n}" for name, n in sorted(counts.items())) or "–"


def converged_cell(c: dict, wanted: int) -> str:
    if c["all_synced_after_s"] is not None:
        return str(c["all_synced_after_s"])
    return f"not all: {c['synced']} of {wanted} synced, {c['failed']} failed, {c['unsettled']} unsettled"


def markdown(r: dict, wanted: int) -> str:
    post, rooms, spaces = r["post"], r["rooms"], r["spaces"]
    figures = [
        ("POST answers 201 / 202 / other", f"{post['201']} / {post['202']} / {counts_cell(post['other'])}"),
        ("POST latency p50 / p99 / max s", f"{post['p50_s']} / {post['p99_s']} / {post['max_s']}"),
        ("all rooms synced after s", converged_cell(rooms, wanted)),
        ("room time to synced p50 / p99 s", f"{rooms['time_to_synced_p50_s']} / {rooms['time_to_synced_p99_s']}"),
        ("rooms failed", rooms["failed"]),
        ("all spaces synced after s", converged_cell(spaces, wanted)),
        ("spaces failed", spaces["failed"]),
        ("half-made rooms retired (spaces too)", r["half_made_rooms_retired"]),
        ("polls, by answer", counts_cell(r["polls"])),
        ("Synapse CPU s (burst to settled)", r["synapse_cpu_seconds"]),
        ("service CPU s (burst to settled)", r["service_cpu_seconds"]),
    ]
    lines = ["| figure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in figures)]
    lines += [
        "",
        "| homeserver operation | calls | mean s | timed out | answered 403 | not success, by outcome |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for operation, o in r["homeserver_calls"].items():
        logged = [("n/a" if o[key] is None else o[key]) for key in ("timeouts", "answered_403")]
        lines.append(f"| {operation} | {o['calls']} | {o['mean_s']} | {logged[0]} | {logged[1]} "
                     f"| {counts_cell(o['not_success'])} |")
    if "drift_check" in r:
        lines += ["", *check_markdown(r["drift_check"])]
    return "\n".join(lines)


def spread_cell(s: dict, unit: str = "") -> str:
    return f"{s['mean']}{unit} ({s['min']}–{s['max']})"


def check_markdown(c: dict) -> list[str]:
    rounds = c["rounds"]
    header = [f"round {n}" for n in range(1, len(rounds) + 1)]

    def row(name: str, cell, overall: str = "") -> str:
        return f"| {name} | " + " | ".join(str(cell(r)) for r in rounds) + f" | {overall} |"

    loads = c["homeserver_load_percent_of_a_core"]
    ranges = c["homeserver_load_percent_of_a_core_range"]
    lines = [
        f"| drift check: one forced sync per room at {c['rate_per_s']:g}/s | " + " | ".join(header)
        + " | all rounds: mean (min–max) |",
        "|---|" + "---:|" * len(rounds) + "---|",
        row("rooms checked; answers", lambda r: f"{r['rooms_checked']}; {counts_cell(r['answers'])}"),
        row("answer latency p50 / p99 ms (send lag p99)",
            lambda r: f"{r['latency_p50_ms']} / {r['latency_p99_ms']} ({r['send_lag_p99_ms']})"),
        row("phase s: to last answer / all settled again", lambda r: f"{r['to_last_answer_s']} / {r['phase_s']}"),
        f"| Synapse CPU % of a core over {IDLE_WINDOW_S:g} s windows before the first baseline | "
        + " → ".join(map(str, c["synapse_cpu_percent_while_settling"])) + " |" + " |" * len(rounds),
        row("Synapse idle CPU % of a core: baseline before / after",
            lambda r: " / ".join(map(str, r["synapse_idle_cpu_percent"])),
            spread_cell(c["synapse_idle_cpu_percent"])),
        row("Synapse CPU s in phase: gross / net of idle (low–high by baseline)",
            lambda r: f"{r['synapse_cpu_seconds']} / {r['synapse_net_cpu_seconds']} "
                      f"({r['synapse_net_cpu_seconds_range'][0]}–{r['synapse_net_cpu_seconds_range'][1]})"),
        row("homeserver calls per forced sync (room + its space)", lambda r: r["homeserver_calls_per_forced_sync"]),
        row("Synapse CPU ms per forced sync, net of idle", lambda r: r["synapse_net_cpu_ms_per_forced_sync"],
            spread_cell(c["synapse_net_cpu_ms_per_forced_sync"])),
        row("**Synapse CPU ms per check (one read: room or space), net of idle**",
            lambda r: f"**{r['synapse_net_cpu_ms_per_read']}** ({r['synapse_net_cpu_ms_per_read_range'][0]}–"
                      f"{r['synapse_net_cpu_ms_per_read_range'][1]})",
            f"**{c['synapse_net_cpu_ms_per_read']['mean']}** ({c['synapse_net_cpu_ms_per_read']['min_any_baseline']}–"
            f"{c['synapse_net_cpu_ms_per_read']['max_any_baseline']})"),
        row("service CPU ms per forced sync, net of idle (the settling polls included)",
            lambda r: r["service_net_cpu_ms_per_forced_sync"], spread_cell(c["service_net_cpu_ms_per_forced_sync"])),
        row("homeserver calls in the baselines; periodic passes begun",
            lambda r: f"{r['homeserver_calls_in_baselines']}; {r['periodic_passes_in_windows']}"),
    ]
    for key, (_, label) in LOAD_RATES.items():
        low, high = ranges[key]
        lines.append(row(f"homeserver load at {label}, % of one core",
                         lambda r, key=key: r["homeserver_load_percent_of_a_core"][key],
                         f"{loads[key]} ({low}–{high})"))
    operations = list(dict.fromkeys(op for r in rounds for op in r["homeserver_calls_by_operation"]))
    lines += [
        "",
        "| homeserver operation in the check phase | "
        + " | ".join(f"{h}: calls per forced sync (room, space, other)" for h in header)
        + " | not success |",
        "|---|" + "---:|" * len(rounds) + "---|",
    ]
    for op in operations:
        cells, failed = [], Counter()
        for r in rounds:
            o = r["homeserver_calls_by_operation"].get(op)
            if o is None:
                cells.append("0")
                continue
            kinds = o["by_kind_per_forced_sync"]
            cells.append(f"{o['per_forced_sync']} ({', '.join(str(kinds.get(k, 0)) for k in ('room', 'space', 'other'))})")
            failed.update(o["not_success"])
        lines.append(f"| {op} | " + " | ".join(cells) + f" | {counts_cell(failed)} |")
    return lines


def settings(args, org_base: int, user_base: int, env: dict) -> dict:
    tried = {k: v for k, v in os.environ.items()
             if k.startswith("CHATROOMS_") and not any(word in k for word in ("SECRET", "TOKEN", "KEY"))}
    return {
        "binary": str(args.bin),
        "database": args.database,
        "rooms": args.rooms,
        "users_per_room": args.users_per_room,
        "timeout_s": args.timeout,
        "check_rate_per_s": args.check_rate,
        **({"check_rounds": args.check_rounds, "baseline_s": args.baseline, "check_settle_s": args.check_settle}
           if args.check_rate else {}),
        "organization_id_base": org_base,
        "user_id_base": user_base,
        "environment": tried,
        "reconcile_interval_ms": env.get("CHATROOMS_RECONCILE_INTERVAL_MS", "service default"),
    }


# ---------------------------------------------------------------- main


def run(args, cleanup: contextlib.ExitStack, bodies: list[dict]) -> tuple[dict, dict]:
    tmp = Path(tempfile.mkdtemp(prefix="chatrooms-burst-"))
    cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
    binary = scale.copy_binary(args.bin, tmp)
    port = scale.free_port()
    synapse_proc, synapse_env = cleanup.enter_context(scale.synapse(tmp, port))
    url = cleanup.enter_context(database(args.database, tmp, args.postgres_url))
    env = burst_env(synapse_env, port, url, args.check_rate > 0)
    log = tmp / "service.log"
    if args.service_log:
        cleanup.callback(keep_log, log, args.service_log)
    scale.run_logged([binary, "migrate"], env, log)
    proc = scale.start([binary, "serve"], log, env)
    cleanup.callback(scale.stop, proc)
    base = "http://" + env["CHATROOMS_BIND_ADDR"]
    wait_until_up(proc, base, log)
    pids = {"synapse": synapse_proc.pid, "service": proc.pid}
    outcome = asyncio.run(burst(base, env["CHATROOMS_API_TOKENS"], args, bodies, proc, pids, log))
    timeout_ms = int(env.get("CHATROOMS_HOMESERVER_TIMEOUT_MS", DEFAULT_HOMESERVER_TIMEOUT_MS))
    return summarize(outcome, log, timeout_ms, args.check_rate), env


def keep_log(log: Path, copy: Path) -> None:
    with contextlib.suppress(OSError):
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, copy)


def main() -> int:
    args = parse_args()
    args.bin = args.bin.resolve()
    signal.signal(signal.SIGTERM, scale.exit_on_signal)
    signal.signal(signal.SIGHUP, scale.exit_on_signal)
    org_base, user_base = random.randrange(1, 10**9), random.randrange(1, 10**9)
    bodies = [room_body(i, args.users_per_room, org_base, user_base) for i in range(1, args.rooms + 1)]
    try:
        with contextlib.ExitStack() as cleanup:
            result, env = run(args, cleanup, bodies)
    except BenchError as e:
        print(f"bench-burst: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench-burst: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    print(f"\n{args.rooms} rooms × {args.users_per_room} users, {args.database}, {args.bin}\n")
    print(markdown(result, args.rooms))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"settings": settings(args, org_base, user_base, env), "result": result},
                                    indent=2) + "\n")
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
