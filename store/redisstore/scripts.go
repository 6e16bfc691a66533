package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts. Redis runs a script atomically: no other command runs
// during it, so each script sees and leaves the keys consistent. Each
// declares every key it touches in KEYS, all under the store's one hash
// tag. go-redis's Script.Run sends EVALSHA and falls back to EVAL when
// the server does not have the script cached (after a restart, say).
//
// Positions are Lua numbers (doubles), exact up to 2^53, and are always
// formatted with %d: tostring would print large ones in exponent form.
// A stream ID is "<pos>-0".

// appendScript appends a batch.
//
//	KEYS  seq, log, ids, topics, then the index stream of each topic named
//	      in ARGV, in that order
//	ARGV  T, the number of topics; T topic names; then per record: its
//	      publisher's ID ("" to assign one), its topics joined by NUL, its
//	      blob (see codec.go), k, and k 1-based places in the topic names
//
// It returns {0, id} when an ID is already taken, by the log or earlier
// in the batch, having changed nothing; else {last, ts}: the batch holds
// positions last-n+1 to last, stamped with ts (Redis's clock, in
// microseconds since the Unix epoch).
var appendScript = redis.NewScript(`
local T = tonumber(ARGV[1])
local recs, seen = {}, {}
local i = T + 2
while i <= #ARGV do
  local id = ARGV[i]
  if id ~= '' then
    if seen[id] or redis.call('HEXISTS', KEYS[3], id) == 1 then
      return {0, id}
    end
    seen[id] = true
  end
  recs[#recs + 1] = i
  i = i + 4 + tonumber(ARGV[i + 3])
end
local n = #recs
local last = redis.call('INCRBY', KEYS[1], n)
local now = redis.call('TIME')
local ts = now[1] .. string.format('%06d', tonumber(now[2]))
local pos = last - n
for _, i in ipairs(recs) do
  pos = pos + 1
  local sid = string.format('%d-0', pos)
  local id = ARGV[i]
  redis.call('XADD', KEYS[2], sid, 'ts', ts, 'id', id, 'tp', ARGV[i + 1], 'r', ARGV[i + 2])
  if id ~= '' then
    redis.call('HSET', KEYS[3], id, string.format('%d', pos))
  end
  for q = 1, tonumber(ARGV[i + 3]) do
    redis.call('XADD', KEYS[4 + tonumber(ARGV[i + 3 + q])], sid, 'p', '')
  end
end
for q = 1, T do
  redis.call('ZADD', KEYS[4], 0, ARGV[1 + q])
end
return {last, ts}
`)

// boundsScript returns {first, last}. The log holds every position from
// first to last: Append adds positions with the counter, and Trim
// removes only the oldest.
//
//	KEYS  seq, log
var boundsScript = redis.NewScript(`
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local len = redis.call('XLEN', KEYS[2])
local first = 0
if len > 0 then first = last - len + 1 end
return {first, last}
`)

// trimmedCheck is the start of indexScript: it returns {-1} when records
// after ARGV[1], the position to read after, are gone. Read's scan does
// the same check in Go (see trimmedAfter).
const trimmedCheck = `
local after, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local len = redis.call('XLEN', KEYS[2])
if (len > 0 and last - len + 1 > after + 1) or (len == 0 and last > after) then
  return {-1}
end
`

// indexScript returns {more, positions...}: the positions after
// ARGV[1] of the records on the topics whose index streams are KEYS[3:],
// merged in position order, a record on several of them once, up to
// ARGV[2] of them, and 1 in more when there may be others after them; or
// {-1} when records after ARGV[1] were trimmed. The caller fetches the
// records with plain XRANGEs: returning them through Lua's tables costs
// Redis several times what XRANGE does.
//
//	KEYS  seq, log, index streams
var indexScript = redis.NewScript(trimmedCheck + `
local start = string.format('(%d-0', after)
local ps, seen, more = {}, {}, 0
for k = 3, #KEYS do
  local es = redis.call('XRANGE', KEYS[k], start, '+', 'COUNT', count)
  if #es == count then more = 1 end
  for _, e in ipairs(es) do
    local p = tonumber(string.match(e[1], '^%d+'))
    if not seen[p] then
      seen[p] = true
      ps[#ps + 1] = p
    end
  end
end
table.sort(ps)
if #ps > count then more = 1 end
local out = {more}
for j = 1, math.min(#ps, count) do out[#out + 1] = ps[j] end
return out
`)

// trimPlanScript finds what the next Trim step removes, changing
// nothing: among the ARGV[3] oldest records, those up to the first one
// that is after position ARGV[1] and not older than ARGV[2] (Unix
// microseconds; 0 for no age bound). It returns {cut, more, n, topics...,
// ids...}: remove positions up to cut (0 for none); more is 1 when records
// after cut may be due as well; the n topics and the publisher's IDs,
// as pairs of ID and position, of the records up to cut.
//
//	KEYS  log
var trimPlanScript = redis.NewScript(`
local countCut, ageCut, chunk = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local es = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', chunk)
local cut, more = 0, 0
if #es == chunk then more = 1 end
local topics, seen, ids = {}, {}, {}
for _, e in ipairs(es) do
  local p = tonumber(string.match(e[1], '^%d+'))
  local f, ts, tp, id = e[2], 0, '', ''
  for q = 1, #f, 2 do
    if f[q] == 'ts' then ts = tonumber(f[q + 1])
    elseif f[q] == 'tp' then tp = f[q + 1]
    elseif f[q] == 'id' then id = f[q + 1] end
  end
  if p > countCut and (ageCut == 0 or ts >= ageCut) then
    more = 0
    break
  end
  cut = p
  for t in string.gmatch(tp, '[^%z]+') do
    if not seen[t] then
      seen[t] = true
      topics[#topics + 1] = t
    end
  end
  if id ~= '' then
    ids[#ids + 1] = id
    ids[#ids + 1] = string.format('%d', p)
  end
end
local out = {string.format('%d', cut), more, #topics}
for _, t in ipairs(topics) do out[#out + 1] = t end
for _, v in ipairs(ids) do out[#out + 1] = v end
return out
`)

// trimApplyScript removes the records up to position ARGV[1] with their
// index entries and IDs, and returns how many records it removed. Nodes
// that trim at once remove each record once: a record another removed
// is not counted again.
//
//	KEYS  log, ids, topics, index streams of the records' topics
//	ARGV  cut, T, T topic names (of KEYS[4:]), then pairs of a
//	      publisher's ID and its record's position
//
// An ID is removed only while the hash maps it to that record's
// position: once a trimmed ID is free, a new record may take it.
var trimApplyScript = redis.NewScript(`
local minid = string.format('%d-0', tonumber(ARGV[1]) + 1)
local n = redis.call('XTRIM', KEYS[1], 'MINID', minid)
local T = tonumber(ARGV[2])
for k = 1, T do
  local key = KEYS[3 + k]
  redis.call('XTRIM', key, 'MINID', minid)
  if redis.call('XLEN', key) == 0 then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[3], ARGV[2 + k])
  end
end
for i = 3 + T, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
return n
`)

// assignedScript returns 1 when the log holds a record at position
// ARGV[1] whose ID is assigned (the decimal position), else 0.
//
//	KEYS  log
var assignedScript = redis.NewScript(`
local sid = string.format('%d-0', tonumber(ARGV[1]))
local e = redis.call('XRANGE', KEYS[1], sid, sid)
if not e[1] then return 0 end
local f = e[1][2]
for q = 1, #f, 2 do
  if f[q] == 'id' then
    if f[q + 1] == '' then return 1 end
    return 0
  end
end
return 0
`)

// timeScript returns the server's clock in Unix microseconds: the clock
// appendScript stamps records with, of the node that holds KEYS[1] on a
// cluster.
var timeScript = redis.NewScript(`
local now = redis.call('TIME')
return tonumber(now[1]) * 1000000 + tonumber(now[2])
`)
