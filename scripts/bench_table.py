"""Turns criterion's estimates (target/criterion) into a markdown table."""
import json
import os
import platform
import subprocess

ROOT = "target/criterion"


def median(group, bench=None):
    path = os.path.join(ROOT, group, *([bench] if bench else []), "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except FileNotFoundError:
        return None


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def rustc():
    return subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()


def fmt(ns):
    return "–" if ns is None else (f"{ns:.2f}" if ns < 100 else f"{ns:.0f}")


def ratio(a, b):
    return "–" if a is None or b is None or a == 0 else f"{b / a:.1f}×"


out = []
out.append(f"Measured on {cpu()}, {os.cpu_count()} cores, {rustc()}; median ns per call, ")
out.append("criterion, one run for every row (`scripts/bench`).\n\n")

rows = [("bare call (no breaker)", "bare"), ("`CircuitBreaker::call`", "breaker_call"),
        ("`#[circuit_breaker]`", "breaker_attribute"), ("`call_async` (polled, no runtime)", "breaker_call_async"),
        ("failsafe (consecutive failures)", "failsafe"), ("recloser (defaults)", "recloser")]
out.append("**Closed state, successful call**\n\n| | ns/call | vs bare |\n|---|---:|---:|\n")
bare = median("closed_success", "bare")
for label, key in rows:
    ns = median("closed_success", key)
    extra = "" if ns is None or bare is None else f"+{ns - bare:.2f} ns"
    out.append(f"| {label} | {fmt(ns)} | {extra} |\n")
ours = median("closed_success", "breaker_call")
out.append(f"\n`call` is {ratio(ours, median('closed_success', 'failsafe'))} faster than failsafe "
           f"and {ratio(ours, median('closed_success', 'recloser'))} faster than recloser.\n\n")

out.append("**Threads sharing one breaker** (wall time / all calls; lower is more throughput)\n\n")
out.append("| threads | bare | `call` | failsafe | recloser | `call` scaling vs 1 thread |\n|---:|---:|---:|---:|---:|---:|\n")
one = median("threads_1", "breaker_call")
for n in (1, 2, 4):
    g = f"threads_{n}"
    c = median(g, "breaker_call")
    out.append(f"| {n} | {fmt(median(g, 'bare'))} | {fmt(c)} | {fmt(median(g, 'failsafe'))} | "
               f"{fmt(median(g, 'recloser'))} | {ratio(c, one)} |\n")
out.append("\n")

out.append("**Other paths** (ns/call)\n\n| | `call` | failsafe | recloser |\n|---|---:|---:|---:|\n")
for label, group in (("open: rejected call", "open_rejection"), ("a failure every 10 calls", "failure_every_10"),
                     ("a failure every 100 calls", "failure_every_100")):
    out.append(f"| {label} | {fmt(median(group, 'breaker_call'))} | {fmt(median(group, 'failsafe'))} | "
               f"{fmt(median(group, 'recloser'))} |\n")
out.append(f"| reading the coarse / precise clock | {fmt(median('open_rejection', 'coarse_clock_read'))} / "
           f"{fmt(median('open_rejection', 'precise_clock_read'))} | | |\n")
out.append(f"| one listener | {fmt(median('listeners', 'one'))} | | |\n")
out.append(f"| three listeners | {fmt(median('listeners', 'three'))} | | |\n")
out.append(f"| `registry::get` by name | {fmt(median('registry_get'))} | | |\n")
out.append("\n**Shared state on Redis** (loopback, a redis-server of the bench's own)\n\n")
out.append("| | memory | `RedisStorage` | naive: GET per read (pybreaker's pattern) |\n|---|---:|---:|---:|\n")
out.append(f"| closed-state success (ns) | {fmt(median('redis_success', 'memory'))} | {fmt(median('redis_success', 'redis_storage'))} | "
           f"{fmt(median('redis_success', 'naive_get_per_call'))} |\n")
out.append(f"| failure (ns) | {fmt(median('redis_failure', 'memory'))} | {fmt(median('redis_failure', 'redis_storage'))} | |\n")
print("".join(out), end="")
