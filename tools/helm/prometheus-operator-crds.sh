#!/usr/bin/env bash
# Fetch the prometheus-operator CRDs the chart's objects need, for the chart tests.
#
#   tools/helm/prometheus-operator-crds.sh prometheus-operator-crds OUTDIR
#
# Writes the directory OUTDIR/prometheus-operator-crds holding the
# ServiceMonitor, PodMonitor and PrometheusRule CRDs of the release pinned
# below, taken from its Go module zip (`go mod download` checks it against
# the checksum database, this script against the pinned hash). Test inputs
# only: not committed, not part of the chart.
set -euo pipefail

# Bump both together: go mod download -json github.com/prometheus-operator/prometheus-operator@vX.Y.Z
VERSION=v0.85.0
SUM='h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s='
CRDS='servicemonitors podmonitors prometheusrules'

[[ $# -eq 2 && $1 == prometheus-operator-crds ]] || { echo "usage: $0 prometheus-operator-crds OUTDIR" >&2; exit 2; }
mkdir -p "$2"
outdir=$(cd "$2" && pwd)

if [[ -x /usr/local/go/bin/go ]] && ! command -v go >/dev/null 2>&1; then
  PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null 2>&1 || { echo "prometheus-operator-crds.sh: go not found on PATH" >&2; exit 1; }

tmp="$outdir/.crds.tmp.$$"
work=$(mktemp -d)
trap 'rm -rf "$tmp" "$work"' EXIT
# Outside any module: `go mod download` of one module version.
cd "$work"
info=$(GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "github.com/prometheus-operator/prometheus-operator@$VERSION")
sum=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Sum": "\(.*\)",*$/\1/p')
dir=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
[[ $sum == "$SUM" ]] || { echo "prometheus-operator-crds.sh: $VERSION has sum '$sum', pinned '$SUM'" >&2; exit 1; }
mkdir -p "$tmp"
for crd in $CRDS; do
  install -m 0644 "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$crd.yaml" "$tmp/"
done
printf '%s\n' "$VERSION" >"$tmp/VERSION"
chmod 0755 "$tmp"
rm -rf "${outdir:?}/prometheus-operator-crds"
mv -f "$tmp" "$outdir/prometheus-operator-crds"
echo "fetched $outdir/prometheus-operator-crds ($VERSION)" >&2
