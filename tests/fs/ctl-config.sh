#!/bin/bash
# Every config/ file: its default, good values (with and without a newline),
# bad values (echo fails with $? = 1, error: in state, value unchanged), and
# EBUSY for the keys that cannot change while streaming.
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/cf
mkdir "$D"
C=$D/config

# key default good-value shown-as
keys=(
    "type read internal-ioctl internal-ioctl"
    "requests 4 8 8"
    "out_count 16 32 32"
    "out_size 4096 512 512"
    "in_count 4 2 2"
    "in_size 4096 100 100"
    "ioctl 0x0 0x53494d01 0x53494d01"
    "mode manual automatic automatic"
    "lookaside 0 true 1"
    "in_memory normal locked locked"
    "out_memory normal locked locked"
    "completion default passive passive"
    "purge_on_suspend 0 yes 1"
    "overflow block drop-oldest drop-oldest"
    "payload - hello -"
    "framing record stream stream"
    "on_open - dtr=1 -"
    "on_close - rts=0 -"
    "split none length=16 length=16"
    "split_max 0 100 100"
    "split_wait 1s 250ms 250ms"
    "history 0 30s 30s"
    "history_bytes 1048576 65536 65536"
)
# key bad values (| separated)
declare -A bad=(
    [type]='reed|READ|read write|'
    [requests]='0|4097|-1|12x|1.5|0x4|'
    [out_count]='65537|abc|-3'
    [out_size]='1073741825|1k|'
    [in_count]='65537|x'
    [in_size]='-5|99999999999'
    [ioctl]='0x1ffffffff|zz|0x|09|-1'
    [mode]='auto|Manual|'
    [lookaside]='2|maybe|'
    [in_memory]='fast|'
    [out_memory]='pinned|'
    [completion]='dispatch|'
    [purge_on_suspend]='-1|10'
    [overflow]='drop|drop-newest|'
    [framing]='records|packed|'
    [on_open]='dtr=2|cts=1|wait=11s|frob'
    [on_close]='rts|break=0ms'
    [split]='lines|idle=5|idle=500us|delim=|length=0|'
    [split_max]='4097|x|-1'
    [split_wait]='0ms|2h|5|forever|'
    [history]='-1|1000001|30x|8d|5,30s|'
    [history_bytes]='4095|1073741825|1M|'
)

listed=$(cd "$C" && ls | tr '\n' ' ')
is "$listed" "completion framing history history_bytes in_count in_memory in_size ioctl keep lookaside mode on_close on_open out_count out_memory out_size overflow payload purge_on_suspend requests split split_max split_wait type " \
    "config/ lists every key"

for line in "${keys[@]}"; do
    read -r k def good shown <<<"$line"
    [ "$def" = - ] && def=""
    [ "$shown" = - ] && shown=$good
    is "$(t cat "$C/$k")" "$def" "$k: default '$def'"
    IFS='|' read -r -a bads <<<"${bad[$k]:-}|"
    [ -z "${bad[$k]:-}" ] && bads=()
    for b in "${bads[@]}"; do
        wr "$C/$k" "$b"
        is $? 1 "$k: '$b' is refused"
        like "$(state_field "$D" error)" "^$k: " "$k: error: names the key for '$b'"
        is "$(t cat "$C/$k")" "$def" "$k: unchanged after '$b'"
    done
    wr "$C/$k" "$good"
    is $? 0 "$k: '$good' accepted"
    is "$(t cat "$C/$k")" "$shown" "$k: reads back '$shown' with a newline"
    ok "$k: the file ends in a newline" t sh -c "[ \"\$(tail -c 1 '$C/$k' | od -An -c | tr -d ' ')\" = '\\n' ]"
    # back to the default without a newline (an empty value needs one: a
    # write of nothing is no write)
    if [ -n "$def" ]; then t sh -c "printf '%s' '$def' > '$C/$k'"; else wr "$C/$k" ""; fi
    is "$(t cat "$C/$k")" "$def" "$k: back to '$def' without a newline"
done

wr "$C/requests" " 7  "
is "$(t cat "$C/requests")" 7 "blanks around a number are trimmed"
wr "$C/ioctl" 10
is "$(t cat "$C/ioctl")" 0xa "ioctl: decimal accepted, shown in hex"
wr "$C/ioctl" 010
is "$(t cat "$C/ioctl")" 0x8 "ioctl: 0 octal accepted"
t sh -c "printf '8\n9\n' > '$C/requests'" 2>/dev/null
is $? 1 "a value spanning lines is refused"
is "$(t cat "$C/requests")" 7 "requests unchanged"
wr "$C/payload" "two words  "
is "$(t cat "$C/payload")" "two words  " "payload keeps inner and trailing blanks"
wr "$C/payload" ""
is "$(t cat "$C/payload")" "" "payload cleared"
nok "no new files in config/" t sh -c "echo 1 > '$C/nosuchkey'" 2>/dev/null
ok "config/ has no such file" test ! -e "$C/nosuchkey"

# Combinations are checked when the engine is built (start).
ok "target" t sh -c "echo sim:counter > '$D/target'"
wr "$C/type" ioctl
wr "$C/ioctl" 0
wr "$D/ctl" start
is $? 1 "type ioctl with ioctl 0 does not start"
like "$(state_field "$D" error)" 'ioctl' "error: names ioctl"
wr "$C/type" read

# While streaming: non-live keys EBUSY (value unchanged), live keys apply.
wr "$D/ctl" start
is "$(state_word "$D")" streaming "streaming"
for line in "${keys[@]}"; do
    read -r k def good shown <<<"$line"
    [ "$def" = - ] && def=""
    [ "$shown" = - ] && shown=$good
    before=$(t cat "$C/$k")
    case $k in
    overflow | framing | payload | on_open | on_close | split | split_max | split_wait | history | history_bytes)
        wr "$C/$k" "$good"
        is $? 0 "$k can change while streaming"
        is "$(t cat "$C/$k")" "$shown" "$k changed"
        wr "$C/$k" "$def"
        ;;
    *)
        wr "$C/$k" "$good"
        is $? 1 "$k: refused while streaming"
        like "$WERR" 'busy' "$k: EBUSY"
        like "$(state_field "$D" error)" "^$k cannot change while the target streams" "$k: error: says why"
        is "$(t cat "$C/$k")" "$before" "$k: unchanged"
        ;;
    esac
done
is "$(state_word "$D")" streaming "still streaming"
wr "$C/requests" "bad"
like "$(state_field "$D" error)" '^requests: "bad"' "a bad value while streaming says what is wrong"
wr "$D/ctl" stop-wait
wr "$C/requests" 2
is $? 0 "stopped: non-live keys change again"
wr "$D/ctl" start
is $? 0 "restart with the new config"
is "$(stat_of "$D" requests_in_flight)" 2 "the new request count is used"
wr "$D/ctl" stop-wait

# lookaside: out_count 0 needs it; the engine's buffers are then all
# look-aside buffers.  Kept buffers of that engine must survive the rebuild
# that the next config change causes.
wr "$C/out_count" 0
wr "$D/ctl" start
is $? 1 "start with out_count 0 and no lookaside fails"
like "$(state_field "$D" error)" 'out_count' "error: names out_count"
is "$(state_word "$D")" stopped "still stopped"
wr "$C/lookaside" 1
wr "$D/ctl" start
is $? 0 "with lookaside=1, out_count 0 starts"
ok "look-aside buffers are kept for the next reader" wait_for 5 sh -c "[ \$(awk '\$1==\"buffers_queued\"{print \$2}' '$D/stats') -gt 0 ]"
wr "$D/ctl" stop-wait
wr "$C/lookaside" 0
wr "$C/out_count" 16
wr "$D/ctl" start
is $? 0 "rebuilt engine (lookaside 0, out_count 16) starts"
is "$(state_word "$D")" streaming "streaming"
ok "data still reads after the rebuild" sh -c "timeout $T head -c 64 '$D/data' >/dev/null"
wr "$D/ctl" stop-wait

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"

# max_target_memory (MiB): both pools (a look-aside pool at its largest),
# checked when the engine is built (start, or setting a target)
crt_mount -o config="$CRT_EMPTY" -o max_target_memory=64 || exit 1
D=$MNT/m
C=$D/config
mkdir "$D"
wr "$D/target" "sim:zero"
wr "$C/out_size" 8388608
wr "$C/out_count" 9
wr "$D/ctl" start
is $? 1 "9 x 8 MiB is over max_target_memory=64: start fails"
like "$WERR" "Cannot allocate memory" "ENOMEM"
like "$(state_field "$D" error)" "max_target_memory" "error: names the mount option"
is "$(state_word "$D")" stopped "still stopped"
wr "$C/out_count" 8
wr "$D/ctl" start
is $? 0 "8 x 8 MiB = 64 MiB: starts"
wr "$D/ctl" stop-wait
wr "$C/lookaside" 1
wr "$D/ctl" start
is $? 1 "lookaside=1 counts the pool at its largest (64 buffers): fails"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"

# Buffers below 4 KiB are copied into a queue of at most 1 MiB, which counts
# too (man page, DATA DELIVERY): with max_target_memory=1 the smallest pool
# of small buffers is over, a 1 MiB pool of 4 KiB buffers is not.
crt_mount -o config="$CRT_EMPTY" -o max_target_memory=1 || exit 1
D=$MNT/q
C=$D/config
mkdir "$D"
wr "$D/target" "sim:zero"
wr "$C/out_size" 64
wr "$C/out_count" 1
wr "$D/ctl" start
is $? 1 "64-byte buffers: 64 B + the 1 MiB copy queue is over max_target_memory=1"
like "$(state_field "$D" error)" "max_target_memory" "error: names the mount option"
wr "$C/out_size" 4096
wr "$C/out_count" 256
wr "$D/ctl" start
is $? 0 "256 x 4 KiB = 1 MiB (no copy queue): starts"
wr "$D/ctl" stop-wait
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
