-- Shared by the wrk scripts: read one value per line from the file named by an env var.
local M = {}

function M.lines(var)
  local path = os.getenv(var)
  assert(path, var .. " is not set")
  local out = {}
  for line in io.lines(path) do
    if #line > 0 then out[#out + 1] = line end
  end
  assert(#out > 0, path .. " is empty")
  return out
end

function M.headers(json)
  local h = { ["Authorization"] = "Bearer " .. (os.getenv("OPSIM_KEY") or "none") }
  if json then h["Content-Type"] = "application/json" end
  return h
end

return M
