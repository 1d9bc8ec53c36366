# crtfs - the mount harness of the bash mounted scenarios (TAP); the Python
# one, for scenarios and benches, is crtfs_harness.py.
#
# Source it first thing:  . "$(dirname "$0")/lib.sh"
#
#   crt_mount [crtfs options...]   mount a private crtfs on a fresh $MNT (the
#                                  daemon runs with -f in the background,
#                                  $CRT_PID, stderr in $CRT_ERR); may be
#                                  called again after the daemon ended
#   crt_stop_daemon                SIGTERM, wait <= 10 s; $CRT_EXIT = exit code
#                                  ("hang" when it had to be killed)
#   crt_wait_daemon SECONDS        wait for it to exit by itself (unmount)
#   crt_is_mounted [DIR], crt_log_clean, crt_drain DIR
#   t CMD...                       run a client under `timeout ${T:-10}`
#   wr FILE TEXT                   echo TEXT > FILE; $? is echo's, $WERR its message
#   state_word DIR, state_field DIR KEY, stat_of DIR KEY, wait_for SECONDS CMD...
#   ok DESC CMD..., nok DESC CMD..., is GOT WANT DESC, isnt GOT UNWANTED DESC,
#   like GOT ERE DESC, pass DESC, fail DESC, diag MSG, done_testing
#   $CRT_TMP (private temporary directory), $CRT_EMPTY (a config file
#   with no targets: crt_mount -o config="$CRT_EMPTY")
#
# At exit clients and the daemon are stopped, mounts lazily unmounted, the
# temporary directory removed, and the test fails if a daemon's stderr shows
# a GLib critical/warning/error, a sanitizer report, a valgrind error or a
# glibc abort; then the plan is printed.  A script that does not reach
# done_testing fails.
#
# Environment: CRTFS (the daemon; default: the build tree's crtfs), T (client
# timeout, seconds, default 10), CRTFS_VALGRIND=1 (run the daemon under
# valgrind), CRT_KEEP_LOG=1 (print the daemon's stderr as diagnostics).

set -u

: "${T:=10}"
if [ -z "${CRTFS:-}" ]; then
    for _c in "$(dirname "${BASH_SOURCE[0]}")/../../crtfs" "$PWD/crtfs" "$PWD/../../crtfs"; do
        if [ -x "$_c" ]; then
            CRTFS=$_c
            break
        fi
    done
fi
CRTFS=$(readlink -f "${CRTFS:-crtfs}")
export CRTFS

_tap_n=0
_tap_failed=0
_tap_done=0
CRT_TMP=$(mktemp -d /tmp/crtfs-test.XXXXXX)
# A config file with no targets: `crt_mount -o config=$CRT_EMPTY`.
CRT_EMPTY=$CRT_TMP/empty.conf
: >"$CRT_EMPTY"
MNT=
# Commands the cleanup runs after unmounting (a scenario's own undo).
CRT_AT_EXIT=()
CRT_PID=
CRT_EXIT=
CRT_ERR=
_crt_errs=()
_crt_mounts=()

diag() { printf '# %s\n' "$*" | sed '2,$s/^/# /'; }

pass() {
    _tap_n=$((_tap_n + 1))
    printf 'ok %d - %s\n' "$_tap_n" "$1"
}

fail() {
    _tap_n=$((_tap_n + 1))
    _tap_failed=$((_tap_failed + 1))
    printf 'not ok %d - %s\n' "$_tap_n" "$1"
}

# ok DESC CMD...: CMD's exit status decides.
ok() {
    local desc=$1
    shift
    if "$@"; then pass "$desc"; else fail "$desc"; diag "command failed: $*"; return 1; fi
}

# nok DESC CMD...: CMD must fail.
nok() {
    local desc=$1
    shift
    if "$@"; then fail "$desc"; diag "command succeeded: $*"; else pass "$desc"; fi
}

is() {
    if [ "$1" == "$2" ]; then
        pass "$3"
    else
        fail "$3"
        diag "got:      '$1'"
        diag "expected: '$2'"
        return 1
    fi
}

isnt() {
    if [ "$1" != "$2" ]; then
        pass "$3"
    else
        fail "$3"
        diag "got the unwanted '$1'"
    fi
}

like() {
    if [[ "$1" =~ $2 ]]; then
        pass "$3"
    else
        fail "$3"
        diag "got:      '$1'"
        diag "expected: /$2/"
    fi
}

# Every client runs under a timeout: a hang fails the test, never the run.
t() { timeout -k 2 "$T" "$@"; }

# wr FILE TEXT: `echo TEXT > FILE` under the timeout; the status is echo's
# ($? = 1 on a refused write) and WERR holds its message.
wr() { WERR=$(t bash -c 'echo "$2" > "$1"' wr "$1" "$2" 2>&1); }

# One stat of a target: `stat_of DIR KEY`.
stat_of() { t awk -v k="$2" '$1 == k { print $2 }' "$1/stats"; }

# Drop what a target's hub keeps for the next reader (an open and close of
# `data` takes the kept buffers over and releases them).
crt_drain() { t sh -c ": < '$1/data'"; }

# The first line of state (the state word) and one `key: value` line.
state_word() { t sed -n 1p "$1/state"; }
state_field() { t sed -n "s/^$2: //p" "$1/state"; }

# wait_for SECONDS CMD...: run CMD every 20 ms until it succeeds or the
# time is up (fails).
wait_for() {
    local limit_ms=$(($(date +%s%3N) + $1 * 1000))
    shift
    until "$@"; do
        [ "$(date +%s%3N)" -ge "$limit_ms" ] && return 1
        sleep 0.02
    done
    return 0
}

_crt_is_mounted() {
    # The mount table has the path with octal escapes; ours has none.
    awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

crt_is_mounted() { _crt_is_mounted "${1:-$MNT}"; }

# crt_mount [options...]: mount on a fresh $MNT; returns non-zero (and
# records a failure) when the mount does not appear within the limit.
crt_mount() {
    local i=${#_crt_mounts[@]} limit=5
    MNT=$CRT_TMP/mnt$i
    CRT_ERR=$CRT_TMP/crtfs$i.err
    mkdir -p "$MNT"
    _crt_mounts+=("$MNT")
    _crt_errs+=("$CRT_ERR")
    CRT_EXIT=
    if [ "${CRTFS_VALGRIND:-0}" = 1 ]; then
        limit=30
        valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
            "$CRTFS" -f "$@" "$MNT" 2>"$CRT_ERR" &
    else
        "$CRTFS" -f "$@" "$MNT" 2>"$CRT_ERR" &
    fi
    CRT_PID=$!
    local deadline=$((SECONDS + limit))
    while ! _crt_is_mounted "$MNT"; do
        if ! kill -0 "$CRT_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            fail "crtfs mounts on $MNT"
            diag "$(cat "$CRT_ERR")"
            return 1
        fi
        sleep 0.02
    done
    return 0
}

# crt_stop_daemon: SIGTERM, wait up to 10 s; CRT_EXIT is the exit status
# (or "hang" when it had to be killed).
crt_stop_daemon() {
    local pid=$CRT_PID deadline=$((SECONDS + ${1:-10}))
    CRT_EXIT=
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z ]; do
        if [ $SECONDS -ge $deadline ]; then
            kill -KILL "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            CRT_EXIT=hang
            CRT_PID=
            return 1
        fi
        sleep 0.02
    done
    wait "$pid" 2>/dev/null
    CRT_EXIT=$?
    CRT_PID=
    return 0
}

# crt_wait_daemon SECONDS: wait for the daemon to exit by itself (after an
# unmount); CRT_EXIT as above.
crt_wait_daemon() {
    local pid=$CRT_PID deadline=$((SECONDS + $1))
    CRT_EXIT=
    while kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z ]; do
        if [ $SECONDS -ge $deadline ]; then
            CRT_EXIT=hang
            return 1
        fi
        sleep 0.02
    done
    wait "$pid" 2>/dev/null
    CRT_EXIT=$?
    CRT_PID=
    return 0
}

# The daemon's stderr must be free of these.
# (glibc's own aborts too: LIBC_FATAL_STDERR_ sends them to the log.)
CRT_BAD_LOG='CRITICAL|WARNING|ERROR|runtime error|AddressSanitizer|LeakSanitizer|Sanitizer|==[0-9]+==|double free|corrupted|invalid pointer|stack smashing|Assertion .* failed'
# The bad lines of a log; a target's own errors (log domain crtfs-target:
# a device failing, a stream ending) are what the scenarios provoke.
_crt_bad_lines() { grep -v 'crtfs-target-WARNING \*\*' "$1" | grep -E "$CRT_BAD_LOG"; }
export LIBC_FATAL_STDERR_=1

crt_check_log() {
    local f lines bad=0
    for f in "${_crt_errs[@]}"; do
        [ -f "$f" ] || continue
        lines=$(_crt_bad_lines "$f")
        if [ -n "$lines" ]; then
            bad=1
            diag "daemon log $f:"
            diag "$(head -n 20 <<<"$lines")"
        fi
    done
    return $bad
}

# The end of the scenario; the plan is printed at exit, after the daemon's
# log has been checked.
done_testing() { _tap_done=1; }

# crt_bind_devices DIR: DIR becomes a /dev of its own for a private mount
# namespace (unshare -m): the devices crtfs needs, bound from the real one;
# nothing is created in the real /dev.  The scenarios that run a script in
# such a namespace hand it this function with `declare -f`.
crt_bind_devices() {
    local n
    mkdir -p "$1" || return 1
    for n in null zero full random urandom tty fuse; do
        [ -e "/dev/$n" ] || continue
        touch "$1/$n" && mount --bind "/dev/$n" "$1/$n" || return 1
    done
}

# crt_log_clean: the current mount's stderr has nothing bad so far.
crt_log_clean() { ! _crt_bad_lines "$CRT_ERR" >/dev/null; }

_crt_cleanup() {
    local st=$? m j
    trap - EXIT
    # Clients first (every one runs under timeout, but don't wait for that).
    for j in $(jobs -p); do
        [ "$j" = "$CRT_PID" ] || kill -TERM "$j" 2>/dev/null
    done
    if [ -n "$CRT_PID" ] && kill -0 "$CRT_PID" 2>/dev/null; then
        crt_stop_daemon 5 || diag "daemon did not exit on SIGTERM at cleanup"
    fi
    for m in "${_crt_mounts[@]}"; do
        crt_is_mounted "$m" && fusermount3 -u -z "$m" 2>/dev/null
    done
    for m in "${CRT_AT_EXIT[@]}"; do
        eval "$m"
    done
    if ! crt_check_log; then
        fail "daemon stderr has no warnings, criticals or sanitizer reports"
    fi
    if [ "${CRT_KEEP_LOG:-0}" = 1 ]; then
        for m in "${_crt_errs[@]}"; do
            diag "--- $m"
            diag "$(cat "$m" 2>/dev/null)"
        done
    fi
    if [ $_tap_done = 0 ]; then
        fail "script reached done_testing (ended with status $st)"
    fi
    echo "1..$_tap_n"
    rm -rf --one-file-system "$CRT_TMP" 2>/dev/null
    [ $_tap_failed -eq 0 ] && exit 0
    exit 1
}
trap _crt_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The whole scenario cannot run here: one skipped test, and out.
crt_skip_all() {
    echo "ok 1 # SKIP $*"
    echo "1..1"
    trap - EXIT
    rm -rf "$CRT_TMP"
    exit 0
}

if [ "$(id -u)" != 0 ] || [ ! -w /dev/fuse ]; then
    echo "1..0 # SKIP needs root and /dev/fuse"
    trap - EXIT
    rm -rf "$CRT_TMP"
    exit 0
fi
if [ ! -x "$CRTFS" ]; then
    echo "Bail out! no crtfs binary (set CRTFS): $CRTFS"
    trap - EXIT
    rm -rf "$CRT_TMP"
    exit 1
fi
