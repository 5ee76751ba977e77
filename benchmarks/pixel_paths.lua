-- wrk script: each request loads a random one of the seeded pixels, whose paths are
-- listed one per line in the file named by $PIXEL_PATHS. The requests are formatted
-- once, in init: the load generator shares the machine with what it measures, so it
-- should spend as little as it can per request.
local requests = {}

init = function(args)
  for line in io.lines(os.getenv("PIXEL_PATHS")) do
    requests[#requests + 1] = wrk.format("GET", line)
  end
  math.randomseed(math.floor(os.clock() * 1000000) + #requests)
end

request = function()
  return requests[math.random(#requests)]
end
