-- ArgoCD health for s3gateway.dev/EncryptionGateway, from the status the operator writes:
-- observedGeneration and the Ready / Progressing / Degraded conditions (metav1.Condition).
-- Written for ArgoCD's Lua 5.1 (gopher-lua); tested with lua5.4 in Tests/Shipping/test_argocd.py.
local hs = {}
local status = obj.status
local generation = obj.metadata and obj.metadata.generation

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation)
  return hs
end

local conditions = {}
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    -- A condition written for an older generation says nothing about the current spec.
    local stale = generation ~= nil and condition.observedGeneration ~= nil and condition.observedGeneration < generation
    if condition.type ~= nil and not stale then
      conditions[condition.type] = condition
    end
  end
end

local function describe(condition, fallback)
  local text = condition.message
  if text == nil or text == "" then
    text = condition.reason or fallback
  elseif condition.reason ~= nil and condition.reason ~= "" then
    text = condition.reason .. ": " .. text
  end
  return text
end

local degraded = conditions["Degraded"]
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Degraded")
  return hs
end

local ready = conditions["Ready"]
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

if ready ~= nil and ready.reason == "ScaledToZero" then
  hs.status = "Suspended"
  hs.message = describe(ready, "Scaled to zero replicas")
  return hs
end

local progressing = conditions["Progressing"]
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(progressing, "Rolling out")
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready, "Not ready")
else
  hs.message = "Waiting for the Ready condition"
end
return hs
