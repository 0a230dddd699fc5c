#!/usr/bin/env bash
# Build helm for the chart tests (test/chart.test.ts).
#
#   tools/helm/build.sh helm OUTDIR
#
# Writes OUTDIR/helm, built from helm.sh/helm/v3 at the version pinned by
# tools/helm/go.mod (-mod=readonly: a build fails rather than change it),
# stamped the way helm's own Makefile stamps a release: its version, and the
# Kubernetes version that `helm template`/`helm lint` assume
# (.Capabilities.KubeVersion; unstamped it would be 1.20), taken from the
# client-go it is built with.
# Caching is the caller's business (scripts/tools.sh hashes this script and
# tools/helm/go.mod, go.sum); this script always builds.
set -euo pipefail

[[ $# -eq 2 && $1 == helm ]] || { echo "usage: $0 helm OUTDIR" >&2; exit 2; }
outdir=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ -x /usr/local/go/bin/go ]] && ! command -v go >/dev/null 2>&1; then
  PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null 2>&1 || { echo "build.sh: go not found on PATH" >&2; exit 1; }
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
tmp="$outdir/.helm.tmp.$$"
trap 'rm -f "$tmp"' EXIT

cd "$here"
v=$(go list -m -f '{{.Version}}' helm.sh/helm/v3)
kv=$(go list -m -f '{{.Version}}' k8s.io/client-go)   # v0.MINOR.PATCH is Kubernetes 1.MINOR
kminor=${kv#v0.}; kminor=${kminor%%.*}
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$v -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$kminor"
done
go build -trimpath -ldflags="$ldflags" -o "$tmp" helm.sh/helm/v3/cmd/helm
mv -f "$tmp" "$outdir/helm"
trap - EXIT
echo "built $outdir/helm" >&2
