"""deploy/kustomize against a real apiserver, one concern a file; manifests.py renders and renames it."""
