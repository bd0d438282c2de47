#!/usr/bin/env python3
"""Messages benchmark: search over a real Synapse's history, and how fast a Matrix client's
report reaches the moderation queue.

Starts a Synapse (scripts/synapse.sh) and the service (SQLite) in a temporary directory,
creates --rooms rooms (100) in one organization, and sends --messages messages (10,000)
spread over them through the API, as the bot, each a few words drawn from a fixed vocabulary.
Then, one request at a time:

  search     --searches searches (200) of one vocabulary word: half across the organization
             (`GET /organizations/{id}/messages?search=`, every room), half in one room
             (`GET /chatrooms/{id}/messages?search=`); p50, p99 and max latency, and the hits
             of a page (limit 20).
  reports    --reports reports (20) made as a Matrix client makes them (the client-server API's
             `POST /rooms/{roomId}/report/{eventId}`, as a member), each timed until it shows in
             the room's queue (`GET /chatrooms/{id}/reports`, polled every 50 ms): p50 and max.
             The service reads the homeserver's reports every CHATROOMS_REPORT_POLL_MS.

Every CHATROOMS_* variable reaches the service. Results: a markdown table on stdout and JSON in
--json. Everything started is stopped at the end, on error and on Ctrl-C.
"""

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import aiohttp

import bench_burst as burst
import bench_scale as scale
from bench_scale import ROOT, BenchError

VOCABULARY = [f"w{i:03d}{word}" for i, word in enumerate(
    "amber basil cedar delta ember fjord garnet harbor indigo jasper kelp lumen maple nectar onyx "
    "pebble quartz raven sable tundra umber velvet willow xenon yarrow zephyr".split() * 20)]
PAGE = 20


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", type=Path, default=ROOT / "target/release/chatrooms", help="service binary")
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=8, help="words per message")
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--reports", type=int, default=20)
    parser.add_argument("--in-flight", type=int, default=16, help="messages sent at once while filling")
    parser.add_argument("--json", type=Path, default=ROOT / "target/bench-messages.json")
    return parser.parse_args()


async def call(session, method: str, url: str, expect: int, **kwargs):
    async with session.request(method, url, **kwargs) as response:
        body = await response.json(content_type=None)
        if response.status != expect:
            raise BenchError(f"{method} {url} answered {response.status}: {str(body)[:300]}")
        return body


def percentile(values: list[float], p: float) -> float:
    return scale.percentile(sorted(values), p)


async def fill(session, base: str, args, org: int, member: int) -> tuple[list[dict], list[tuple]]:
    """The rooms, and each message sent with its room."""
    rooms = []
    for i in range(args.rooms):
        rooms.append(await call(session, "POST", f"{base}/chatrooms", 201,
                                json={"organizationID": org, "name": f"Room {i}", "assignedUsers": [member]}))
    rng = random.Random(7)
    bodies = [(rooms[i % len(rooms)], " ".join(rng.choice(VOCABULARY) for _ in range(args.words)))
              for i in range(args.messages)]
    events: list[tuple] = []
    queue = iter(bodies)
    started = time.monotonic()

    async def sender():
        for room, body in queue:
            sent = await call(session, "POST", f"{base}/chatrooms/{room['id']}/messages", 201, json={"body": body})
            events.append((room, sent["eventID"]))

    await asyncio.gather(*(sender() for _ in range(args.in_flight)))
    took = time.monotonic() - started
    print(f"sent {len(events)} messages to {len(rooms)} rooms in {took:.1f} s ({len(events) / took:.0f}/s)", flush=True)
    return rooms, events


async def searches(session, base: str, args, org: int, rooms: list[dict]) -> dict:
    rng = random.Random(11)
    timings = {"organization": [], "room": []}
    hits = {"organization": [], "room": []}
    for i in range(args.searches):
        word = rng.choice(VOCABULARY)
        kind = "organization" if i % 2 == 0 else "room"
        path = (f"/organizations/{org}/messages" if kind == "organization"
                else f"/chatrooms/{rng.choice(rooms)['id']}/messages")
        started = time.monotonic()
        page = await call(session, "GET", f"{base}{path}?search={word}&limit={PAGE}", 200)
        timings[kind].append(time.monotonic() - started)
        hits[kind].append(len(page["entries"]))
    return {kind: {"count": len(values), "p50_ms": round(percentile(values, 50) * 1000, 1),
                   "p99_ms": round(percentile(values, 99) * 1000, 1), "max_ms": round(max(values) * 1000, 1),
                   "mean_hits": round(sum(hits[kind]) / len(hits[kind]), 1)}
            for kind, values in timings.items()}


async def reports(session, base: str, hs_url: str, as_token: str, server: str, args, member: int, events) -> dict:
    rng = random.Random(13)
    waited = []
    user = f"@app_{member}:{server}"
    for room, event in rng.sample(events, args.reports):
        queue = f"{base}/chatrooms/{room['id']}/reports"
        before = (await call(session, "GET", queue, 200))["total"]
        path = (f"{hs_url}/_matrix/client/v3/rooms/{urllib.parse.quote(room['matrixRoomID'])}/report/"
                f"{urllib.parse.quote(event)}?user_id={urllib.parse.quote(user)}")
        started = time.monotonic()
        await call(session, "POST", path, 200, json={"reason": "bench"}, headers={"Authorization": f"Bearer {as_token}"})
        while (await call(session, "GET", queue, 200))["total"] == before:
            if time.monotonic() - started > 60:
                raise BenchError(f"a client's report of {event} did not reach the queue within 60 s")
            await asyncio.sleep(0.05)
        waited.append(time.monotonic() - started)
    return {"count": len(waited), "p50_ms": round(percentile(waited, 50) * 1000), "max_ms": round(max(waited) * 1000)}


async def bench(args, base: str, token: str, synapse_env: dict) -> dict:
    org, member = random.randrange(1, 10**9), random.randrange(1, 10**9)
    headers = {"API-TOKEN": token}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as session:
        rooms, events = await fill(session, base, args, org, member)
        search = await searches(session, base, args, org, rooms)
        intake = await reports(session, base, synapse_env["CHATROOMS_HOMESERVER_URL"],
                               synapse_env["CHATROOMS_MATRIX_AS_TOKEN"], synapse_env["CHATROOMS_MATRIX_SERVER_NAME"],
                               args, member, events)
    return {"search": search, "reports": intake}


def markdown(result: dict, args) -> str:
    lines = [f"\n{args.messages} messages in {args.rooms} rooms, {args.searches} searches (page of {PAGE}), "
             f"{args.reports} client reports\n",
             "| search | count | p50 ms | p99 ms | max ms | hits per page |", "|---|---:|---:|---:|---:|---:|"]
    for kind, row in result["search"].items():
        lines.append(f"| {kind} | {row['count']} | {row['p50_ms']} | {row['p99_ms']} | {row['max_ms']} | {row['mean_hits']} |")
    intake = result["reports"]
    lines += ["", "| a client's report to the queue | count | p50 ms | max ms |", "|---|---:|---:|---:|",
              f"| reports | {intake['count']} | {intake['p50_ms']} | {intake['max_ms']} |"]
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    binary = args.bin.resolve()
    if not binary.exists():
        print(f"bench-messages: no service binary at {binary}; cargo build --release first", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, scale.exit_on_signal)
    signal.signal(signal.SIGHUP, scale.exit_on_signal)
    try:
        with contextlib.ExitStack() as cleanup:
            tmp = Path(tempfile.mkdtemp(prefix="chatrooms-bench-messages-"))
            cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
            port = scale.free_port()
            _, synapse_env = cleanup.enter_context(scale.synapse(tmp, port))
            env = scale.service_env(synapse_env, port)
            env["DATABASE_URL"] = f"sqlite://{tmp}/chatrooms.db"
            env.setdefault("CHATROOMS_RATE_LIMIT_BACKEND_PER_SECOND", "100000")
            log = tmp / "service.log"
            scale.run_logged([binary, "migrate"], env, log)
            proc = scale.start([binary, "serve"], log, env)
            cleanup.callback(scale.stop, proc)
            base = "http://" + env["CHATROOMS_BIND_ADDR"]
            burst.wait_until_up(proc, base, log)
            result = asyncio.run(bench(args, base, env["CHATROOMS_API_TOKENS"], synapse_env))
    except BenchError as e:
        print(f"bench-messages: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench-messages: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    print(markdown(result, args))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "result": result}, indent=2) + "\n")
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
