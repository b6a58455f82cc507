-- Argo CD health of a PullSecretSync (syncd.io/v1alpha1): whether the pull Secret of one syncd
-- secret spec is where it should be. Install it under `resource.customizations.health.syncd.io_PullSecretSync`
-- in argocd-cm (deploy/argocd/argocd-cm.yaml). Tested against each condition with a real Lua
-- interpreter (tests/unit/test_argocd_health.py).
local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "waiting for syncd's first status"
  return hs
end
local found = {}
for _, condition in ipairs(obj.status.conditions) do
  found[condition.type] = condition
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "syncd has not yet seen this generation"
  return hs
end
local ready, degraded, expiring = found["Ready"], found["Degraded"], found["ExpiringSoon"]
if ready == nil then
  hs.status = "Progressing"
  hs.message = "no Ready condition yet"
  return hs
end
if ready.status ~= "True" then
  if ready.reason == "NotSyncedYet" then
    hs.status = "Progressing"
  else
    hs.status = "Degraded"
  end
  hs.message = (ready.reason or "") .. ": " .. (ready.message or "")
  return hs
end
if expiring ~= nil and expiring.status == "True" then
  hs.status = "Degraded"
  hs.message = (expiring.reason or "") .. ": " .. (expiring.message or "")
  return hs
end
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = (degraded.reason or "") .. ": " .. (degraded.message or "")
  return hs
end
hs.status = "Healthy"
hs.message = ready.message or "in sync"
return hs
