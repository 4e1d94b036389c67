-- GCRA (generic cell rate algorithm) rate limiter, on the server's clock.
-- KEYS[1] the client's key (holds its theoretical arrival time, in microseconds)
-- ARGV[1] emission interval in microseconds, ARGV[2] burst (requests allowed at once)
-- Returns { allowed (1/0), retry after in microseconds }.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  return { 0, allow_at - now }
end
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return { 1, 0 }
