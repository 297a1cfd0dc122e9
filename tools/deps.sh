#!/bin/sh
# Installs the Debian packages contrast needs, only those missing.
#   sh tools/deps.sh          build + test + main job, the emoji images and the text lists below
#   sh tools/deps.sh torch    also PyTorch, SentencePiece, scikit-learn and fastText (reference
#                             fixtures, benchmarks, the text baselines of bench/text_eval.sh)
#   sh tools/deps.sh text     only the apt lists with English package descriptions, the source
#                             of the debian-descriptions corpus (docs/text.md), fetched by apt
#                             itself into $CONTRAST_DEBIAN_LISTS (default /var/cache/contrast/apt-lists)
#   sh tools/deps.sh fuzz     also clang + libFuzzer + llvm-symbolizer (make fuzz)
# The emoji image-caption set (docs/clip-data.md) comes from two places: the
# EmojiOne PNGs of Debian's ruby-gemojione, and the Twemoji PNGs of the npm package
# emoji-datasource-twitter, pinned to one version and installed into a project-local
# prefix (CT_NPM_PREFIX in include/contrast/captions.h), never globally.
set -e
pkgs="gcc make libopenblas-dev zlib1g-dev libpng-dev libjpeg-dev dataset-fashion-mnist python3-numpy openmpi-bin libopenmpi-dev"
pkgs="$pkgs ruby-gemojione"
[ "${1:-}" = torch ] && pkgs="$pkgs python3-torch python3-sentencepiece python3-sklearn fasttext"
[ "${1:-}" = fuzz ] && pkgs="$pkgs clang-14 libclang-rt-14-dev libomp-14-dev llvm-14"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo

# The English descriptions are not in the default lists (Acquire::Languages "none"
# on these machines): one `apt-get update` into a private lists folder fetches the
# Packages and Translation-en indexes, uncompressed, without touching the system's
# lists or package cache. Nothing else is downloaded.
if [ "${1:-}" != fuzz ]; then
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
# npm itself: Debian's package only when no npm is on the PATH (a Node.js from
# elsewhere brings its own, and Debian's npm would conflict with it).
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

# Twemoji 64x64 PNGs + emoji.json (CC-BY-4.0 images), when that version is missing.
npm_prefix=/var/lib/contrast/npm
twemoji_version=16.0.0
tw_dir="$npm_prefix/node_modules/emoji-datasource-twitter"
if ! grep -q "\"version\": *\"$twemoji_version\"" "$tw_dir/package.json" 2>/dev/null ||
   [ ! -f "$tw_dir/emoji.json" ] || [ ! -f "$tw_dir/img/twitter/64/1f600.png" ]; then
    echo "deps: installing emoji-datasource-twitter@$twemoji_version into $npm_prefix"
    $SUDO rm -rf "$tw_dir" # a damaged copy: npm would call it "up to date"
    $SUDO mkdir -p "$npm_prefix"
    $SUDO npm install --prefix "$npm_prefix" --no-save --no-audit --no-fund --no-package-lock \
        "emoji-datasource-twitter@$twemoji_version"
fi

# What the emoji loader reads (src/data/emoji.c), checked after every run so a
# failed or partial install is reported here, not by the first training run.
gem_dir=$(ls -d /usr/share/rubygems-integration/all/gems/gemojione-* 2>/dev/null | sort -V | tail -n 1)
for f in "$gem_dir/config/index.json" "$gem_dir/assets/png/1F600.png" "$tw_dir/emoji.json" \
         "$tw_dir/img/twitter/64/1f600.png"; do
    [ -f "$f" ] || { echo "deps: $f missing after install (emoji data set)" >&2; exit 1; }
done
