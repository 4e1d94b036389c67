-- One sweep per interval across every process sharing the queue: without it each worker
-- process would re-publish the same stale tasks, multiplying the duplicate messages.
-- KEYS[1] the queue's last-sweep key (holds the queue clock's ms of the last sweep)
-- ARGV[1] now in ms (queue clock), ARGV[2] interval in ms, ARGV[3] key TTL in ms (real time)
-- Returns 1 when the caller should sweep now, else 0.
local last = redis.call('GET', KEYS[1])
local now = tonumber(ARGV[1])
if last then
  local since = now - tonumber(last)
  if since >= 0 and since < tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[3]))
return 1
