#!/usr/bin/env bash
# Installs the Debian packages the integration tests drive for real (promtool, redis-server,
# prometheus-alertmanager, openssl, chromium and chromium-driver; setpriv for the container
# image test; gcc for the native span pass and its sanitizer fuzz test). Idempotent; the tests
# themselves start each server on loopback.
set -euo pipefail
need=()
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need+=(prometheus)  # the dashboards test runs the server
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
# the status page's browser tests (Selenium drives Debian's chromium through chromium-driver)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# the native span pass's build, and its fuzz test (gcc's AddressSanitizer and UBSan runtimes)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup-services: missing ${need[*]} and not root; tests needing them will be skipped" >&2
  fi
fi
