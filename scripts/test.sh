#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds (Release) and runs every test with ctest;
# then builds the proxy and the unit and integration suites again under ASan + UBSan (every report
# fatal) and runs those suites once more. Exit status: non-zero when any run fails.
#   WP_SANITIZE_SUITE=0 scripts/test.sh   skips the sanitizer pass (a quick local run)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# -Werror here (not in the demo's build): the tree builds warning-free with -Wall -Wextra.
BUILD_DIR="${BUILD_DIR:-build}" scripts/build.sh -DWP_WERROR=ON
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j "$(nproc)" --timeout 600)

if [ "${WP_SANITIZE_SUITE:-1}" != 0 ]; then
  san_dir="${SANITIZE_BUILD_DIR:-build-asan}"
  # -O1: the sanitizers' usual level (fast enough to run, quick to build); the attack, fuzz and
  # bench tests stay with the Release build above.
  # Without -Werror: GCC 12 reports false -Wmaybe-uninitialized under -fsanitize (std::function
  # inside std::regex, from Catch2's header); the Release build above holds the tree warning-free.
  cmake -S . -B "$san_dir" -DWP_SANITIZE=ON -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1" >/dev/null
  cmake --build "$san_dir" -j "$(nproc)" --target waypoint wp_unit_tests wp_integration_tests
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  # The C++ unit and integration suites (the Python-driven integration tests need the tools and
  # stay with the Release pass).
  (cd "$san_dir" && ctest --output-on-failure -j "$(nproc)" --timeout 600 -R '^(unit|integration):' -E 'python3|fake Kubernetes')
fi
