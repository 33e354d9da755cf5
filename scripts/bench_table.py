"""Turns criterion's estimates (target/criterion) into a markdown table."""
import json
import os
import platform
import subprocess

ROOT = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")


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

rows = [("bare call (no breaker)", "bare", "bare"),
        ("`CircuitBreaker::call`", "breaker_call", "bare"),
        ("`#[circuit_breaker]`", "breaker_attribute", "bare"),
        ("bare `async` block (polled, no runtime)", "bare_async", "bare_async"),
        ("`call_async` (polled, no runtime)", "breaker_call_async", "bare_async"),
        ("failsafe (consecutive failures)", "failsafe", "bare"),
        ("recloser (defaults)", "recloser", "bare")]
fs1, rc1 = median("closed_success", "failsafe"), median("closed_success", "recloser")
out.append("**Closed state, successful call**\n\n")
out.append("| | ns/call | vs its bare call | failsafe / this | recloser / this |\n|---|---:|---:|---:|---:|\n")
for label, key, base in rows:
    ns, b = median("closed_success", key), median("closed_success", base)
    extra = "" if ns is None or b is None or key == base else f"{ns - b:+.2f} ns"
    ours_row = key.startswith("breaker")
    out.append(f"| {label} | {fmt(ns)} | {extra} | {ratio(ns, fs1) if ours_row else ''} | "
               f"{ratio(ns, rc1) if ours_row else ''} |\n")
out.append("\n")

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

# Integrations (issue 14): what observability and the tower layer add to a
# closed-state success, same run.
obs_none = median("observability", "no_listener")
if obs_none is not None:
    out.append("\n**Observability and the tower layer** (closed-state success, same run)\n\n")
    out.append("| | ns/call | vs its base |\n|---|---:|---:|\n")
    for label, key in (("`call`, no listener", "no_listener"),
                       ("`call`, one no-op listener (`before_call` + `success`)", "noop_listener"),
                       ("`call`, three no-op listeners", "three_noop_listeners"),
                       ("`call`, a `state_change`-only listener", "state_change_listener"),
                       ("`call` on a registry breaker an admin router counts", "admin_router_success"),
                       ("`call`, `TracingListener`, no subscriber", "tracing_listener_no_subscriber"),
                       ("`call`, `MetricsListener`, a recorder installed", "metrics_listener_recorder")):
        ns = median("observability", key)
        extra = "" if ns is None or key == "no_listener" else f"{ns - obs_none:+.2f} ns"
        out.append(f"| {label} | {fmt(ns)} | {extra} |\n")
    inner = median("tower", "inner_service")
    theirs = median("tower", "tower_resilience_layer")
    for label, key in (("inner service called directly", "inner_service"),
                       ("`CircuitBreakerLayer`, `&'static` breaker", "breaker_layer_static"),
                       ("`CircuitBreakerLayer`, owned (`Arc`) breaker", "breaker_layer"),
                       ("tower-resilience-circuitbreaker's layer", "tower_resilience_layer")):
        ns = median("tower", key)
        extra = "" if ns is None or inner is None or key == "inner_service" else f"{ns - inner:+.2f} ns"
        if key.startswith("breaker") and ns and theirs:
            extra += f" (tower-resilience / this: {theirs / ns:.1f}×)"
        out.append(f"| {label} | {fmt(ns)} | {extra} |\n")
# The targets of issue 14, as ratios in this run.
obs_targets = []
if obs_none is not None:
    one, three = median("observability", "noop_listener"), median("observability", "three_noop_listeners")
    if one is not None:
        obs_targets.append(("one no-op listener within 5 ns of none", f"{one - obs_none:+.2f} ns", one - obs_none <= 5))
    if three is not None:
        obs_targets.append(("three no-op listeners within 10 ns of none", f"{three - obs_none:+.2f} ns",
                            three - obs_none <= 10))
    without = median("observability", "metrics_listener_no_recorder")
    metrics_ns = median("observability", "metrics_listener_recorder")
    if metrics_ns is not None:
        base, what = (without, "the same listener without a recorder") if without is not None else (obs_none, "no listener")
        obs_targets.append((f"`metrics`: a recorder installed, within 10 ns of {what}", f"{metrics_ns - base:+.2f} ns",
                            metrics_ns - base <= 10))
    tracing_ns = median("observability", "tracing_listener_no_subscriber")
    if tracing_ns is not None:
        obs_targets.append(("`tracing`: no subscriber, within 1 ns of no listener", f"{tracing_ns - obs_none:+.2f} ns",
                            tracing_ns - obs_none <= 1))
    inner, theirs = median("tower", "inner_service"), median("tower", "tower_resilience_layer")
    for label, key in (("`&'static` breaker", "breaker_layer_static"), ("`Arc` breaker", "breaker_layer")):
        ns = median("tower", key)
        if ns is not None and inner is not None:
            obs_targets.append((f"tower layer ({label}): within 10 ns of the inner service", f"{ns - inner:+.2f} ns",
                                ns - inner <= 10))
        if ns and theirs:
            obs_targets.append((f"tower layer ({label}): ≥ 10× faster than tower-resilience's layer",
                                f"{theirs / ns:.1f}×", theirs / ns >= 10))
if obs_targets:
    out.append("\n| target (issue 14) | measured | |\n|---|---|---|\n")
    for label, measured, ok in obs_targets:
        out.append(f"| {label} | {measured} | {'holds' if ok else '**missed**'} |\n")

out.append("\n**Shared state on Redis** (loopback, a redis-server of the bench's own)\n\n")
out.append("| | memory | `RedisStorage` | naive: GET per read (pybreaker's pattern) |\n|---|---:|---:|---:|\n")
out.append(f"| closed-state success (ns) | {fmt(median('redis_success', 'memory'))} | {fmt(median('redis_success', 'redis_storage'))} | "
           f"{fmt(median('redis_success', 'naive_get_per_call'))} |\n")
out.append(f"| failure (ns) | {fmt(median('redis_failure', 'memory'))} | {fmt(median('redis_failure', 'redis_storage'))} | |\n")
mem_tw, redis_tw = median("redis_success_time_window", "memory"), median("redis_success_time_window", "redis_storage")
if None not in (mem_tw, redis_tw):
    out.append(f"| closed-state success, `failure_rate(0.5).window_time(60 s)` (ns) | {fmt(mem_tw)} | {fmt(redis_tw)} | |\n")
    ok = redis_tw - mem_tw <= 5
    out.append("\n| target (issue 15) | measured | |\n|---|---|---|\n")
    out.append(f"| time-window success on `RedisStorage` within 5 ns of `MemoryStorage` | {redis_tw - mem_tw:+.2f} ns | "
               f"{'holds' if ok else '**missed**'} |\n")

# Breakers per key (issue 17): a hit then a closed-state success, beside a
# plain breaker's call; 1 and 2 threads on different keys and on one key.
plain, hit_u64, hit_str = (median("keyed", b) for b in ("plain_call", "get_u64_call", "get_str_call"))
if None not in (plain, hit_u64):
    out.append("\n**Breakers per key** (`KeyedBreakers::get(&key)` for a live key, then a closed-state success)\n\n")
    out.append("| | ns/call | vs a plain breaker's `call` |\n|---|---:|---:|\n")
    out.append(f"| plain `CircuitBreaker::call` | {fmt(plain)} | |\n")
    out.append(f"| `get(&u64)` then `call` | {fmt(hit_u64)} | {hit_u64 - plain:+.2f} ns |\n")
    if hit_str is not None:
        out.append(f"| `get(\"host-17.example\")` then `call` | {fmt(hit_str)} | {hit_str - plain:+.2f} ns |\n")
    out.append("\n| threads | different keys | scaling | one key | scaling |\n|---:|---:|---:|---:|---:|\n")
    d1, s1 = median("keyed_threads_1", "different_keys"), median("keyed_threads_1", "same_key")
    for n in (1, 2):
        d, s_ = median(f"keyed_threads_{n}", "different_keys"), median(f"keyed_threads_{n}", "same_key")
        out.append(f"| {n} | {fmt(d)} | {ratio(d, d1)} | {fmt(s_)} | {ratio(s_, s1)} |\n")

# The targets of issue 5, as ratios in this run.
def cell(ok):
    return "holds" if ok else "**missed**"


call1 = median("closed_success", "breaker_call")
bare1 = median("closed_success", "bare")
attr1 = median("closed_success", "breaker_attribute")
async1, bare_async1 = median("closed_success", "breaker_call_async"), median("closed_success", "bare_async")
t1, t2 = median("threads_1", "breaker_call"), median("threads_2", "breaker_call")
peers2 = [x for x in (median("threads_2", "failsafe"), median("threads_2", "recloser")) if x]
reject = median("open_rejection", "breaker_call")
targets = []
if None not in (call1, bare1, attr1, async1, bare_async1):
    worst = max(call1 - bare1, attr1 - bare1, async1 - bare_async1)
    targets.append(("closed-state success within 2 ns of the bare call (`call`, attribute, `call_async`)",
                    f"+{call1 - bare1:.2f} / +{attr1 - bare1:.2f} / +{async1 - bare_async1:.2f} ns", worst <= 2))
if call1 and fs1 and rc1:
    r = min(fs1, rc1) / call1
    targets.append(("≥ 4× faster than the faster peer, 1 thread", f"{r:.1f}×", r >= 4))
if t2 and peers2:
    r = min(peers2) / t2
    targets.append(("≥ 10× faster than the faster peer, 2 threads", f"{r:.1f}×", r >= 10))
if t1 and t2:
    r = t1 / t2
    targets.append(("2 threads on one breaker: ≥ 1.8× the 1-thread throughput", f"{r:.2f}×", r >= 1.8))
if reject and call1:
    clock = median("open_rejection", "coarse_clock_read")
    note = f"{reject:.2f} vs {call1:.2f} ns" + (f" (a coarse clock read alone: {clock:.2f} ns)" if clock else "")
    targets.append(("rejection at least as fast as a closed-state success", note, reject <= call1))
if targets:
    out.append("\n**Targets** (issue 5, ratios within this run)\n\n| target | measured | |\n|---|---|---|\n")
    for label, measured, ok in targets:
        out.append(f"| {label} | {measured} | {cell(ok)} |\n")
    out.append("| zero heap allocations on the success and rejection paths | enforced by `tests/zero_alloc.rs` | holds |\n")

path = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "storm.txt")
if os.path.exists(path):
    for line in open(path):
        parts = line.split()
        if len(parts) == 5 and parts[0] == "storm":
            _, seconds, worst, after, generations = parts
            after = "did not return within 60 s" if after == "-1" else f"{int(after) / 1000:.2f} ms"
            out.append(f"\n**Storm of manual transitions** (`bench/src/bin/storm.rs`: 3 threads `open()` / `close()`, "
                       f"no listener, {seconds} s, {int(generations):,} changes of generation)\n\n| | |\n|---|---:|\n")
            out.append(f"| worst single `open()` during the storm | {int(worst) / 1000:.2f} ms |\n")
            out.append(f"| last call returned after the storm stopped | {after} |\n")

# Slow calls and fail_if (issue 13): a closed-state success on a breaker
# that times its calls or judges its values (bench/benches/hot_path/inspection.rs).
if median("inspection", "breaker_call") is not None:
    g = "inspection"
    call = median(g, "breaker_call")
    out.append("\n**Slow calls and `fail_if`** (closed-state success)\n\n")
    out.append("| | ns/call | vs `call` | this / `call` |\n|---|---:|---:|---:|\n")
    for label, key in (("bare call", "bare"), ("`call` (consecutive policy)", "breaker_call"),
                       ("`slow_call_duration(2s)`: the call timed", "slow_call_duration"),
                       ("`slow_call_rate(0.5)` over a count window of 100", "slow_call_rate"),
                       ("`fail_if` (a predicate on the value, false)", "fail_if")):
        ns = median(g, key)
        extra = "" if ns is None or key in ("bare", "breaker_call") else f"{ns - call:+.2f} ns"
        rel = "" if ns is None or key in ("bare", "breaker_call") else f"{ns / call:.2f}×"
        out.append(f"| {label} | {fmt(ns)} | {extra} | {rel} |\n")

# The rate policies (issue 13): the window's cost beside today's call, and
# the peers with a rate policy (bench/benches/hot_path/policies.rs).
if median("rate_policy", "breaker_call") is not None:
    g = "rate_policy"
    call, tr, fsr = median(g, "breaker_call"), median(g, "tower_resilience"), median(g, "failsafe_rate")
    out.append("\n**Rate policies** (closed-state success; \"+ window\": `call` on a breaker built with "
               "`failure_rate(0.5)` and that window)\n\n")
    out.append("| | ns/call | vs `call` | tower-resilience / this | failsafe rate / this |\n|---|---:|---:|---:|---:|\n")
    for label, key in (("bare call", "bare"), ("`call` (consecutive policy)", "breaker_call"),
                       ("window alone: count window of 100", "window_count_success"),
                       ("window alone: time window of 60 s (one coarse clock read)", "window_time_success"),
                       ("`call` + count window of 100", "breaker_call_window_count"),
                       ("`call` + time window of 60 s", "breaker_call_window_time"),
                       ("tower-resilience-circuitbreaker (rate 0.5, count window 100, `Service`)", "tower_resilience"),
                       ("failsafe `success_rate_over_time_window`", "failsafe_rate")):
        ns = median(g, key)
        vs = "" if ns is None or call is None or key in ("bare", "breaker_call") or key.startswith("window") \
            else f"{ns - call:+.2f} ns"
        ours_row = key.startswith("breaker")
        out.append(f"| {label} | {fmt(ns)} | {vs} | {ratio(ns, tr) if ours_row else ''} | "
                   f"{ratio(ns, fsr) if ours_row else ''} |\n")
    out.append("\n| threads | bare | `call` | `call` + count | `call` + time | tower-resilience | failsafe rate |"
               " scaling: bare / `call` / count / time |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    for n in (1, 2):
        t = f"rate_threads_{n}"
        keys = ("bare", "breaker_call", "breaker_call_window_count", "breaker_call_window_time")
        scaling = " / ".join(ratio(median(t, k), median("rate_threads_1", k)) for k in keys)
        out.append(f"| {n} | " + " | ".join(fmt(median(t, k)) for k in keys) + " | "
                   f"{fmt(median(t, 'tower_resilience'))} | {fmt(median(t, 'failsafe_rate'))} | {scaling} |\n")
    rate_targets = []
    for label, key in (("count window", "breaker_call_window_count"), ("time window", "breaker_call_window_time")):
        ns = median(g, key)
        if ns is not None and call is not None:
            rate_targets.append((f"{label}: success within 3 ns of `call`", f"{ns - call:+.2f} ns", ns - call <= 3))
        one, two = median("rate_threads_1", key), median("rate_threads_2", key)
        b1, b2 = median("rate_threads_1", "bare"), median("rate_threads_2", "bare")
        if one and two:
            ceiling = f" (bare call: {b1 / b2:.2f}×)" if b1 and b2 else ""
            rate_targets.append((f"{label}: 2 threads ≥ 1.8× the 1-thread throughput", f"{one / two:.2f}×{ceiling}",
                                 one / two >= 1.8))
        for n in (1, 2):
            mine = median(f"rate_threads_{n}", key)
            peer_tr, peer_fs = median(f"rate_threads_{n}", "tower_resilience"), median(f"rate_threads_{n}", "failsafe_rate")
            if mine and peer_tr:
                rate_targets.append((f"{label}: ≥ 20× faster than tower-resilience, {n} thread(s)",
                                     f"{peer_tr / mine:.1f}×", peer_tr / mine >= 20))
            if mine and peer_fs:
                rate_targets.append((f"{label}: ≥ 10× faster than failsafe's rate policy, {n} thread(s)",
                                     f"{peer_fs / mine:.1f}×", peer_fs / mine >= 10))
    out.append("\n| target (issue 13) | measured | |\n"
               "|---|---|---|\n")
    for label, measured, ok in rate_targets:
        out.append(f"| {label} | {measured} | {cell(ok)} |\n")

labels = {"bare": "bare call", "call": "`CircuitBreaker::call`", "attribute": "`#[circuit_breaker]`",
          "async": "`call_async` (polled)", "listener": "`call` with one listener",
          "rejection": "open: rejected call (without the clock's own instructions, in the vDSO)",
          "failure": "a failure, counted",
          "tower": "`CircuitBreakerLayer` (`&'static` breaker): one request",
          "tower_inner": "its inner service alone: one request",
          "keyed": "`KeyedBreakers::get(&u64)` (a hit) then `call`",
          "rate_call": "`call`, `failure_rate(0.5).window_calls(100)`: a success",
          "rate_time_call": "`call`, `failure_rate(0.5).window_time(60 s)`: a success (with its coarse clock read)",
          "rate_failure": "`call`, `failure_rate(0.5).window_calls(100)`: a failure that does not open (10 failures in the window)",
          "rate_time_failure": "`call`, `failure_rate(0.5).window_time(60 s)`: a failure that does not open (1 call in 10 fails)",
          "window_success": "window alone: a success, count window of 100",
          "window_time_success": "window alone: a success, time window of 60 s (with its coarse clock read)",
          "window_failure": "window alone: a failure that does not open (count window of 100, 10 failures in it)",
          "window_time_failure": "window alone: a failure that does not open (time window of 60 s)",
          "slow_call": "`call` on a breaker with `slow_call_duration` (two clock readings; the vDSO's not counted)",
          "fail_if": "`call` on a breaker with `fail_if` (the value judged)",
          "three_listeners": "`call` with three listeners",
          "listener_cached": "`call` with one listener, past the 16 kept lists (the per-thread caches)",
          "tower_arc": "`CircuitBreakerLayer` (`Arc` breaker): one request",
          "admin_success": "`call` on a registry breaker an admin router counts (its success on the thread's stripe)",
          "memory_call": "`MemoryStorage`: a closed-state success (`bench/src/bin/redis_instructions.rs`)",
          "redis_call": "`RedisStorage`: a closed-state success",
          "memory_time_call": "`MemoryStorage`, `failure_rate(0.5).window_time(60 s)`: a success",
          "redis_time_call": "`RedisStorage`, `failure_rate(0.5).window_time(60 s)`: a success"}
path = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "instructions.txt")
if os.path.exists(path):
    out.append("\n**Instructions per call** (callgrind, `bench/src/bin/instructions.rs`; each scenario's "
               "call is one out-of-line function, so a few are the call itself)\n\n| | instructions |\n|---|---:|\n")
    counts = dict(line.split() for line in open(path) if line.strip())
    for name, count in counts.items():
        # The window's failure scenarios run 9 successes per failure.
        base = {"window_failure": "window_success", "window_time_failure": "window_time_success"}.get(name)
        if base in counts:
            count = str(int(count) - 9 * int(counts[base]))
        out.append(f"| {labels.get(name, name)} | {count} |\n")
print("".join(out), end="")
