#!/bin/sh
# Installs the Debian packages contrast needs, only those missing.
#   sh tools/deps.sh          build + test + main job
#   sh tools/deps.sh torch    also PyTorch (reference fixtures, benchmarks)
#   sh tools/deps.sh fuzz     also clang + libFuzzer + llvm-symbolizer (make fuzz)
set -e
pkgs="gcc make libopenblas-dev zlib1g-dev libpng-dev libjpeg-dev dataset-fashion-mnist python3-numpy openmpi-bin libopenmpi-dev"
[ "${1:-}" = torch ] && pkgs="$pkgs python3-torch"
[ "${1:-}" = fuzz ] && pkgs="$pkgs clang-14 libclang-rt-14-dev libomp-14-dev llvm-14"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
