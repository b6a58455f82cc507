#!/usr/bin/env bash
# bench's Go write floor (scripts/write-floor/main.go): the writes of a syncd rollout from
# client-go over HTTP/2. Built against the harness's Kubernetes modules and cached by
# scripts/kubelet-tool.sh, like the kubelet's own tools ($WRITE_FLOOR: your own build).
exec "$(dirname "${BASH_SOURCE[0]}")/kubelet-tool.sh" write-floor
