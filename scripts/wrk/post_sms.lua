-- POST an SMS carrying a fresh one-time code to a number drawn from $OPSIM_NUMBERS, to
-- $OPSIM_PATH (the SMS gateway's send).
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
  local code = string.format("%06d", math.random(0, 999999))
  local body = '{"to": "' .. msisdn .. '", "text": "' .. code .. ' is your verification code"}'
  return wrk.format("POST", path, headers, body)
end
