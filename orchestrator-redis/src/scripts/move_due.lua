-- Moves delayed tasks that are due to the stream, oldest due time first, atomically.
-- KEYS[1] delayed sorted set (member: task id, score: due time in ms)
-- KEYS[2] stream
-- ARGV[1] now in ms (the queue's clock), ARGV[2] how many at most
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, task in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'task', task)
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return #due
