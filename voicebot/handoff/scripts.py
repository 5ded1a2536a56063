"""Lua scripts of the handoff queue. Each state change runs as one script, so it is atomic
across every voicebot process that shares the Redis server.

Times come from Redis `TIME` (milliseconds), so processes with skewed clocks agree.
NOTE: the scripts build key names from ARGV, which a single Redis server allows but Redis
Cluster does not. Moving to Cluster needs hash tags and declared KEYS.

Every script takes the key prefix as ARGV[1]. Keys under the prefix:
- `h:{id}`: hash of one handoff; `h:{id}:events`: its event stream;
  `h:{id}:declined`: set of reps who declined it.
- `waiting:{skill}`: sorted set of handoffs waiting or offered, best first.
- `open`: set of handoffs not yet finished.
- `reps`: set of rep ids; `rep:{rep_id}`: presence hash with a TTL.
- `console`: stream of queue changes for the console processes.
"""

from __future__ import annotations

# Shared helpers, prepended to every script.
_COMMON = """
local p = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function event(hid, kind, rep, reason, now, maxlen, ttl)
  local key = p .. 'h:' .. hid .. ':events'
  redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'type', kind, 'rep_id', rep or '',
    'reason', reason or '', 'at_ms', string.format('%.0f', now))
  redis.call('EXPIRE', key, ttl)
end
local function console(kind, hid, rep, skill, maxlen)
  redis.call('XADD', p .. 'console', 'MAXLEN', '~', maxlen, '*', 'type', kind,
    'handoff_id', hid or '', 'rep_id', rep or '', 'skill', skill or '')
end
local function clear_rep_field(rep, field, hid)
  if rep == nil or rep == '' then return end
  local rk = p .. 'rep:' .. rep
  if redis.call('HGET', rk, field) == hid then
    redis.call('HSET', rk, field, '')
  end
end
local function requeue(hid, h, now, deadline_ms)
  redis.call('HSET', h, 'state', 'waiting', 'offered_to', '', 'rep_id', '', 'offer_expires_ms', '0')
  if deadline_ms ~= nil then
    redis.call('HSET', h, 'deadline_ms', string.format('%.0f', deadline_ms))
  end
  local skill = redis.call('HGET', h, 'skill')
  redis.call('ZADD', p .. 'waiting:' .. skill, redis.call('HGET', h, 'score'), hid)
  return skill
end
local function finish(hid, h, state, reason, now)
  local skill = redis.call('HGET', h, 'skill')
  redis.call('HSET', h, 'state', state, 'end_reason', reason or '', 'ended_ms', string.format('%.0f', now))
  redis.call('ZREM', p .. 'waiting:' .. skill, hid)
  redis.call('SREM', p .. 'open', hid)
  return skill
end
"""

# ARGV: prefix, id, call_id, skill, priority, reasons JSON, screen-pop JSON, wait timeout ms,
# record TTL s, bridge rate Hz, max priority, stream maxlen.
REQUEST = _COMMON + """
local hid = ARGV[2]
local h = p .. 'h:' .. hid
if redis.call('EXISTS', h) == 1 then return 'exists' end
local now = now_ms()
local seq = redis.call('INCR', p .. 'seq')
-- Higher priority sorts first, then arrival order; a re-queued handoff keeps its score.
local score = string.format('%.0f', (tonumber(ARGV[11]) - tonumber(ARGV[5])) * 1e12 + seq)
redis.call('HSET', h, 'handoff_id', hid, 'call_id', ARGV[3], 'skill', ARGV[4], 'priority', ARGV[5],
  'reasons', ARGV[6], 'screen_pop', ARGV[7], 'state', 'waiting', 'score', score,
  'created_ms', string.format('%.0f', now), 'deadline_ms', string.format('%.0f', now + tonumber(ARGV[8])),
  'wait_timeout_ms', ARGV[8], 'offered_to', '', 'offer_expires_ms', '0', 'rep_id', '',
  'bridge_rate_hz', ARGV[10])
redis.call('EXPIRE', h, ARGV[9])
redis.call('ZADD', p .. 'waiting:' .. ARGV[4], score, hid)
redis.call('SADD', p .. 'open', hid)
console('queue_changed', hid, '', ARGV[4], ARGV[12])
return 'ok'
"""

# ARGV: prefix, offer timeout ms, stream maxlen, record TTL s, then the skills.
# Offers the best waiting handoffs to the reps who have been available longest.
DISPATCH = _COMMON + """
local now = now_ms()
local free = {}
for _, rid in ipairs(redis.call('SMEMBERS', p .. 'reps')) do
  local rk = p .. 'rep:' .. rid
  if redis.call('EXISTS', rk) == 0 then
    redis.call('SREM', p .. 'reps', rid)
  else
    local r = redis.call('HMGET', rk, 'status', 'skills', 'since_ms', 'offer', 'handoff')
    if r[1] == 'available' and (not r[4] or r[4] == '') and (not r[5] or r[5] == '') then
      table.insert(free, {id = rid, skills = ',' .. (r[2] or '') .. ',', since = tonumber(r[3]) or 0})
    end
  end
end
if #free == 0 then return 0 end
table.sort(free, function(a, b)
  if a.since == b.since then return a.id < b.id end
  return a.since < b.since
end)
local candidates = {}
for i = 5, #ARGV do
  local skill = ARGV[i]
  local items = redis.call('ZRANGE', p .. 'waiting:' .. skill, 0, 199, 'WITHSCORES')
  for j = 1, #items, 2 do
    local hid = items[j]
    local state = redis.call('HGET', p .. 'h:' .. hid, 'state')
    if not state then
      redis.call('ZREM', p .. 'waiting:' .. skill, hid)
    elseif state == 'waiting' then
      table.insert(candidates, {id = hid, skill = skill, score = tonumber(items[j + 1])})
    end
  end
end
table.sort(candidates, function(a, b) return a.score < b.score end)
local offered = 0
for _, c in ipairs(candidates) do
  for _, r in ipairs(free) do
    if not r.taken and string.find(r.skills, ',' .. c.skill .. ',', 1, true)
        and redis.call('SISMEMBER', p .. 'h:' .. c.id .. ':declined', r.id) == 0 then
      r.taken = true
      redis.call('HSET', p .. 'h:' .. c.id, 'state', 'offered', 'offered_to', r.id,
        'offer_expires_ms', string.format('%.0f', now + tonumber(ARGV[2])))
      redis.call('HSET', p .. 'rep:' .. r.id, 'offer', c.id)
      event(c.id, 'offered', r.id, '', now, ARGV[3], ARGV[4])
      console('offer', c.id, r.id, c.skill, ARGV[3])
      offered = offered + 1
      break
    end
  end
end
return offered
"""

# ARGV: prefix, id, rep id, stream maxlen, record TTL s.
ACCEPT = _COMMON + """
local hid, rep = ARGV[2], ARGV[3]
local h = p .. 'h:' .. hid
local state = redis.call('HGET', h, 'state')
if not state then return 'not_found' end
if state ~= 'offered' or redis.call('HGET', h, 'offered_to') ~= rep then return 'state:' .. state end
local now = now_ms()
local skill = redis.call('HGET', h, 'skill')
redis.call('HSET', h, 'state', 'accepted', 'rep_id', rep, 'offered_to', '', 'accepted_ms', string.format('%.0f', now))
redis.call('ZREM', p .. 'waiting:' .. skill, hid)
local rk = p .. 'rep:' .. rep
if redis.call('EXISTS', rk) == 1 then
  redis.call('HSET', rk, 'offer', '', 'handoff', hid, 'status', 'busy', 'since_ms', string.format('%.0f', now))
end
event(hid, 'accepted', rep, '', now, ARGV[4], ARGV[5])
console('accepted', hid, rep, skill, ARGV[4])
return 'ok'
"""

# ARGV: prefix, id, rep id, reason, stream maxlen, record TTL s, set rep away (1 or 0).
# Used for a decline and for an offer that expired or whose rep vanished.
DECLINE = _COMMON + """
local hid, rep = ARGV[2], ARGV[3]
local h = p .. 'h:' .. hid
local state = redis.call('HGET', h, 'state')
if not state then return 'not_found' end
if state ~= 'offered' or redis.call('HGET', h, 'offered_to') ~= rep then return 'state:' .. state end
local now = now_ms()
redis.call('SADD', p .. 'h:' .. hid .. ':declined', rep)
redis.call('EXPIRE', p .. 'h:' .. hid .. ':declined', ARGV[6])
local skill = requeue(hid, h, now, nil)
clear_rep_field(rep, 'offer', hid)
if ARGV[7] == '1' and redis.call('EXISTS', p .. 'rep:' .. rep) == 1 then
  redis.call('HSET', p .. 'rep:' .. rep, 'status', 'away', 'since_ms', string.format('%.0f', now))
  console('presence_changed', '', rep, '', ARGV[5])
end
event(hid, 'declined', rep, ARGV[4], now, ARGV[5], ARGV[6])
console('offer_withdrawn', hid, rep, skill, ARGV[5])
console('queue_changed', hid, '', skill, ARGV[5])
return 'ok'
"""

# ARGV: prefix, id, rep id, stream maxlen, record TTL s.
REP_DISCONNECTED = _COMMON + """
local hid, rep = ARGV[2], ARGV[3]
local h = p .. 'h:' .. hid
local state = redis.call('HGET', h, 'state')
if not state then return 'not_found' end
if state ~= 'accepted' or redis.call('HGET', h, 'rep_id') ~= rep then return 'state:' .. state end
local now = now_ms()
-- The caller has already waited once, so the wait timeout starts again.
local skill = requeue(hid, h, now, now + tonumber(redis.call('HGET', h, 'wait_timeout_ms')))
clear_rep_field(rep, 'handoff', hid)
if redis.call('EXISTS', p .. 'rep:' .. rep) == 1 then
  redis.call('HSET', p .. 'rep:' .. rep, 'status', 'away', 'since_ms', string.format('%.0f', now))
end
event(hid, 'rep_disconnected', rep, '', now, ARGV[4], ARGV[5])
console('queue_changed', hid, '', skill, ARGV[4])
return 'ok'
"""

# ARGV: prefix, id, rep id, stream maxlen, record TTL s. The rep stays busy (wrap-up).
HANGUP = _COMMON + """
local hid, rep = ARGV[2], ARGV[3]
local h = p .. 'h:' .. hid
local state = redis.call('HGET', h, 'state')
if not state then return 'not_found' end
if state ~= 'accepted' or redis.call('HGET', h, 'rep_id') ~= rep then return 'state:' .. state end
local now = now_ms()
local skill = finish(hid, h, 'ended', 'rep_hangup', now)
clear_rep_field(rep, 'handoff', hid)
event(hid, 'ended', rep, 'rep_hangup', now, ARGV[4], ARGV[5])
console('call_ended', hid, rep, skill, ARGV[4])
return 'ok'
"""

# ARGV: prefix, id, reason, stream maxlen, record TTL s. Allowed in any open state.
CANCEL = _COMMON + """
local hid = ARGV[2]
local h = p .. 'h:' .. hid
local state = redis.call('HGET', h, 'state')
if not state then return 'not_found' end
if state ~= 'waiting' and state ~= 'offered' and state ~= 'accepted' then return 'state:' .. state end
local now = now_ms()
local offered_to = redis.call('HGET', h, 'offered_to')
local rep = redis.call('HGET', h, 'rep_id')
local skill = finish(hid, h, 'cancelled', ARGV[3], now)
clear_rep_field(offered_to, 'offer', hid)
clear_rep_field(rep, 'handoff', hid)
event(hid, 'cancelled', '', ARGV[3], now, ARGV[4], ARGV[5])
if state == 'accepted' then
  console('call_ended', hid, rep, skill, ARGV[4])
elseif state == 'offered' then
  console('offer_withdrawn', hid, offered_to, skill, ARGV[4])
end
console('queue_changed', hid, '', skill, ARGV[4])
return 'ok'
"""

# ARGV: prefix, stream maxlen, record TTL s.
# Finds handoffs past their wait deadline, offers nobody answered (redirect on no answer:
# the rep is set away, as contact-centre ACDs do) and reps whose presence key expired.
SWEEP = _COMMON + """
local now = now_ms()
local changes = {}
for _, hid in ipairs(redis.call('SMEMBERS', p .. 'open')) do
  local h = p .. 'h:' .. hid
  local v = redis.call('HMGET', h, 'state', 'deadline_ms', 'offered_to', 'offer_expires_ms', 'rep_id', 'wait_timeout_ms')
  local state = v[1]
  if not state then
    redis.call('SREM', p .. 'open', hid)
  elseif (state == 'waiting' or state == 'offered') and now >= tonumber(v[2]) then
    local skill = finish(hid, h, 'timed_out', 'wait_timeout', now)
    clear_rep_field(v[3], 'offer', hid)
    event(hid, 'timed_out', '', 'wait_timeout', now, ARGV[2], ARGV[3])
    if state == 'offered' then console('offer_withdrawn', hid, v[3], skill, ARGV[2]) end
    console('queue_changed', hid, '', skill, ARGV[2])
    table.insert(changes, 'timed_out:' .. hid)
  elseif state == 'offered' then
    local rep = v[3]
    local gone = redis.call('EXISTS', p .. 'rep:' .. rep) == 0
    if gone or now >= tonumber(v[4]) then
      local reason = 'offer_timeout'
      if gone then reason = 'rep_gone' end
      redis.call('SADD', h .. ':declined', rep)
      redis.call('EXPIRE', h .. ':declined', ARGV[3])
      local skill = requeue(hid, h, now, nil)
      clear_rep_field(rep, 'offer', hid)
      if not gone then
        redis.call('HSET', p .. 'rep:' .. rep, 'status', 'away', 'since_ms', string.format('%.0f', now))
        console('presence_changed', '', rep, '', ARGV[2])
      end
      event(hid, 'declined', rep, reason, now, ARGV[2], ARGV[3])
      console('offer_withdrawn', hid, rep, skill, ARGV[2])
      console('queue_changed', hid, '', skill, ARGV[2])
      table.insert(changes, reason .. ':' .. hid)
    end
  elseif state == 'accepted' and redis.call('EXISTS', p .. 'rep:' .. v[5]) == 0 then
    local skill = requeue(hid, h, now, now + tonumber(v[6]))
    event(hid, 'rep_disconnected', v[5], 'presence_expired', now, ARGV[2], ARGV[3])
    console('call_ended', hid, v[5], skill, ARGV[2])
    console('queue_changed', hid, '', skill, ARGV[2])
    table.insert(changes, 'rep_disconnected:' .. hid)
  end
end
return changes
"""

# ARGV: prefix, rep id, status, skills (comma-separated), name, presence TTL ms, stream maxlen,
# record TTL s. Returns 'ok', 'in_call' (a rep in a call cannot become available) or the id
# of an offer the status change withdrew, as 'withdrew:{id}'.
SET_PRESENCE = _COMMON + """
local rep, status = ARGV[2], ARGV[3]
local rk = p .. 'rep:' .. rep
local now = now_ms()
local current = redis.call('HMGET', rk, 'status', 'offer', 'handoff')
if status == 'available' and current[3] and current[3] ~= '' then return 'in_call' end
if current[1] ~= status then
  redis.call('HSET', rk, 'since_ms', string.format('%.0f', now))
end
redis.call('HSET', rk, 'status', status, 'skills', ARGV[4], 'name', ARGV[5])
if not current[2] then redis.call('HSET', rk, 'offer', '') end
if not current[3] then redis.call('HSET', rk, 'handoff', '') end
redis.call('PEXPIRE', rk, ARGV[6])
redis.call('SADD', p .. 'reps', rep)
console('presence_changed', '', rep, '', ARGV[7])
local offer = current[2]
if status ~= 'available' and offer and offer ~= '' then
  local h = p .. 'h:' .. offer
  if redis.call('HGET', h, 'state') == 'offered' and redis.call('HGET', h, 'offered_to') == rep then
    redis.call('SADD', h .. ':declined', rep)
    redis.call('EXPIRE', h .. ':declined', ARGV[8])
    local skill = requeue(offer, h, now, nil)
    redis.call('HSET', rk, 'offer', '')
    event(offer, 'declined', rep, 'rep_' .. status, now, ARGV[7], ARGV[8])
    console('offer_withdrawn', offer, rep, skill, ARGV[7])
    console('queue_changed', offer, '', skill, ARGV[7])
    return 'withdrew:' .. offer
  end
  redis.call('HSET', rk, 'offer', '')
end
return 'ok'
"""
