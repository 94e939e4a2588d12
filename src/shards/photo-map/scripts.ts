import {createHash} from 'node:crypto'

import {LISTPACK_MAX_ENTRIES, SPLIT_FILL} from './layout.js'

/**
 * The photo map's Lua scripts (layout.ts explains the scheme). Each reads the active generation
 * (`<prefix>:gen`) and its state hash (`<prefix>:<gen>:state`: l = level, s = split pointer, n = mappings)
 * itself, so a call is one round trip and always addresses the buckets as they are at that moment; a
 * script runs atomically, so no reader or writer ever sees a bucket half split. Ids arrive permuted, as
 * 8 big-endian bytes each (ARGV "xs"). The keys are built in the script (not passed as KEYS): fine on a
 * single Redis, not on Redis Cluster.
 */
export interface Script {
  lua: string
  sha: string
}

function script(lua: string): Script {
  return {lua, sha: createHash('sha1').update(lua).digest('hex')}
}

/** Sets L, S, m = 2^L and the field widths w0 (level L) and w1 (level L + 1) from the state hash. */
const READ_STATE = `local base = prefix .. ':' .. gen .. ':'
local st = redis.call('HMGET', base .. 'state', 'l', 's', 'n')
local L, S, N = tonumber(st[1]) or 0, tonumber(st[2]) or 0, tonumber(st[3]) or 0
local m = 2 ^ L
local w0, w1 = 8 - math.floor(L / 8), 8 - math.floor((L + 1) / 8)`

/** For id i (0-based) of xs: its bucket key and field. */
const LOCATE = `local function locate(i)
  local p = 8 * i
  local a, b, c, d = string.byte(xs, p + 5, p + 8)
  local low = ((a * 256 + b) * 256 + c) * 256 + d
  local k = low % m
  if k < S then return base .. (low % (m + m)), string.sub(xs, p + 1, p + w1) end
  return base .. k, string.sub(xs, p + 1, p + w0)
end`

/**
 * ARGV: prefix, xs. Answers the owners joined by commas, empty where unknown. A miss in a bucket tries its
 * overflow hash (layout.ts), which exists only for full buckets; lookups of known photos rarely miss.
 */
export const GET_MANY = script(`local prefix, xs = ARGV[1], ARGV[2]
local gen = redis.call('GET', prefix .. ':gen')
if not gen then return string.rep(',', #xs / 8 - 1) end
${READ_STATE}
${LOCATE}
local out = {}
for i = 0, #xs / 8 - 1 do
  local key, f = locate(i)
  local v = redis.call('HGET', key, f)
  if not v then v = redis.call('HGET', key .. '+', f) end
  out[i + 1] = v or ''
end
return table.concat(out, ',')`)

/**
 * ARGV: prefix, generation ('' = the active one, made 1 when there is none), xs, then one user id per id.
 * Writes every mapping, splitting a bucket whenever the mappings exceed SPLIT_FILL per bucket; answers the
 * number of new mappings. A split writes its new bucket first and changes the state last, and the state is
 * saved after every split and before an error is answered (a key of another type in the way), so a failed
 * call leaves the buckets and the state in agreement: no bucket is ever half split.
 */
export const SET_MANY = script(`local prefix, gen, xs = ARGV[1], ARGV[2], ARGV[3]
local FILL, CAP = ${SPLIT_FILL}, ${LISTPACK_MAX_ENTRIES}
if gen == '' then
  gen = redis.call('GET', prefix .. ':gen')
  if not gen then gen = '1'; redis.call('SET', prefix .. ':gen', gen) end
end
${READ_STATE}
${LOCATE}
local stateKey = base .. 'state'
local function put(key, f, v)
  if redis.call('HLEN', key) < CAP then return redis.call('HSET', key, f, v) end
  if redis.call('HEXISTS', key, f) == 1 then redis.call('HSET', key, f, v); return 0 end
  return redis.call('HSET', key .. '+', f, v)
end
-- flat field/value pairs into key (at most CAP) and its overflow (the rest)
local function fill(key, flat)
  local n = math.min(#flat, 2 * CAP)
  if n > 0 then redis.call('HSET', key, unpack(flat, 1, n)) end
  if #flat > n then redis.call('HSET', key .. '+', unpack(flat, n + 1, #flat)) end
end
local function split()
  local src, dst = base .. S, base .. (S + m)
  local bit, w = 2 ^ (L % 8), w0
  local shrink = w1 < w0
  local all = redis.call('HGETALL', src)
  local over = redis.call('HGETALL', src .. '+')
  for j = 1, #over do all[#all + 1] = over[j] end
  local stay, move, gone = {}, {}, {}
  for j = 1, #all, 2 do
    local f = all[j]
    local t = stay
    if math.floor(string.byte(f, w) / bit) % 2 == 1 then t = move; gone[#gone + 1] = f end
    if shrink then f = string.sub(f, 1, w - 1) end
    t[#t + 1] = f
    t[#t + 1] = all[j + 1]
  end
  fill(dst, move) -- first: if dst is in the way (another type), this fails before anything changed
  if shrink or #over > 0 then
    redis.call('DEL', src, src .. '+')
    fill(src, stay)
  elseif #gone > 0 then
    redis.call('HDEL', src, unpack(gone))
  end
  S = S + 1
  if S == m then L, S, m = L + 1, 0, m + m; w0, w1 = w1, 8 - math.floor((L + 1) / 8) end
  redis.call('HSET', stateKey, 'l', L, 's', S, 'n', N)
end
local added = 0
for i = 0, #xs / 8 - 1 do
  local key, f = locate(i)
  local ok, r = pcall(put, key, f, ARGV[4 + i])
  if ok then
    N, added = N + r, added + r
    if N > FILL * (m + S) then ok, r = pcall(split) end
  end
  if not ok then
    redis.call('HSET', stateKey, 'l', L, 's', S, 'n', N)
    return redis.error_reply('photo map write stopped after ' .. added .. ' new mappings: ' .. (type(r) == 'table' and r.err or tostring(r)))
  end
end
redis.call('HSET', stateKey, 'l', L, 's', S, 'n', N)
return added`)

/** ARGV: prefix, xs (one id). Removes the mapping (refilling the bucket from its overflow); answers 1 or 0. */
export const DELETE = script(`local prefix, xs = ARGV[1], ARGV[2]
local gen = redis.call('GET', prefix .. ':gen')
if not gen then return 0 end
${READ_STATE}
${LOCATE}
local key, f = locate(0)
local over = key .. '+'
local r = redis.call('HDEL', key, f)
if r == 1 then
  local moved = redis.call('HRANDFIELD', over, 1, 'WITHVALUES')
  if #moved == 2 then
    redis.call('HDEL', over, moved[1])
    redis.call('HSET', key, moved[1], moved[2])
  end
else
  r = redis.call('HDEL', over, f)
end
if r == 1 then redis.call('HINCRBY', base .. 'state', 'n', -1) end
return r`)
