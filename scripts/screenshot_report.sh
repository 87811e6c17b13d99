#!/usr/bin/env bash
# Screenshot a groverlm HTML report in headless Chromium, to check what a person sees.
#   scripts/screenshot_report.sh REPORT.html OUT.png [WIDTH] [HEIGHT]
# Chromium is not a Python dependency: on Debian/Ubuntu `apt-get update && apt-get install -y
# chromium`. The page is captured at WIDTH x HEIGHT CSS pixels (default 1280 x 6000: a tall window
# shows most of a report in one image; the rest of a longer page is cut off).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH] [HEIGHT]" >&2
  exit 2
fi
report=$(realpath "$1")
out=$(realpath -m "$2")
width=${3:-1280}
height=${4:-6000}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "$0: chromium not found (apt-get install -y chromium)" >&2
  exit 3
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# --no-sandbox: root in a container has no user namespaces; the page is our own local file
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
  --user-data-dir="$profile" --window-size="${width},${height}" --virtual-time-budget=5000 \
  --screenshot="$out" "file://$report" >/dev/null 2>&1
test -s "$out"
echo "$out"
