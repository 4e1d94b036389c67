-- Extends a lock held by this token: KEYS[1] the lock, ARGV[1] the token, ARGV[2] the TTL in ms.
-- Answers 1 when renewed, 0 when the lock expired or another holder took it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
