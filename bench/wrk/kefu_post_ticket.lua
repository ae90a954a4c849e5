-- POST a new kefu ticket with its first message; unique per request.
-- Uses common.lua from ../shared/bench/peers/wrk (WRK_LUA_DIR) so the summary line
-- has the same shape as the peer's.
package.path = (os.getenv("WRK_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local common = require("common")

local headers = common.headers({["Content-Type"] = "application/json",
                                ["Accept"] = "application/json"})
local counter = 0
local nthreads = 0

function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end

function request()
  counter = counter + 1
  local n = (tid or 0) * 100000000 + counter
  local body = string.format(
    '{"subject": "充值未到账 deposit not credited %d", ' ..
    '"body": "您好，我的充值已经两个小时没有到账，TXID 0x%08x，请尽快处理。' ..
    ' Hello, my deposit has not arrived after two hours.", ' ..
    '"contact": {"email": "user%d@example.com"}, "priority": "normal", "channel": "api"}',
    n, n, n)
  return wrk.format("POST", "/api/v1/tickets", headers, body)
end

done = common.done
