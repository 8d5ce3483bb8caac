-- POST an identification request for a number drawn from $OPSIM_NUMBERS to $OPSIM_PATH,
-- each with a fresh Idempotency-Key, as a careful client sends them: every request
-- also stores a key.
package.path = package.path .. ";" .. (os.getenv("OPSIM_WRK_DIR") or ".") .. "/?.lua"
local common = require("common")
local numbers, headers, path, prefix
local sent = 0

function init(args)
  numbers = common.lines("OPSIM_NUMBERS")
  headers = common.headers(true)
  path = os.getenv("OPSIM_PATH")
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  prefix = string.format("%08x", math.random(0, 0x7fffffff))
end

function request()
  sent = sent + 1
  headers["Idempotency-Key"] = prefix .. "-" .. sent
  local msisdn = numbers[math.random(#numbers)]
  return wrk.format("POST", path, headers, '{"msisdn": "' .. msisdn .. '"}')
end
