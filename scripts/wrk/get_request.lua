-- GET an answered identification request: $OPSIM_PATH .. "/" .. an id from $OPSIM_IDS.
package.path = package.path .. ";" .. (os.getenv("OPSIM_WRK_DIR") or ".") .. "/?.lua"
local common = require("common")
local ids, headers, path

function init(args)
  ids = common.lines("OPSIM_IDS")
  headers = common.headers(false)
  path = os.getenv("OPSIM_PATH")
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  return wrk.format("GET", path .. "/" .. ids[math.random(#ids)], headers)
end
