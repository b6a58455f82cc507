#!/usr/bin/env bash
# The Events a kubelet writes when an image pull fails, written by the kubelet's own code
# (scripts/kubelet-events/main.go): tests of syncd's pull-failure watch read them. Built and
# cached by scripts/kubelet-tool.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/kubelet-tool.sh" kubelet-events
