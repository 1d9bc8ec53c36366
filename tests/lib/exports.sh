#!/bin/bash
# The installed engine library exports exactly what its installed headers
# declare: every CRT_API function of include/crtfs/*.h is a dynamic symbol
# of libcrtfs.so, and nothing else is (no internal name, no data object).
# TAP.
set -u
src=${CRT_SRCDIR:-$(dirname "$0")/../..}
build=${CRT_BUILDDIR:-.}
so=$(ls "$build"/.libs/libcrtfs.so.[0-9]* 2>/dev/null | head -n 1)
n=0 failed=0
check() { # check DESC COMMAND...
    n=$((n + 1))
    if "${@:2}"; then echo "ok $n - $1"; else echo "not ok $n - $1"; failed=1; fi
}
if [ -z "$so" ]; then
    echo "1..1"
    echo "not ok 1 - libcrtfs.so is built in $build/.libs"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Declarations: CRT_API lines, the name before the first parenthesis.
sed -n 's/^CRT_API .*[^a-z0-9_]\(crt_[a-z0-9_]*\)(.*/\1/p' "$src"/include/crtfs/*.h | sort -u >"$tmp/declared"
nm -D --defined-only "$so" | awk '{ print $3 }' | grep -v '^_' | sort -u >"$tmp/exported"
check "the headers declare an API ($(wc -l <"$tmp/declared") functions)" test -s "$tmp/declared"
comm -23 "$tmp/exported" "$tmp/declared" >"$tmp/extra"
comm -13 "$tmp/exported" "$tmp/declared" >"$tmp/missing"
check "nothing exported that no installed header declares" test ! -s "$tmp/extra"
[ -s "$tmp/extra" ] && sed 's/^/# extra: /' "$tmp/extra"
check "every declared function is exported" test ! -s "$tmp/missing"
[ -s "$tmp/missing" ] && sed 's/^/# missing: /' "$tmp/missing"
nm -D --defined-only "$so" | awk '$2 != "T" && $3 !~ /^_/ { print }' >"$tmp/data"
check "no data objects exported" test ! -s "$tmp/data"
[ -s "$tmp/data" ] && sed 's/^/# data: /' "$tmp/data"
echo "1..$n"
exit $failed
