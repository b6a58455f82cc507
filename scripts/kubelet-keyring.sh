#!/usr/bin/env bash
# The kubelet's image-pull credential lookup as a program (scripts/kubelet-keyring/main.go):
# tests compare syncd's resolver against it. Built and cached by scripts/kubelet-tool.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/kubelet-tool.sh" kubelet-keyring
