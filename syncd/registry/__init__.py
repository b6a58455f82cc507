"""Container-registry knowledge: registry keys, the kubelet's credential lookup, dockerconfigjson
bytes, credential rules and login verification against a registry. Below config; no I/O but
`login`'s HTTP client."""
