#!/bin/bash
# The USB identity unit tests (test-target-udev-mock) under umockdev-wrapper,
# which preloads libumockdev-preload: /sys, /dev and the uevent netlink
# socket then lead into the testbed the program builds.  umockdev missing is
# a failure (configure builds the program only when it finds umockdev), never a skip.
set -u
prog="${CRT_BUILDDIR:-.}/tests/unit/test-target-udev-mock"
src="${CRT_SRCDIR:-$(dirname "$0")/../..}"
command -v umockdev-wrapper >/dev/null || { echo "Bail out! umockdev-wrapper missing (Debian: umockdev)"; exit 1; }
[ -x "$prog" ] || { echo "Bail out! $prog not built: configure found no umockdev-1.0 (Debian: libumockdev-dev umockdev)"; exit 1; }
# The preload library comes before the sanitizer runtime: let ASan accept it.
export ASAN_OPTIONS="verify_asan_link_order=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# Under TSan, umockdev's own races are suppressed besides GLib's (the file
# says which and why); the later suppressions= wins.
supp=$(mktemp)
trap 'rm -f "$supp"' EXIT
cat "$src/tests/tsan.supp" "$src/tests/unit/udev-mock-tsan.supp" >"$supp"
export TSAN_OPTIONS="${TSAN_OPTIONS:-} suppressions=$supp"
umockdev-wrapper "$prog" -k "$@"
