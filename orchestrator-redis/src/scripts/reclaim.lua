-- Takes over messages whose consumer went quiet, and dead-letters those delivered too often.
-- KEYS[1] stream, KEYS[2] dead-letter stream
-- ARGV[1] group, ARGV[2] consumer taking over, ARGV[3] min idle ms, ARGV[4] how many to scan,
-- ARGV[5] max deliveries, ARGV[6] now in ms (recorded on dead letters), ARGV[7] how many to take
-- Returns { { {id, {field, value, ...}}, ... }, dead-lettered count }.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', tonumber(ARGV[3]), '-', '+', tonumber(ARGV[4]))
local max = tonumber(ARGV[5])
local limit = tonumber(ARGV[7])
local take = {}
local dead = 0
for _, p in ipairs(pending) do
  local id, deliveries = p[1], tonumber(p[4])
  if deliveries >= max then
    local entry = redis.call('XRANGE', KEYS[1], id, id)
    local task = ''
    if entry[1] then
      local fields = entry[1][2]
      for i = 1, #fields, 2 do
        if fields[i] == 'task' then task = fields[i + 1] end
      end
    end
    redis.call('XADD', KEYS[2], '*', 'task', task, 'entry', id, 'deliveries', deliveries,
      'consumer', p[2], 'at', ARGV[6])
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    dead = dead + 1
  elseif #take < limit then
    take[#take + 1] = id
  end
end
local claimed = {}
if #take > 0 then
  local got = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), unpack(take))
  for _, e in ipairs(got) do
    if type(e) == 'table' then claimed[#claimed + 1] = e end
  end
end
return { claimed, dead }
