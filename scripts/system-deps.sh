#!/usr/bin/env bash
# System packages the environments and sandboxes use: Docker + debootstrap (container
# backend and image builds), bubblewrap (light sandbox), Chromium + ChromeDriver (web
# tasks), cmake/g++ (ALFWorld's planner builds from source), python3-pytest (SWE tasks
# run the repositories' tests with the host python under bwrap). Installed only when root
# and missing; otherwise prints what is missing and carries on (their tests then skip
# and say why).
set -u
pkgs=(docker.io debootstrap bubblewrap chromium chromium-driver cmake g++ git python3-pytest)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: not root; missing ${missing[*]} (their tests will skip)" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "system-deps: apt-get failed; the tests that need ${missing[*]} will skip" >&2
