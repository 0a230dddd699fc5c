#!/usr/bin/env bash
# Build pinned test tools from the Go module proxy, with a content-addressed cache.
#
#   bash scripts/tools.sh prometheus promtool otelcol
#   bash scripts/tools.sh all
#
# Each tool is built once into
#   ${KNP_CACHE_DIR:-$HOME/.cache/kube-node-ping}/tools/<name>-<hash>/<name>
# where <hash> covers the tool's inputs (pinned go.mod/go.sum, builder manifest,
# Go version, build recipe). A warm run only checks that file exists. After each
# tool is ready, ${CACHE}/bin/<name> is (re)pointed at it, so tests can use
# "${CACHE}/bin/prometheus" etc.
#
# Output: nothing on stdout; progress and errors on stderr. Exit status is
# non-zero (with a one-line "tools.sh: error: ..." message) if any build fails.
#
# Environment:
#   KNP_CACHE_DIR   cache root (default: $HOME/.cache/kube-node-ping)
#   GO              go binary (default: go on PATH, else /usr/local/go/bin/go)
# The Go module cache and build cache stay at their defaults ($HOME/go/pkg/mod,
# $HOME/.cache/go-build) so rebuilds after a version bump are incremental.

set -euo pipefail

# ---------------------------------------------------------------------------
# Tool table. To add a tool, add ONE case entry (and, for a Go tool, a pinned
# module under tools/<dir>/ with a `tool` directive), e.g.
#   helm)  kind=gotool; moddir=tools/helm; pkg=helm.sh/helm/v3/cmd/helm ;;
#   kube-apiserver|etcd) kind=script; script=tools/kube/build.sh
#          inputs='tools/kube/go.mod tools/kube/go.sum tools/etcd/go.mod tools/etcd/go.sum' ;;
# Fields:
#   kind     gotool: `go build <pkg>` inside the pinned module <moddir>
#            ocb:    run the builder tool <builder> on <manifest>
#            script: run `<script> <name> <outdir>`, which must write <outdir>/<name>
#   moddir   directory (relative to the repo root) whose go.mod/go.sum pin it
#            (gotool, ocb)
#   script   build script relative to the repo root (script; part of the hash)
#   pkg      package path of the main package (gotool)
#   ldfn     optional function printing extra -ldflags (e.g. version stamping)
#   manifest ocb manifest, relative to the repo root (ocb)
#   builder  name of the tool (from this table) that is the builder (ocb)
#   binname  file the builder produces (ocb; default: <name>)
#   inputs   extra files (relative to the repo root) that feed the cache hash
# ---------------------------------------------------------------------------
ALL_TOOLS=(prometheus promtool ocb otelcol etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet containerd cni-plugins pause helm prometheus-operator-crds hadolint)

tool_spec() {
  kind='' moddir='' pkg='' ldfn='' manifest='' builder='' binname='' inputs='' script=''
  case "$1" in
    prometheus) kind=gotool; moddir=tools/prometheus; ldfn=prom_ldflags
                pkg=github.com/prometheus/prometheus/cmd/prometheus ;;
    promtool)   kind=gotool; moddir=tools/prometheus; ldfn=prom_ldflags
                pkg=github.com/prometheus/prometheus/cmd/promtool ;;
    ocb)        kind=gotool; moddir=tools/ocb
                pkg=go.opentelemetry.io/collector/cmd/builder ;;
    otelcol)    kind=ocb; builder=ocb; moddir=tools/ocb
                manifest=otel/builder-config.yaml; binname=otelcol-kube-node-ping ;;
    etcd)       kind=script; script=tools/kube/build.sh; inputs='tools/etcd/go.mod tools/etcd/go.sum' ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy|kubelet)
                kind=script; script=tools/kube/build.sh; inputs='tools/kube/go.mod tools/kube/go.sum' ;;
    containerd) kind=script; script=tools/kube/build.sh; inputs='tools/containerd/go.mod tools/containerd/go.sum' ;;
    cni-plugins) kind=script; script=tools/kube/build.sh; inputs='tools/cni/go.mod tools/cni/go.sum' ;;
    pause)      kind=script; script=tools/kube/build.sh; inputs='tools/pause/go.mod tools/pause/main.go' ;;
    helm)       kind=script; script=tools/helm/build.sh; inputs='tools/helm/go.mod tools/helm/go.sum' ;;
    prometheus-operator-crds) kind=script; script=tools/helm/prometheus-operator-crds.sh ;;
    hadolint)   kind=script; script=tools/helm/hadolint.sh ;;
    *) return 1 ;;
  esac
}

# Bump when the build recipe below changes in a way that must invalidate caches.
RECIPE_VERSION=1
GO_LDFLAGS_BASE='-s -w'

# Prometheus stamps its version via github.com/prometheus/common/version.
# Module v0.3MM.P is Prometheus 3.MM.P.
prom_ldflags() {
  local modver major minor patch
  modver=$(awk '$1 == "github.com/prometheus/prometheus" { print $2; exit }' "$ROOT/tools/prometheus/go.mod")
  if [[ $modver =~ ^v0\.3([0-9][0-9])\.([0-9]+)$ ]]; then
    major=3 minor=$((10#${BASH_REMATCH[1]})) patch=${BASH_REMATCH[2]}
    modver_human="$major.$minor.$patch"
  else
    modver_human=${modver#v}
  fi
  local v=github.com/prometheus/common/version
  printf '%s' "-X $v.Version=$modver_human -X $v.Revision=$modver -X $v.Branch=module -X $v.BuildUser=kube-node-ping"
}

# ---------------------------------------------------------------------------
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${KNP_CACHE_DIR:-$HOME/.cache/kube-node-ping}
TOOLS_DIR=$CACHE/tools
BIN_DIR=$CACHE/bin

log() { printf 'tools.sh: %s\n' "$*" >&2; }
die() { printf 'tools.sh: error: %s\n' "$*" >&2; exit 1; }

if [[ -z ${GO:-} ]]; then
  if command -v go >/dev/null 2>&1; then GO=$(command -v go)
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else die "no Go toolchain found (set GO=/path/to/go)"
  fi
fi
# The builder (ocb) looks `go` up on PATH; make sure it finds the same one.
PATH="$(dirname "$GO"):$PATH"
export PATH

# Environment for every go invocation: pinned local toolchain, static binaries.
# -mod=readonly for our pinned modules (go.sum is committed and complete, and a
# build must never rewrite tracked files); the ocb-generated module uses -mod=mod.
go_env=(GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false")

GO_VERSION=$(env GOTOOLCHAIN=local "$GO" env GOVERSION 2>/dev/null) || die "cannot run $GO"
GO_PLATFORM=$(env GOTOOLCHAIN=local "$GO" env GOOS GOARCH | tr '\n' '/')

sha() { sha256sum | cut -c1-16; }

# tool_hash NAME -> prints the cache key for NAME (recursing into its builder).
tool_hash() {
  local name=$1
  tool_spec "$name" || die "unknown tool '$name' (known: ${ALL_TOOLS[*]})"
  local k=$kind d=$moddir p=$pkg l=$ldfn m=$manifest b=$builder n=$binname extra=$inputs sc=$script
  local bhash='' modfiles=''
  if [[ -n $d ]]; then modfiles="$d/go.mod $d/go.sum"; fi
  if [[ $k == ocb ]]; then bhash=$(tool_hash "$b"); fi
  {
    printf 'recipe=%s\nname=%s\nkind=%s\npkg=%s\nldfn=%s\nbin=%s\ngo=%s %s\nldbase=%s\nbuilder=%s\n' \
      "$RECIPE_VERSION" "$name" "$k" "$p" "$l" "$n" "$GO_VERSION" "$GO_PLATFORM" "$GO_LDFLAGS_BASE" "$bhash"
    local f
    for f in $modfiles $sc $m $extra; do
      [[ -f $ROOT/$f ]] || die "missing input file $f for tool '$name'"
      printf '== %s\n' "$f"
      cat "$ROOT/$f"
    done
  } | sha
}

# ensure_tool NAME -> builds NAME if needed; sets TOOL_PATH to the binary.
ensure_tool() {
  local name=$1 hash dir
  hash=$(tool_hash "$name")
  dir=$TOOLS_DIR/$name-$hash
  if [[ ! -x $dir/$name ]]; then
    # Two runs (two checkouts, or a test run beside a build) build a tool once: the second
    # waits for the first and then finds it built.
    mkdir -p "$TOOLS_DIR"
    local lock
    exec {lock}>"$TOOLS_DIR/.lock-$name"
    flock "$lock"
    [[ -x $dir/$name ]] || build_tool "$name" "$dir"
    exec {lock}>&-
  fi
  TOOL_PATH=$dir/$name
  mkdir -p "$BIN_DIR"
  ln -sfn "$TOOL_PATH" "$BIN_DIR/$name"
}

# build_tool NAME DESTDIR
build_tool() {
  local name=$1 dest=$2 tmp logf start
  tool_spec "$name"
  local k=$kind d=$moddir p=$pkg l=$ldfn m=$manifest b=$builder n=${binname:-$1} sc=$script
  mkdir -p "$TOOLS_DIR"
  tmp=$(mktemp -d "$TOOLS_DIR/.build-$name.XXXXXX")
  logf=$tmp.log
  start=$SECONDS

  case $k in
    gotool)
      local ld=$GO_LDFLAGS_BASE
      if [[ -n $l ]]; then ld="$ld $($l)"; fi
      log "building $name ($p) ..."
      if ! (cd "$ROOT/$d" && env "${go_env[@]}" "$GO" build -trimpath -ldflags="$ld" \
              -o "$tmp/$name" "$p") >"$logf" 2>&1; then
        fail_build "$name" "$tmp" "$logf"
      fi
      ;;
    ocb)
      ensure_tool "$b"
      local builder_bin=$TOOL_PATH
      log "building $name with $b from $m ..."
      # The builder generates sources into ./_build (manifest output_path,
      # relative to its cwd), runs `go mod tidy`, `go mod download` and
      # `go build -trimpath -ldflags='-s -w'` there with CGO_ENABLED=0.
      if ! (cd "$tmp" && env GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" \
              "$builder_bin" --config "$ROOT/$m") >"$logf" 2>&1; then
        fail_build "$name" "$tmp" "$logf"
      fi
      local out
      out=$(find "$tmp" -maxdepth 3 -type f -name "$n" -perm -u+x | head -n1)
      [[ -n $out ]] || fail_build "$name" "$tmp" "$logf" "builder produced no '$n' binary"
      mv "$out" "$tmp/$name.bin"
      # Drop the generated sources; keep only the binary.
      find "$tmp" -mindepth 1 -maxdepth 1 ! -name "$name.bin" -exec rm -rf {} +
      mv "$tmp/$name.bin" "$tmp/$name"
      ;;
    script)
      log "building $name with $sc ..."
      if ! (cd "$ROOT" && env "${go_env[@]}" bash "$ROOT/$sc" "$name" "$tmp") >"$logf" 2>&1; then
        fail_build "$name" "$tmp" "$logf"
      fi
      [[ -x $tmp/$name ]] || fail_build "$name" "$tmp" "$logf" "$sc wrote no $name"
      ;;
    *) die "tool '$name' has unknown kind '$k'" ;;
  esac

  chmod 0755 "$tmp"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  rm -f "$logf"
  log "built $name in $((SECONDS - start))s -> $dest/$name"
}

fail_build() {
  local name=$1 tmp=$2 logf=$3 why=${4:-}
  rm -rf "$tmp"
  if [[ -s $logf ]]; then
    tail -n 25 "$logf" | sed 's/^/  | /' >&2
  fi
  die "building $name failed${why:+: $why} (full log: $logf)"
}

main() {
  local -a want=()
  if [[ $# -eq 0 ]]; then
    die "usage: bash scripts/tools.sh TOOL... | all   (tools: ${ALL_TOOLS[*]})"
  fi
  local a
  for a in "$@"; do
    if [[ $a == all ]]; then want+=("${ALL_TOOLS[@]}"); else want+=("$a"); fi
  done
  for a in "${want[@]}"; do tool_spec "$a" || die "unknown tool '$a' (known: ${ALL_TOOLS[*]})"; done
  for a in "${want[@]}"; do ensure_tool "$a"; done
}

main "$@"
