import {createHash} from 'node:crypto'

import {LISTPACK_MAX_ENTRIES, SPARE_BITS, SPLIT_FILL} from './layout.js'

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

// spare() reads v mod q off v's last two digits: right while q = 2^SPARE_BITS divides 100
if (100 % 2 ** SPARE_BITS !== 0) throw new Error('SPARE_BITS is too large for spare() in the photo-map scripts')

function script(lua: string): Script {
  return {lua, sha: createHash('sha1').update(lua).digest('hex')}
}

/**
 * Sets L, S, M = 2^L, the field widths w0 (level L) and w1 (level L + 1) and q0, q1 = 2^m at each (1 where
 * the value carries no spare bits), from the state hash; and the value helpers, exact past 2^53 (Lua
 * numbers are doubles: a long value is taken as hi·10^10 + lo, each part exact).
 */
const READ_STATE = `local base = prefix .. ':' .. gen .. ':'
local st = redis.call('HMGET', base .. 'state', 'l', 's', 'n')
local L, S, N = tonumber(st[1]) or 0, tonumber(st[2]) or 0, tonumber(st[3]) or 0
local M = 2 ^ L
local function widths(l)
  local w = 8 - math.floor((l + ${SPARE_BITS}) / 8)
  return w, 2 ^ math.max(0, 64 - 8 * w - l)
end
local w0, q0 = widths(L)
local w1, q1 = widths(L + 1)
local E10 = 1e10
-- the spare bits of a value v (decimal): 100 is a multiple of q, so its last 2 digits tell (read as
-- bytes: tonumber made the lookup's check of them an eighth of its time, measured)
local function spare(v, q)
  local c1, c0 = string.byte(v, -2, -1)
  if not c0 then c1, c0 = 48, c1 end
  return ((c1 - 48) * 10 + c0 - 48) % q
end
-- the user id in a value v (decimal) of q = 2^m: floor(v / q)
local function owner(v, q)
  if #v < 16 then return string.format('%d', math.floor(tonumber(v) / q)) end
  local hi, lo = tonumber(string.sub(v, 1, -11)), tonumber(string.sub(v, -10))
  local rh = hi % q
  return string.format('%d%010d', (hi - rh) / q, math.floor((rh * E10 + lo) / q))
end
-- the value of user id o (decimal) with spare bits r: o * q + r (a number when exact: redis.call writes
-- integers below 2^53 in full)
local function value(o, q, r)
  if #o < 16 then return tonumber(o) * q + r end
  local t = tonumber(string.sub(o, -10)) * q + r
  local lo = t % E10
  return string.format('%d%010d', tonumber(string.sub(o, 1, -11)) * q + (t - lo) / E10, lo)
end`

/**
 * For id i (0-based) of xs: its bucket key, its field's width w and offset p in xs (the field is
 * xs[p+1 .. p+w], the wide one a byte more), q = 2^m and its spare bits.
 */
const LOCATE = `local function locate(i)
  local p = 8 * i
  local a, b, c, d = string.byte(xs, p + 5, p + 8)
  local low = ((a * 256 + b) * 256 + c) * 256 + d
  local k = low % M
  if k < S then return string.format('%s%d', base, low % (M + M)), p, w1, q1, math.floor(low / (M + M)) % q1 end
  return string.format('%s%d', base, k), p, w0, q0, math.floor(low / M) % q0
end`

/**
 * ARGV: prefix, xs. Answers the values joined by commas (empty where unknown), L and S: the client takes
 * the user id out of each value (value >> m, m from the id's level). A miss in a bucket tries its
 * overflow hash (layout.ts), which exists only for full buckets and for ids whose short field another
 * id holds: a value whose spare bits are not the id's own is such a miss. Lookups of known photos rarely
 * miss.
 */
export const GET_MANY = script(`local prefix, xs = ARGV[1], ARGV[2]
local gen = redis.call('GET', prefix .. ':gen')
if not gen then return {string.rep(',', #xs / 8 - 1), 0, 0} end
${READ_STATE}
-- locate() and spare() written out, the spare bits taken only where the value carries them: the calls
-- cost a fifth of the lookup's time (measured)
local out = {}
-- the key in one format('%s%d'): \`base .. k\` writes the number with '%.14g' and makes a second string,
-- which cost a seventh of the lookup in Redis (measured)
local call, sub, byte, floor, fmt = redis.call, string.sub, string.byte, math.floor, string.format
for i = 0, #xs / 8 - 1 do
  local p = 8 * i
  local a, b, c, d = byte(xs, p + 5, p + 8)
  local low = ((a * 256 + b) * 256 + c) * 256 + d
  local k, w, q, below = low % M, w0, q0, M
  if k < S then k, w, q, below = low % (M + M), w1, q1, M + M end
  local key = fmt('%s%d', base, k)
  local v = call('HGET', key, sub(xs, p + 1, p + w))
  if q == 1 then
    if not v then v = call('HGET', key .. '+', sub(xs, p + 1, p + w)) end
  else
    local r = floor(low / below) % q
    local c1, c0
    if v then c1, c0 = byte(v, -2, -1); if not c0 then c1, c0 = 48, c1 end end
    if not (v and ((c1 - 48) * 10 + c0 - 48) % q == r) then -- spare(v, q) == r
      if not v then v = call('HGET', key .. '+', sub(xs, p + 1, p + w)) end
      if v and spare(v, q) ~= r then
        v = call('HGET', key .. '+', sub(xs, p + 1, p + w + 1))
        if v then v = value(v, q, r); if type(v) == 'number' then v = string.format('%d', v) end end
      end
    end
  end
  out[i + 1] = v or ''
end
return {table.concat(out, ','), L, S}`)

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
-- id i owned by o; answers 1 when the mapping is new
local function put(i, o)
  local key, p, w, q, r = locate(i)
  local f = string.sub(xs, p + 1, p + w)
  if redis.call('HLEN', key) < CAP then
    if q == 1 then return redis.call('HSET', key, f, o) end
    local v = value(o, q, r)
    if redis.call('HSETNX', key, f, v) == 1 then return 1 end
    if spare(redis.call('HGET', key, f), q) == r then redis.call('HSET', key, f, v); return 0 end
  else
    local v = q == 1 and o or value(o, q, r)
    local at = key
    if redis.call('HEXISTS', key, f) == 0 then at = key .. '+' end
    local held = redis.call('HGET', at, f)
    if not held then return redis.call('HSET', at, f, v) end
    if q == 1 then redis.call('HSET', at, f, v); return 0 end
    if spare(held, q) == r then redis.call('HSET', at, f, v); return 0 end
  end
  -- another id holds the short field: this one goes to the overflow under its wide field
  return redis.call('HSET', key .. '+', string.sub(xs, p + 1, p + w + 1), o)
end
-- entries {wide field at level L + 1, owner, ...} into key and its overflow, in level L + 1's layout:
-- short fields (once each, in key while it has room) or, at levels without spare bits, the wide field
local function fill(key, list)
  local flat, over, held = {}, {}, {}
  for j = 1, #list, 2 do
    local f, v = list[j], list[j + 1]
    local t = over
    if q1 > 1 then
      local s = string.sub(f, 1, w1)
      if not held[s] then
        held[s] = true
        v = value(v, q1, math.floor(string.byte(f, w1 + 1) * q1 / 256))
        f = s
        if #flat < 2 * CAP then t = flat end
      end
    elseif #flat < 2 * CAP then
      t = flat
    end
    t[#t + 1] = f
    t[#t + 1] = v
  end
  if #flat > 0 then redis.call('HSET', key, unpack(flat)) end
  if #over > 0 then redis.call('HSET', key .. '+', unpack(over)) end
end
local function split()
  local src, dst = base .. S, base .. (S + M)
  local all = redis.call('HGETALL', src)
  local over = redis.call('HGETALL', src .. '+')
  for j = 1, #over do all[#all + 1] = over[j] end
  local byte0 = 8 - math.floor(L / 8) -- bit L of x is in this byte of the wide field at level L
  local bit = 2 ^ (L % 8)
  local implied = math.floor(S / 2 ^ (64 - 8 * byte0)) % (256 / q0) -- the low bits of that byte, from S
  local narrow = L % 8 == 7 -- the wide field at level L + 1 is a byte shorter
  local stay, move, gone = {}, {}, {}
  for j = 1, #all, 2 do
    local f, v = all[j], all[j + 1]
    if q0 > 1 and #f == w0 then -- a short field: its spare bits out of the value, back into the field
      f, v = f .. string.char(spare(v, q0) * 256 / q0 + implied), owner(v, q0)
    end
    local t = stay
    if math.floor(string.byte(f, byte0) / bit) % 2 == 1 then t = move; gone[#gone + 1] = all[j] end
    if narrow then f = string.sub(f, 1, byte0 - 1) end
    t[#t + 1] = f
    t[#t + 1] = v
  end
  fill(dst, move) -- first: if dst is in the way (another type), this fails before anything changed
  if q0 > 1 or q1 > 1 or #over > 0 then
    redis.call('DEL', src, src .. '+')
    fill(src, stay)
  elseif #gone > 0 then
    redis.call('HDEL', src, unpack(gone))
  end
  S = S + 1
  if S == M then L, S, M = L + 1, 0, M + M; w0, q0 = w1, q1; w1, q1 = widths(L + 1) end
  redis.call('HSET', stateKey, 'l', L, 's', S, 'n', N)
end
local added = 0
for i = 0, #xs / 8 - 1 do
  local ok, r = pcall(put, i, ARGV[4 + i])
  if ok then
    N, added = N + r, added + r
    if N > FILL * (M + S) then ok, r = pcall(split) end
  end
  if not ok then
    redis.call('HSET', stateKey, 'l', L, 's', S, 'n', N)
    return redis.error_reply('photo map write stopped after ' .. added .. ' new mappings: ' .. (type(r) == 'table' and r.err or tostring(r)))
  end
end
redis.call('HSET', stateKey, 'l', L, 's', S, 'n', N)
return added`)

/**
 * ARGV: prefix, xs (one id). Removes the mapping, answers 1 or 0. A short field freed is taken by a wide
 * sibling if there is one (so a wide field never outlives the short one it stands beside), else a bucket
 * freed refills from its overflow's short fields.
 */
export const DELETE = script(`local prefix, xs = ARGV[1], ARGV[2]
local gen = redis.call('GET', prefix .. ':gen')
if not gen then return 0 end
${READ_STATE}
${LOCATE}
local key, p, w, q, r = locate(0)
local f = string.sub(xs, p + 1, p + w)
local over = key .. '+'
local at = key
local v = redis.call('HGET', key, f)
if not v then at = over; v = redis.call('HGET', over, f) end
local mine = v and true
if mine and q > 1 then mine = spare(v, q) == r end
local n = 0
if mine then
  n = redis.call('HDEL', at, f)
  if q > 1 then
    local wide = string.sub(xs, p + 1, p + w + 1)
    local low = string.byte(wide, w + 1) % (256 / q)
    for s = 0, q - 1 do
      local sib = string.sub(wide, 1, w) .. string.char(s * 256 / q + low)
      local o = s ~= r and redis.call('HGET', over, sib)
      if o then
        redis.call('HDEL', over, sib)
        redis.call('HSET', at, f, value(o, q, s))
        at = nil
        break
      end
    end
  end
  if at == key then
    local all = redis.call('HGETALL', over)
    for j = 1, #all, 2 do
      if #all[j] == w then
        redis.call('HDEL', over, all[j])
        redis.call('HSET', key, all[j], all[j + 1])
        break
      end
    end
  end
elseif q > 1 then
  n = redis.call('HDEL', over, string.sub(xs, p + 1, p + w + 1))
end
if n == 1 then redis.call('HINCRBY', base .. 'state', 'n', -1) end
return n`)
