# Sourced by the scripts that build Kubernetes code from the Go module proxy (envtest-binaries.sh,
# kubelet-tool.sh). write_k8s_go_mod MODULE VERSION writes ./go.mod for a wrapper module that
# requires k8s.io/kubernetes vVERSION: the release's staging repos are required as v0.0.0 in its
# go.mod and replaced in-tree there; outside the tree each must point at its published v0.Y.Z twin.
write_k8s_go_mod() {
  local module="$1" version="$2" mod_file staging
  mod_file="$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging="$(grep -Eo '^\s*k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$mod_file" | awk '{print $1}')"
  {
    echo "module $module"
    echo "go $(awk '/^go /{print $2; exit}' "$mod_file")"
    echo "require k8s.io/kubernetes v$version"
    for m in $staging; do echo "replace $m => $m v0.${version#1.}"; done
  } > go.mod
}
