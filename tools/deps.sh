#!/bin/sh
# Installs the Debian packages contrast needs, only those missing.
#   sh tools/deps.sh          build + test + main job
#   sh tools/deps.sh torch    also PyTorch and SentencePiece (reference fixtures, benchmarks),
#                             and the text lists below
#   sh tools/deps.sh text     the apt lists with English package descriptions, the source of
#                             the debian-descriptions corpus (docs/text.md), fetched by apt
#                             itself into $CONTRAST_DEBIAN_LISTS (default /var/cache/contrast/apt-lists)
#   sh tools/deps.sh fuzz     also clang + libFuzzer + llvm-symbolizer (make fuzz)
set -e
pkgs="gcc make libopenblas-dev zlib1g-dev libpng-dev libjpeg-dev dataset-fashion-mnist python3-numpy openmpi-bin libopenmpi-dev"
[ "${1:-}" = torch ] && pkgs="$pkgs python3-torch python3-sentencepiece"
[ "${1:-}" = fuzz ] && pkgs="$pkgs clang-14 libclang-rt-14-dev libomp-14-dev llvm-14"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo

# The English descriptions are not in the default lists (Acquire::Languages "none"
# on these machines): one `apt-get update` into a private lists folder fetches the
# Packages and Translation-en indexes, uncompressed, without touching the system's
# lists or package cache. Nothing else is downloaded.
if [ "${1:-}" = text ] || [ "${1:-}" = torch ]; then
    lists=${CONTRAST_DEBIAN_LISTS:-/var/cache/contrast/apt-lists}
    if ! ls "$lists"/*_i18n_Translation-en >/dev/null 2>&1; then
        echo "deps: fetching the English package descriptions into $lists"
        $SUDO mkdir -p "$lists/partial"
        $SUDO apt-get -q -o Dir::State::Lists="$lists" -o Acquire::Languages=en -o Acquire::GzipIndexes=false \
            -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= update
        ls "$lists"/*_i18n_Translation-en >/dev/null 2>&1 ||
            { echo "deps: apt fetched no Translation-en list into $lists" >&2; exit 1; }
    fi
fi

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
