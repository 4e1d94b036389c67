-- Agent budget: a sliding-window log per scope, every scope of one creation decided at once.
-- KEYS[i]  one sorted set per scope (members: slot ids; scores: grant times in ms)
-- ARGV[1]  now in ms (the caller's clock), ARGV[2] the new slot's id,
-- then for KEYS[i]: ARGV[1 + 2i] its limit, ARGV[2 + 2i] its window in ms.
-- Returns { 1, 0, 0 } when a slot of every scope was taken; otherwise nothing is taken and it
-- returns { 0, free_at_ms, i }: KEYS[i] is the scope that frees last, at free_at_ms.
local now = tonumber(ARGV[1])
local free_at, which = 0, 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local length = tonumber(ARGV[2 + 2 * i])
  -- An entry exactly one window old no longer counts (as in the core's window.rs).
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - length)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    -- Removing the count - limit + 1 oldest leaves one free slot.
    local entry = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local at = math.min(tonumber(entry[2]) + length, now + length)
    if at > free_at then
      free_at, which = at, i
    end
  end
end
if which > 0 then
  return { 0, free_at, which }
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, tonumber(ARGV[2 + 2 * i]))
end
return { 1, 0, 0 }
