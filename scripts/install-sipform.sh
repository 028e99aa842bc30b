#!/usr/bin/env bash
# Installs the released sipform binary of one version for this machine, checksum verified.
# The composite action (action.yml) runs it first and compiles sipform only when it says that
# no release exists for the ref.
#
# Environment:
#   SIPFORM_VERSION           the release tag (v0.2.0); default: GITHUB_ACTION_REF
#   SIPFORM_RELEASE_BASE_URL  where releases live: $BASE/download/$TAG/<file>; default:
#                             $GITHUB_SERVER_URL/$GITHUB_ACTION_REPOSITORY/releases
#   SIPFORM_INSTALL_DIR       the folder to put `sipform` in (default: $HOME/.sipform/bin)
#   SIPFORM_TARGET            the Rust target triple (default: from uname)
#
# Exit codes: 0 installed; 3 no release for this version or machine (compile instead);
# 1 anything else, a checksum mismatch included (never compile around a bad download).
set -euo pipefail

say() { echo "install-sipform: $*" >&2; }
no_release() { say "$*: no release binary, sipform will be compiled"; exit 3; }
fail() { say "error: $*"; exit 1; }

version=${SIPFORM_VERSION:-${GITHUB_ACTION_REF:-}}
[ -n "$version" ] || no_release "no version (a local action, uses: ./)"
# Only a release tag names a release; a branch or a commit of the action has none.
case "$version" in
  v[0-9]*) ;;
  *) no_release "ref $version is not a release tag" ;;
esac

base=${SIPFORM_RELEASE_BASE_URL:-}
if [ -z "$base" ]; then
  [ -n "${GITHUB_SERVER_URL:-}" ] && [ -n "${GITHUB_ACTION_REPOSITORY:-}" ] \
    || no_release "no release URL (SIPFORM_RELEASE_BASE_URL)"
  base="$GITHUB_SERVER_URL/$GITHUB_ACTION_REPOSITORY/releases"
fi
base=${base%/}

target=${SIPFORM_TARGET:-}
if [ -z "$target" ]; then
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) target=x86_64-unknown-linux-gnu ;;
    Linux/aarch64 | Linux/arm64) target=aarch64-unknown-linux-gnu ;;
    Darwin/x86_64) target=x86_64-apple-darwin ;;
    Darwin/arm64 | Darwin/aarch64) target=aarch64-apple-darwin ;;
    *) no_release "no release is built for $(uname -s)/$(uname -m)" ;;
  esac
fi

dest=${SIPFORM_INSTALL_DIR:-$HOME/.sipform/bin}
asset="sipform-$target.tar.gz"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Fetches $1 into $2; prints the HTTP status (000 when the server could not be reached).
fetch() {
  curl --silent --show-error --location --retry 3 --retry-connrefused \
    --output "$2" --write-out '%{http_code}' "$1" || true
}

status=$(fetch "$base/download/$version/SHA256SUMS" "$work/SHA256SUMS")
case "$status" in
  200) ;;
  404) no_release "$version has no release at $base" ;;
  *) fail "$base/download/$version/SHA256SUMS: HTTP $status" ;;
esac
expected=$(awk -v f="$asset" '$2 == f || $2 == "*" f { print $1 }' "$work/SHA256SUMS")
[ -n "$expected" ] || no_release "the $version release has no $asset"

status=$(fetch "$base/download/$version/$asset" "$work/$asset")
[ "$status" = 200 ] || fail "$base/download/$version/$asset: HTTP $status"

if command -v sha256sum >/dev/null 2>&1; then
  actual=$(sha256sum "$work/$asset" | awk '{print $1}')
else
  actual=$(shasum -a 256 "$work/$asset" | awk '{print $1}')
fi
[ "$actual" = "$expected" ] \
  || fail "$asset: checksum mismatch (SHA256SUMS says $expected, the download is $actual): not installed"

tar -xzf "$work/$asset" -C "$work"
[ -f "$work/sipform" ] || fail "$asset holds no sipform binary"
mkdir -p "$dest"
install -m 0755 "$work/sipform" "$dest/sipform"
say "installed sipform $version ($target) in $dest"
