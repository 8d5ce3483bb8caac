-- POST an identification request for a number drawn from $OPSIM_NUMBERS (present and
-- absent numbers mixed) to $OPSIM_PATH. The bare baseline server takes the same request.
package.path = package.path .. ";" .. (os.getenv("OPSIM_WRK_DIR") or ".") .. "/?.lua"
local common = require("common")
local numbers, headers, path

function init(args)
  numbers = common.lines("OPSIM_NUMBERS")
  headers = common.headers(true)
  path = os.getenv("OPSIM_PATH")
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local msisdn = numbers[math.random(#numbers)]
  return wrk.format("POST", path, headers, '{"msisdn": "' .. msisdn .. '"}')
end
