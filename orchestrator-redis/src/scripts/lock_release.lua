-- Releases a lock held by this token: KEYS[1] the lock, ARGV[1] the token. A lock that expired
-- and was taken by another holder is left alone. Answers 1 when released.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
