-- One operation on one breaker's state, atomically: a port of
-- breaker_core::state::step (state.rs), on the server's clock.
--
-- KEYS[1]  the breaker's state key
-- KEYS[2]  the breaker's window key (a hash: the rate policies' buckets)
-- ARGV[1]  op: admit | success | failure | cancel | force | reset | read | init
--          | flush | trip
--          (init: a read that first creates a missing key in the state ARGV[4];
--          flush: successes counted by a process, added to the window)
-- ARGV[2]  the generation the op reports under (success, failure, cancel)
-- ARGV[3]  1 if the op reports a half-open trial, else 0
-- ARGV[4]  the state to force: closed | open | half-open
-- ARGV[5]  fail_max            ARGV[6]  success_threshold
-- ARGV[7]  reset_timeout (ms)  ARGV[8]  trial lease (ms)   ARGV[9]  key TTL (ms)
-- ARGV[10] pub/sub channel     ARGV[11] origin of the op   ARGV[12] breaker name
-- ARGV[13] half_open_calls     ARGV[14] 1 if the backoff grows (has a cap)
-- ARGV[15] backoff factor      ARGV[16] backoff cap (ms)   ARGV[17] jitter
-- ARGV[18] 1 if a rate condition is on (a time window on the server)
-- ARGV[19] failure rate ('' off) ARGV[20] slow-call rate ('' off)
-- ARGV[21] window (ms)         ARGV[22] min_calls          ARGV[23] 1 if fail_max is on
-- ARGV[24] successes the process counted under ARGV[2] since its last report
-- ARGV[25] 1 if the call reported was slow
--
-- Returns {status, before, after, outcome, a, b, now_us, missing}:
-- (then, at the end: the window's calls, failures and slow calls after the
-- op, 0 when no rate condition is on)
--   status  'ok', or 'corrupt' when the stored value is not a valid state
--           (it is then left alone, except by force and reset, which repair it)
--   before  the state the op was applied to, after the state it left (stored form)
--   outcome 0 none (read), 1 admitted (a = generation, b = 1 if trial),
--           2 rejected (a = reason), 3 counted (a = reason it tripped, or 0),
--           4 stale, 5 done
--   reasons 1 timeout not elapsed, 2 trial in progress, 3 failure threshold,
--           4 trial failed
--   now_us  the server's time in microseconds
--   missing 1 if the key did not exist (before's seq is then the server's
--           time, not a write's), else 0 (the reply goes to the process that
--           sent this script only: processes of other versions never see it)

local GEN_MOD = 281474976710656 -- 2^48
local MAX_EXACT = 9007199254740991 -- 2^53 - 1
local MAX_FAIL = 65535
local MAX_SUCC = 255
local MAX_TRIALS = 255
local MAX_REOPENS = 255
local TWO_32 = 4294967296
-- How far the server's clock may step back without a lease or an opening
-- time it wrote being taken for a value it could not have written.
local SLACK_MS = 1000
-- How far ahead of the server's clock a sequence number may be (a day in
-- microseconds) before the next write numbers from the clock instead.
local SEQ_AHEAD_US = 86400000000

local op = ARGV[1]
local op_gen = tonumber(ARGV[2]) or 0
local op_trial = ARGV[3] == '1'
local target = ARGV[4]
local fail_max = tonumber(ARGV[5])
local threshold = tonumber(ARGV[6])
local reset_ms = tonumber(ARGV[7])
local lease_ms = tonumber(ARGV[8])
local ttl_ms = tonumber(ARGV[9])
local trials_max = tonumber(ARGV[13]) or 1
local growing = ARGV[14] == '1'
local factor = tonumber(ARGV[15]) or 1
local cap_ms = tonumber(ARGV[16]) or 0
local jitter = tonumber(ARGV[17]) or 0
local constant = (not growing) and jitter == 0
local rates = ARGV[18] == '1'
local failure_rate = tonumber(ARGV[19] or '')
local slow_rate = tonumber(ARGV[20] or '')
local span_ms = tonumber(ARGV[21]) or 0
local min_calls = tonumber(ARGV[22]) or 1
local consecutive = ARGV[23] ~= '0'
local pending = tonumber(ARGV[24]) or 0
local op_slow = ARGV[25] == '1'

-- Redis 3.2 to 4.x refuse a write after TIME in a script unless the script
-- replicates its effects; 5.0 and later do so by default (7.0 ignores it).
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)

-- The same checks as codec.rs: anything else is corrupt. v2 adds the
-- trials running at once and the re-openings the backoff counts.
local function parse(raw)
  local ver, st, g, f, s, tr, o, q, rest =
    string.match(raw, '^(v[12]) ([%a-]+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+)(.*)$')
  if not st then return nil end
  if st ~= 'closed' and st ~= 'open' and st ~= 'half-open' then return nil end
  local n = {g, f, s, tr, o, q}
  if ver == 'v2' then
    local t, r = string.match(rest, '^ (%d+) (%d+)$')
    if not t then return nil end
    n[7], n[8] = t, r
  elseif rest ~= '' then
    return nil
  end
  for i = 1, #n do
    if #n[i] > 16 then return nil end
    n[i] = tonumber(n[i])
    if n[i] > MAX_EXACT then return nil end
  end
  local v = {state = st, gen = n[1], fails = n[2], succ = n[3], trial = n[4],
             opened = n[5], seq = n[6], trials = n[7], reopens = n[8] or 0}
  if v.trials == nil then
    if v.trial ~= 0 then v.trials = 1 else v.trials = 0 end
  end
  if v.gen >= GEN_MOD or v.fails > MAX_FAIL or v.succ > MAX_SUCC then return nil end
  if v.trials > MAX_TRIALS or v.reopens > MAX_REOPENS then return nil end
  if (v.trials ~= 0) ~= (v.trial ~= 0) then return nil end
  if st == 'closed' and (v.succ ~= 0 or v.trial ~= 0 or v.opened ~= 0 or v.reopens ~= 0) then
    return nil
  end
  if st == 'open' and (v.succ ~= 0 or v.trial ~= 0 or v.opened == 0) then return nil end
  return v
end

local function encode(v)
  local v1 = string.format('%s %d %d %d %d %d %d',
    v.state, v.gen, v.fails, v.succ, v.trial, v.opened, v.seq)
  if v.trials > 1 or v.reopens > 0 then
    return string.format('v2 %s %d %d', v1, v.trials, v.reopens)
  end
  return 'v1 ' .. v1
end

local function copy(v)
  return {state = v.state, gen = v.gen, fails = v.fails, succ = v.succ,
          trial = v.trial, opened = v.opened, seq = v.seq, trials = v.trials,
          reopens = v.reopens}
end

local function same(a, b)
  return a.state == b.state and a.gen == b.gen and a.fails == b.fails and
    a.succ == b.succ and a.trial == b.trial and a.opened == b.opened and
    a.trials == b.trials and a.reopens == b.reopens
end

-- state.rs `mix32`: a 32-bit hash with 32-bit operations only (the `bit`
-- library's results are signed: taken modulo 2^32; a product is split in
-- 16-bit halves so that every intermediate stays an exact Lua number).
local function mul32(a, b)
  local lo = b % 65536
  local hi = (b - lo) / 65536
  return (a * lo + ((a * hi) % 65536) * 65536) % TWO_32
end
local function xorshift(x, n)
  return bit.bxor(x, bit.rshift(x, n)) % TWO_32
end
local function mix32(x)
  x = xorshift(x, 16)
  x = mul32(x, 2146121005) -- 0x7FEB352D
  x = xorshift(x, 15)
  x = mul32(x, 2221713035) -- 0x846CA68B
  return xorshift(x, 16)
end

-- state.rs `Backoff::period`, the same operations in the same order, so
-- the same f64 and the same milliseconds as every process computes.
local function period_ms(v)
  if constant then return reset_ms end
  local ms = reset_ms
  if growing then
    local cap = cap_ms
    if cap < reset_ms then cap = reset_ms end
    for _ = 1, math.min(v.reopens, MAX_REOPENS) do
      if ms >= cap then break end
      ms = ms * factor
    end
    if ms > cap then ms = cap end
  end
  if jitter > 0 then
    local u = mix32(v.gen % TWO_32) / TWO_32
    ms = ms * (1 + jitter * (2 * u - 1))
  end
  return math.ceil(ms)
end

-- state.rs `enter`: a new generation, counters reset as the state requires.
local function enter(v, state)
  local n = copy(v)
  n.state = state
  n.gen = (v.gen + 1) % GEN_MOD
  if state == 'closed' then n.fails = 0 end
  n.succ = 0
  n.trial = 0
  n.trials = 0
  if state == 'closed' or v.state == 'closed' or constant then
    n.reopens = 0
  elseif state == 'open' then
    n.reopens = math.min(v.reopens + 1, MAX_REOPENS)
  end
  if state == 'closed' then
    n.opened = 0
  elseif state == 'open' then
    n.opened = math.ceil(now_us / 1000) -- rounded up, never early
  end
  return n
end

-- A trial finished or gave its place back: one place fewer taken; the
-- lease of the others runs from now.
local function release(v)
  v.trials = math.max(v.trials - 1, 0)
  if v.trials == 0 then v.trial = 0 else v.trial = now_ms + lease_ms end
end

-- The rate policies' time window, for the whole fleet: 10 buckets of a
-- tenth of the window on the server's clock, kept in a hash as fields
-- b0..b9 ("<bucket number> <calls> <failures> <slow>"; a field of an older
-- bucket number counts nothing) and `gen`, the closed generation they
-- count: calls of another generation are not added, and a new one starts
-- every bucket afresh (entering closed empties the window).
local bucket_ms = math.max(math.floor(span_ms / 10), 1)
local bucket = math.floor(now_ms / bucket_ms)

local function window_read()
  local raw = redis.call('HMGET', KEYS[2], 'gen', 'b0', 'b1', 'b2', 'b3', 'b4', 'b5',
    'b6', 'b7', 'b8', 'b9')
  return raw
end

-- The totals of the window of generation `gen` at the current bucket.
local function window_totals(raw, gen)
  local c, f, sl = 0, 0, 0
  if tonumber(raw[1]) ~= gen then return 0, 0, 0 end
  for i = 2, 11 do
    if raw[i] then
      local b, bc, bf, bs = string.match(raw[i], '^(%d+) (%d+) (%d+) (%d+)$')
      b = tonumber(b)
      if b and b <= bucket and b > bucket - 10 then
        c, f, sl = c + tonumber(bc), f + tonumber(bf), sl + tonumber(bs)
      end
    end
  end
  return c, f, sl
end

-- Adds calls, failures and slow calls of generation `gen` to the current
-- bucket; returns the window's totals after.
local function window_add(gen, calls, fails, slow)
  local raw = window_read()
  local fresh = tonumber(raw[1]) ~= gen
  local field = 'b' .. (bucket % 10)
  local c, f, sl = 0, 0, 0
  local cur_raw = raw[2 + bucket % 10]
  if not fresh and cur_raw then
    local b, bc, bf, bs = string.match(cur_raw, '^(%d+) (%d+) (%d+) (%d+)$')
    if tonumber(b) == bucket then c, f, sl = tonumber(bc), tonumber(bf), tonumber(bs) end
  end
  local line = string.format('%d %d %d %d', bucket, c + calls, f + fails, sl + slow)
  if fresh then
    redis.call('HSET', KEYS[2], 'gen', gen, 'b0', '', 'b1', '', 'b2', '', 'b3', '', 'b4', '',
      'b5', '', 'b6', '', 'b7', '', 'b8', '', 'b9', '')
  end
  redis.call('HSET', KEYS[2], field, line)
  redis.call('PEXPIRE', KEYS[2], math.max(span_ms * 2, 1000))
  raw[1] = tostring(gen)
  if fresh then for i = 2, 11 do raw[i] = false end end
  raw[2 + bucket % 10] = line
  return window_totals(raw, gen)
end

-- state.rs `trips`: the rate condition the totals make hold, as a reason
-- code (5 failure rate, 6 slow-call rate), or 0.
local function rate_trips(c, f, sl)
  if c == 0 or c < min_calls then return 0 end
  if failure_rate and f / c >= failure_rate then return 5 end
  if slow_rate and sl / c >= slow_rate then return 6 end
  return 0
end

local wc, wf, ws = 0, 0, 0

local got = redis.pcall('GET', KEYS[1])
local missing = 0
if got == false then missing = 1 end
local stored
if got == false then
  -- A missing key (never written, expired, lost in a restart) is a closed
  -- breaker with zero counters. It takes the generation of a result it is
  -- given, so a call admitted before the key expired still counts.
  local gen = 0
  if (op == 'success' or op == 'failure' or op == 'cancel' or op == 'flush' or op == 'trip')
      and op_gen < GEN_MOD then
    gen = op_gen
  end
  stored = {state = 'closed', gen = gen, fails = 0, succ = 0, trial = 0, opened = 0,
            seq = now_us, trials = 0, reopens = 0}
elseif type(got) == 'string' then
  stored = parse(got)
end
if stored == nil then
  if op ~= 'force' and op ~= 'reset' then
    local raw = ''
    if type(got) == 'string' then raw = got end
    return {'corrupt', raw, '', 0, 0, 0, now_us}
  end
  stored = {state = 'closed', gen = 0, fails = 0, succ = 0, trial = 0, opened = 0,
            seq = now_us, trials = 0, reopens = 0}
end

-- Trials whose lease ran out (no trial admitted or finished for a lease
-- period) free their places under a new generation, so their holders
-- (crashed, or slower than the lease) can no longer report.
local cur = copy(stored)
if cur.state == 'half-open' and cur.trial ~= 0 and cur.trial <= now_ms and op ~= 'read'
    and op ~= 'init' then
  cur.trial = 0
  cur.trials = 0
  cur.gen = (cur.gen + 1) % GEN_MOD
end

-- Values this configuration could not have written (a lease beyond now and
-- the lease, an opening time in the future: a corrupt or forged value) are
-- repaired, by a read too: the lease frees its place as if it had run out,
-- the open period counts from now.
local repaired = false
if cur.state == 'half-open' and cur.trial > now_ms + lease_ms + SLACK_MS then
  cur.trial = 0
  cur.trials = 0
  cur.gen = (cur.gen + 1) % GEN_MOD
  repaired = true
end
if cur.state == 'open' and cur.opened > now_ms + SLACK_MS then
  cur.opened = now_ms
  repaired = true
end

local nxt = copy(cur)
local oc, oa, ob = 0, 0, 0
if op == 'init' then
  if missing == 1 and target ~= 'closed' then
    nxt = enter(cur, target)
  end
elseif op == 'admit' then
  if cur.state == 'closed' then
    oc, oa = 1, cur.gen
  elseif cur.state == 'open' then
    if (cur.opened + period_ms(cur)) * 1000 <= now_us then
      nxt = enter(cur, 'half-open')
      nxt.trial = now_ms + lease_ms
      nxt.trials = 1
      oc, oa, ob = 1, nxt.gen, 1
    else
      oc, oa = 2, 1
    end
  elseif cur.trials >= math.max(trials_max, 1) then
    oc, oa = 2, 2
  else
    nxt.trial = now_ms + lease_ms
    nxt.trials = cur.trials + 1
    oc, oa, ob = 1, cur.gen, 1
  end
elseif (op == 'success' or op == 'failure' or op == 'flush' or op == 'trip')
    and op_gen ~= cur.gen then
  oc = 4
elseif op == 'flush' then
  if cur.state == 'closed' and rates and pending > 0 then
    wc, wf, ws = window_add(cur.gen, pending, 0, 0)
  end
  oc = 5
elseif op == 'trip' then
  if cur.state == 'closed' then
    nxt = enter(cur, 'open')
    oc, oa = 3, tonumber(ARGV[4]) or 5
  else
    oc = 4
  end
elseif op == 'success' then
  if cur.state == 'closed' then
    nxt.fails = 0
    oc = 3
    if rates then
      local slow = 0
      if op_slow then slow = 1 end
      -- The success itself is among the process's counted successes; a
      -- fast one never opens the circuit, a slow one may.
      wc, wf, ws = window_add(cur.gen, pending, 0, slow)
      local why = 0
      if op_slow then why = rate_trips(wc, wf, ws) end
      if why ~= 0 then
        nxt = enter(cur, 'open')
        oa = why
      end
    end
  elseif cur.state == 'half-open' and op_trial then
    release(nxt)
    nxt.succ = math.min(cur.succ + 1, MAX_SUCC)
    if nxt.succ >= threshold then
      nxt = enter(cur, 'closed')
    end
    oc = 3
  else
    oc = 4
  end
elseif op == 'failure' then
  if cur.state == 'closed' then
    oc = 3
    if rates then
      local slow = 0
      if op_slow then slow = 1 end
      -- Successes first, so the decision sees every one reported. A rate
      -- that holds opens the circuit as state.rs `Op::Trip` does (the
      -- failure is not added to the consecutive count).
      wc, wf, ws = window_add(cur.gen, pending + 1, 1, slow)
      local why = rate_trips(wc, wf, ws)
      if why ~= 0 then
        nxt = enter(cur, 'open')
        oa = why
      end
    end
    if oa == 0 and consecutive then
      nxt.fails = math.min(cur.fails + 1, MAX_FAIL)
      if nxt.fails >= fail_max then
        local fails = nxt.fails
        nxt = enter(cur, 'open')
        nxt.fails = fails
        oa = 3
      end
    end
  elseif cur.state == 'half-open' and op_trial then
    nxt = enter(cur, 'open')
    nxt.fails = math.min(cur.fails + 1, MAX_FAIL)
    oc, oa = 3, 4
  else
    oc = 4
  end
elseif op == 'cancel' then
  if op_gen == cur.gen and cur.state == 'half-open' and cur.trial ~= 0 then
    release(nxt)
    oc = 5
  else
    oc = 4
  end
elseif op == 'force' then
  nxt = enter(cur, target)
  oc = 5
elseif op == 'reset' then
  nxt = enter(cur, 'closed')
  oc = 5
end

-- Half-open with several trials, or after a counted re-opening, keeps no
-- failure count (state.rs `step`, `Snapshot::fail_counter`).
if nxt.state == 'half-open' and (nxt.trials > 1 or nxt.reopens > 0) then
  nxt.fails = 0
end

local before = encode(cur)
local after = before
if (op ~= 'read' or repaired) and not same(stored, nxt) then
  local base = stored.seq
  if base > now_us + SEQ_AHEAD_US then base = now_us end
  nxt.seq = base + 1
  after = encode(nxt)
  redis.call('SET', KEYS[1], after, 'PX', ttl_ms)
  redis.call('PUBLISH', ARGV[10], ARGV[11] .. '\n' .. cur.state .. '\n' .. after .. '\n' .. ARGV[12])
end
if rates and op == 'read' and cur.state == 'closed' then
  wc, wf, ws = window_totals(window_read(), cur.gen)
end
return {'ok', before, after, oc, oa, ob, now_us, missing, wc, wf, ws}
