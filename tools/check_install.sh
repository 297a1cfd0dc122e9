#!/bin/sh
# Installs contrast into a temporary prefix, builds the examples against it with
# pkg-config (as a user's program would), runs them, checks the shared library
# exports only the public ct_ API, imports the installed Python package and embeds
# with it, and uninstalls. Exit status 0 when all hold.
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
# a text checkpoint, trained in a second on a tiny generated pairs file, then the
# text example: its similarity matrix is n x n with ones on the diagonal
i=0
while [ $i -lt 120 ]; do
    printf 'item %d red cat\titem %d red cat runs\n' $i $i
    printf 'thing %d blue dog\tthing %d blue dog sleeps\n' $i $i
    i=$((i + 1))
done >"$tmp/pairs.tsv"
"$prefix/bin/contrast" train --method pairs --data "pairs:$tmp/pairs.tsv" --width 32 --depth 2 --heads 2 \
    --context 16 --vocab 300 --batch 32 --epochs 1 --quiet --out "$tmp/text" >/dev/null 2>&1
"$tmp/ex/embed_text" "$tmp/text/checkpoint.safetensors" "item 3 red cat" "thing 4 blue dog" "item 7 red cat" |
    tee "$tmp/sim.txt"
# ... the cosines of the features `contrast embed --text` prints, to the 3 decimals shown
"$prefix/bin/contrast" embed --checkpoint "$tmp/text/checkpoint.safetensors" --text "item 3 red cat" \
    --text "thing 4 blue dog" --text "item 7 red cat" >"$tmp/text.txt"
/usr/bin/python3 -c '
import sys, numpy as np
h = np.loadtxt(sys.argv[1]); h /= np.linalg.norm(h, axis=1, keepdims=True)
rows = [l.split()[:3] for l in open(sys.argv[2]).read().splitlines()[1:]]
got = np.array(rows, float)
assert got.shape == (3, 3) and np.abs(got - h @ h.T).max() <= 6e-4, (got, h @ h.T)
' "$tmp/text.txt" "$tmp/sim.txt"
"$tmp/ex/embed_text" "$tmp/run/checkpoint.safetensors" 2>/dev/null && {
    echo "check_install: embed_text accepted an image checkpoint"; exit 1; }
# the Python package, as installed: found with PYTHONPATH alone, it loads the library
# from the prefix (the path make install recorded) and embeds as contrast embed does
"$prefix/bin/contrast" embed --checkpoint "$tmp/run/checkpoint.safetensors" --limit 200 --out "$tmp/cli.npy" \
    >/dev/null 2>&1
(cd / && env -u LD_LIBRARY_PATH -u CONTRAST_LIB PYTHONPATH="$prefix/lib/python3/dist-packages" /usr/bin/python3 -c '
import gzip, sys, numpy as np, contrast
prefix, tmp = sys.argv[1:]
assert contrast.library_path().startswith(prefix + "/lib/"), contrast.library_path()
assert contrast.__file__.startswith(prefix + "/lib/python3/dist-packages/"), contrast.__file__
with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:200]
h = contrast.load(tmp + "/run/checkpoint.safetensors").embed(x)
assert np.array_equal(h, np.load(tmp + "/cli.npy")), "python embed differs from contrast embed"
print("check_install: python: embedded", h.shape, "with", contrast.library_path())
' "$prefix" "$tmp")
make --no-print-directory -s uninstall BUILD="$build" PREFIX="$prefix" >/dev/null
left=$(find "$prefix" -type f | wc -l)
if [ "$left" -ne 0 ]; then echo "check_install: uninstall left $left files"; exit 1; fi
echo "check_install: ok"
