-- wrk script: each request loads a random one of the seeded pixels, whose paths are
-- listed one per line in the file named by $PIXEL_PATHS.
local paths = {}

init = function(args)
  for line in io.lines(os.getenv("PIXEL_PATHS")) do
    paths[#paths + 1] = line
  end
  math.randomseed(math.floor(os.clock() * 1000000) + #paths)
end

request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
