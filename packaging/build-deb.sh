#!/usr/bin/env bash
# Builds the hookd Debian package: `packaging/build-deb.sh` → target/debian/hookd_<version>_<arch>.deb
#
# The release build is the one to install: it compiles hookd-cli with the release profile,
# writes the man pages and shell completions with the binary it packages (`hookd generate`, so
# they always match its command line), and runs `cargo deb --no-build` (crates.io cargo-deb).
# The binary is stripped; its line tables (profile.release debug) go to a separate
# hookd-dbgsym_<version>_<arch>.ddeb for symbolized backtraces and profiles.
#
#   --from-debug   package target/debug/hookd as it is, without building (for .ci/run, whose
#                  suites have just tested that binary; a release build costs minutes there).
set -euo pipefail
cd "$(dirname "$0")/.."

from_debug=false
case "${1:-}" in
  "") ;;
  --from-debug) from_debug=true ;;
  *) echo "usage: $0 [--from-debug]" >&2; exit 2 ;;
esac

command -v cargo-deb >/dev/null || {
  echo "cargo-deb is required: cargo install --locked cargo-deb" >&2
  exit 1
}
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

if $from_debug; then
  # cargo-deb refuses the dev profile by name; `deb-from-debug` (Cargo.toml) inherits it, and
  # its directory receives the binary already built.
  profile=deb-from-debug
  mkdir -p "$target_dir/$profile"
  cp "$target_dir/debug/hookd" "$target_dir/$profile/hookd"
  extra=(--strip --no-dbgsym --fast)
else
  profile=release
  cargo build --release --locked -p hookd-cli
  extra=()
fi

out="$target_dir/$profile/package"
rm -rf "$out"
"$target_dir/$profile/hookd" generate man "$out/man" >/dev/null
gzip -9n "$out"/man/*.1
"$target_dir/$profile/hookd" generate completions "$out/completions" >/dev/null

cargo deb -p hookd-cli --no-build --locked --profile "$profile" "${extra[@]}" \
  --output "$target_dir/debian/"
