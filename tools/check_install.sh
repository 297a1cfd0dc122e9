#!/bin/sh
# Installs contrast into a temporary prefix, builds the examples against it with
# pkg-config (as a user's program would), runs them, checks the shared library
# exports only the public ct_ API, and uninstalls. Exit status 0 when all hold.
#   sh tools/check_install.sh [BUILD]      (BUILD defaults to build; run after `make`)
set -eu
build=${1:-build}
tmp=$(mktemp -d /tmp/contrast-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
make --no-print-directory -s install BUILD="$build" PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
export LD_LIBRARY_PATH="$prefix/lib"
test "$(pkg-config --modversion contrast)" = "$("$prefix/bin/contrast" --version | cut -d' ' -f2)"
readelf -d "$prefix/lib/libcontrast.so" | grep -q 'SONAME.*libcontrast.so.0'
# the manual page lists every option of every command's --help
man1="$prefix/share/man/man1/contrast.1"
test -s "$man1"
for cmd in $("$prefix/bin/contrast" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}'); do
    [ "$cmd" = man ] && continue
    for opt in $("$prefix/bin/contrast" "$cmd" --help | grep -oE '^  --[a-z0-9-]+' ); do
        [ "$opt" = --help ] && continue
        grep -q -- "^\.B $(printf '%s' "$opt" | sed 's/-/\\\\-/g')" "$man1" ||
            { echo "check_install: $cmd $opt missing from contrast.1"; exit 1; }
    done
done
make --no-print-directory -s examples BUILD="$build" EXAMPLES_DIR="$tmp/ex" >/dev/null
# only ct_ functions are exported from the shared library
bad=$(nm -D --defined-only "$prefix/lib/libcontrast.so" | awk '$2 ~ /^[TDBRW]$/ {print $3}' | grep -v '^ct_' | grep -v '^_' || true)
if [ -n "$bad" ]; then echo "check_install: non-ct_ symbols exported:"; echo "$bad" | head; exit 1; fi
# ... and each of them is declared in an installed public header (-fvisibility=hidden
# keeps the library's internal ct_ functions out)
for sym in $(nm -D --defined-only "$prefix/lib/libcontrast.so" | awk '$2 == "T" {print $3}'); do
    grep -rqw "$sym" "$prefix/include" || { echo "check_install: $sym exported but not in a public header"; exit 1; }
done
"$tmp/ex/simclr_step" 3 | tee "$tmp/steps.txt"
test "$(grep -c '^step' "$tmp/steps.txt")" -eq 3
"$prefix/bin/contrast" train --limit 512 --batch 64 --epochs 1 --width 8 --eval-every 0 --no-probe --quiet \
    --out "$tmp/run" >/dev/null 2>&1
"$tmp/ex/embed_images" "$tmp/run/checkpoint.safetensors" 200 "$tmp/f.npy"
test -s "$tmp/f.npy"
make --no-print-directory -s uninstall BUILD="$build" PREFIX="$prefix" >/dev/null
left=$(find "$prefix" -type f | wc -l)
if [ "$left" -ne 0 ]; then echo "check_install: uninstall left $left files"; exit 1; fi
echo "check_install: ok"
