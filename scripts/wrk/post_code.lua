-- Register an identification code for a request id from $OPSIM_IDS (timely presents).
-- Each thread walks the ids in order: the first pass registers (201), later passes repeat
-- the same pair (200, idempotent).
package.path = package.path .. ";" .. (os.getenv("OPSIM_WRK_DIR") or ".") .. "/?.lua"
local common = require("common")
local ids, headers, path
local next_index = 0

function init(args)
  ids = common.lines("OPSIM_IDS")
  headers = common.headers(true)
  path = os.getenv("OPSIM_PATH")
  next_index = math.random(#ids)
end

function request()
  next_index = next_index % #ids + 1
  local id = ids[next_index]
  return wrk.format("POST", path, headers,
    '{"request_id": "' .. id .. '", "code": "bench-' .. id .. '"}')
end
