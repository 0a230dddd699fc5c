#!/usr/bin/env bash
# Build one of the pinned test-cluster programs from Go modules.
#
#   tools/kube/build.sh NAME OUTDIR
#
#   NAME = kube-apiserver | kube-controller-manager | kube-scheduler | kube-proxy | kubelet
#          (tools/kube/go.mod, k8s.io/kubernetes)
#        | etcd            (tools/etcd/go.mod)
#        | containerd      (tools/containerd/go.mod: also writes containerd-shim-runc-v2 and ctr)
#        | cni-plugins     (tools/cni/go.mod: OUTDIR/cni-plugins/ holds bridge, host-local, loopback, portmap)
#        | pause           (tools/pause: the pod sandbox binary of the test cluster's local pause image)
#
# Writes OUTDIR/NAME (atomically: built to a temporary name, then renamed).
# The versions are fixed by the go.mod and go.sum files named above;
# -mod=readonly makes a build fail rather than silently change them.
# Caching is the caller's business (scripts/tools.sh hashes tools/kube/* and
# tools/etcd/*); this script always builds.
set -euo pipefail

usage() { echo "usage: $0 kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy|kubelet|etcd|containerd|cni-plugins|pause OUTDIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
name=$1
outdir=$2

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools=$(dirname "$here")

tags=''
case "$name" in
  kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy|kubelet)
    moddir=$tools/kube
    pkg=k8s.io/kubernetes/cmd/$name
    ;;
  containerd)
    moddir=$tools/containerd
    pkg=github.com/containerd/containerd/v2/cmd/containerd
    # No btrfs, devmapper or zfs snapshotters: they need cgo; overlayfs is what the nodes use.
    tags='no_btrfs no_devmapper no_zfs'
    ;;
  cni-plugins)
    moddir=$tools/cni
    ;;
  pause)
    moddir=$tools/pause
    pkg=.
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
if [[ $moddir == "$tools/kube" ]]; then
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
trap 'rm -rf "$tmp"' EXIT
case "$name" in
  containerd)
    v=$(go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
    ldflags+=" -X github.com/containerd/containerd/v2/version.Version=$v -X github.com/containerd/containerd/v2/version.Revision=module"
    mkdir -p "$tmp"
    for cmd in containerd containerd-shim-runc-v2 ctr; do
      go build -trimpath -tags="$tags" -ldflags="$ldflags" -o "$tmp/$cmd" "github.com/containerd/containerd/v2/cmd/$cmd"
    done
    # The shim and ctr go beside the daemon, OUTDIR/containerd.
    mv -f "$tmp"/* "$outdir/"
    rmdir "$tmp"
    ;;
  cni-plugins)
    mkdir -p "$tmp"
    for p in ipam/host-local main/bridge main/loopback meta/portmap; do
      go build -trimpath -ldflags="$ldflags" -o "$tmp/${p#*/}" "github.com/containernetworking/plugins/plugins/$p"
    done
    rm -rf "$outdir/$name"
    mv -f "$tmp" "$outdir/$name"
    ;;
  *)
    go build -trimpath -ldflags="$ldflags" -o "$tmp" "$pkg"
    mv -f "$tmp" "$outdir/$name"
    ;;
esac
trap - EXIT
echo "built $outdir/$name" >&2
