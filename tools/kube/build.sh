#!/usr/bin/env bash
# Build one of the pinned test-cluster binaries from Go modules.
#
#   tools/kube/build.sh NAME OUTDIR      NAME = kube-apiserver | etcd
#
# Writes OUTDIR/NAME (atomically: built to a temporary name, then renamed).
# The versions are fixed by tools/kube/go.mod (k8s.io/kubernetes) and
# tools/etcd/go.mod (go.etcd.io/etcd/server/v3) with their go.sum files;
# -mod=readonly makes a build fail rather than silently change them.
# Caching is the caller's business (scripts/tools.sh hashes tools/kube/* and
# tools/etcd/*); this script always builds.
set -euo pipefail

usage() { echo "usage: $0 kube-apiserver|etcd OUTDIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
name=$1
outdir=$2

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools=$(dirname "$here")

case "$name" in
  kube-apiserver)
    moddir=$tools/kube
    pkg=k8s.io/kubernetes/cmd/kube-apiserver
    ;;
  etcd)
    moddir=$tools/etcd
    # server/main.go is the etcd binary's main package.
    pkg=go.etcd.io/etcd/server/v3
    ;;
  *) usage ;;
esac

if [[ -x /usr/local/go/bin/go ]] && ! command -v go >/dev/null 2>&1; then
  PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null 2>&1 || { echo "build.sh: go not found on PATH" >&2; exit 1; }

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

cd "$moddir"
ldflags="-s -w"
if [[ $name == kube-apiserver ]]; then
  # What the release build stamps in (hack/lib/version.sh does the same);
  # without it /version reports v0.0.0-master.
  v=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
  major=${v#v}; major=${major%%.*}
  minor=${v#v"$major".}; minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$v -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
fi

tmp="$outdir/.$name.tmp.$$"
trap 'rm -f "$tmp"' EXIT
go build -trimpath -ldflags="$ldflags" -o "$tmp" "$pkg"
mv -f "$tmp" "$outdir/$name"
trap - EXIT
echo "built $outdir/$name" >&2
