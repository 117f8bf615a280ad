#!/usr/bin/env bash
# Installs a Vulkan loader and Mesa's software Vulkan driver (llvmpipe, "lavapipe") so that the
# GPU path of bdl (`--features gpu`, `--device gpu`) can be built and tested on a machine without
# a GPU. Debian or Ubuntu, as root or with sudo. Does nothing when a Vulkan driver is present.
set -euo pipefail
if ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 && ldconfig -p | grep -q libvulkan.so.1; then
    echo "a Vulkan loader and driver are installed"
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends libvulkan1 mesa-vulkan-drivers >/dev/null
echo "installed libvulkan1 and mesa-vulkan-drivers"
