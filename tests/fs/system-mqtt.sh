#!/bin/bash
# Into a real broker: mosquitto (Debian's) on 127.0.0.1, started here with
# persistence; the shipped publisher (tools/crtfs-publish, what
# doc/crtfs-publish@.service runs) publishes a target's lines with the stock
# mosquitto_pub, QoS 1; mosquitto_sub (a persistent session, QoS 1) receives
# them.  The broker is stopped and started again in the middle of the stream:
# every message must arrive, in order; duplicates (a lost acknowledgement
# makes the publisher send one again: at least once) are counted and shown.
. "$(dirname "$0")/lib.sh"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
PUB=$SRC/tools/crtfs-publish
UNIT_IN=$SRC/doc/crtfs-publish@.service.in
for tool in mosquitto mosquitto_pub mosquitto_sub; do
    command -v "$tool" >/dev/null || { fail "$tool is missing (Debian: mosquitto mosquitto-clients)"; done_testing; exit 1; }
done

# The unit runs the publisher on /run/crtfs/%i with topic crtfs/%i.
exec_line=$(sed -n 's/^ExecStart=//p' "$UNIT_IN")
is "$exec_line" "@bindir@/crtfs-publish /run/crtfs/%i crtfs/%i" "the unit runs crtfs-publish DIR TOPIC"
if command -v systemd-analyze >/dev/null; then
    sed -e "s|@bindir@|$SRC/tools|g" "$UNIT_IN" >"$CRT_TMP/crtfs-publish@.service"
    out=$(cd "$CRT_TMP" && t systemd-analyze verify --man=no "$CRT_TMP/crtfs-publish@.service" 2>&1 |
        grep -v "crtfs.service\|Unit .* not found\|Failed to prepare filename")
    is "$out" "" "systemd-analyze verify crtfs-publish@.service has nothing to complain about"
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$CRT_TMP/mq"
cat >"$CRT_TMP/mq/m.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
# As root mosquitto would drop to its own user, which cannot write the
# persistence file here: the session would not survive the restart.
user root
persistence true
persistence_location $CRT_TMP/mq/
autosave_interval 1
CONF
broker_start() {
    mosquitto -c "$CRT_TMP/mq/m.conf" >>"$CRT_TMP/mq/broker.log" 2>&1 &
    BROKER=$!
    wait_for 5 sh -c "mosquitto_pub -h 127.0.0.1 -p $PORT -t probe -n 2>/dev/null"
}
broker_stop() {
    kill "$BROKER" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$BROKER" 2>/dev/null || break; sleep 0.1; done
}
broker_start
ok "mosquitto answers on 127.0.0.1:$PORT" mosquitto_pub -h 127.0.0.1 -p "$PORT" -t probe -n
# The broker, the subscriber and the publisher are jobs of this shell:
# lib.sh's exit trap stops them with the daemon.

# The subscriber: a persistent session (-c) with QoS 1 outlives the broker's
# restart (the broker keeps its queue on disk).
SUBOUT=$CRT_TMP/mq/got
sub_start() {
    timeout -k 2 60 mosquitto_sub -h 127.0.0.1 -p "$PORT" -c -i crtfs-test-sub -q 1 -t crtfs/gps >>"$SUBOUT" 2>>"$CRT_TMP/mq/sub.err" &
    SUB=$!
}
sub_start
sleep 1 # the subscription is made

crt_mount -o config="$CRT_EMPTY"
D=$MNT/gps
mkdir "$D"
# Numbered lines at 60 a second: "0000000001 crtfs sim record ...".
wr "$D/target" "sim:records rate=60 size=40"
is $? 0 "the target is a line source"
# A second reader of data sees every line crtfs delivered (a buffer may
# carry several lines once the stream paused: entries are not lines).
# Both open data before the stream starts, so both get it from line 1.
timeout -k 2 60 cat "$D/data" >"$CRT_TMP/mq/all" &
ALL=$!
MQTT_HOST=127.0.0.1 MQTT_PORT=$PORT timeout -k 2 60 "$PUB" "$D" >"$CRT_TMP/mq/pub.out" 2>"$CRT_TMP/mq/pub.err" &
PUBLISHER=$!
for _ in $(seq 50); do [ "$(stat_of "$D" readers)" = 2 ] && break; sleep 0.1; done
wr "$D/ctl" start
wait_for 10 sh -c "[ \$(wc -l < '$SUBOUT') -ge 60 ]"
ok "messages arrive" test "$(wc -l <"$SUBOUT")" -ge 60

# The broker goes away for 2 s and comes back; the subscriber goes with it
# and comes back 2 s after the broker: what was published meanwhile waits
# in its persistent session.
kill "$SUB"
broker_stop
sleep 2
ok "the broker saved the subscriber's session" test -s "$CRT_TMP/mq/mosquitto.db"
broker_start
ok "the broker is back" kill -0 "$BROKER"
sleep 2
sub_start
sleep 2
wr "$D/ctl" stop
# The publisher drains what crtfs held meanwhile, then ends with the stream.
wait_for 30 sh -c "! kill -0 $PUBLISHER 2>/dev/null"
nok "the publisher ended with the stream" sh -c "kill -0 $PUBLISHER 2>/dev/null"
wait_for 10 sh -c "! kill -0 $ALL 2>/dev/null"
last=$(wc -l <"$CRT_TMP/mq/all")
is "$(tail -n 1 "$CRT_TMP/mq/all" | cut -d' ' -f1)" "$(printf '%010d' "$last")" "the lines crtfs delivered are numbered 1 to $last"
wait_for 15 sh -c "[ \$(sort -u '$SUBOUT' | wc -l) -ge $last ]"
sleep 1

read -r total uniq first lastgot inorder <<<"$(python3 - "$SUBOUT" <<'PY'
import sys
seqs = [int(l.split()[0]) for l in open(sys.argv[1]) if l.strip()]
dedup = []
for s in seqs:
    if not dedup or s != dedup[-1]:
        dedup.append(s)
inorder = int(dedup == list(range(1, len(dedup) + 1)))
print(len(seqs), len(set(seqs)), seqs[0] if seqs else 0, seqs[-1] if seqs else 0, inorder)
PY
)"
diag "crtfs produced $last lines; the subscriber got $total messages, $uniq distinct, $((total - uniq)) duplicate(s)"
if ! is "$uniq" "$last" "every line reached the subscriber across the broker restart (none lost)"; then
    diag "missing: $(python3 - "$SUBOUT" "$last" <<'PY'
import sys
got = {int(l.split()[0]) for l in open(sys.argv[1]) if l.strip()}
miss = [s for s in range(1, int(sys.argv[2]) + 1) if s not in got]
runs, start = [], None
for i, s in enumerate(miss):
    if start is None:
        start = s
    if i + 1 == len(miss) or miss[i + 1] != s + 1:
        runs.append("%d-%d" % (start, s) if s != start else str(start))
        start = None
print(" ".join(runs))
PY
)"
    diag "broker log: $(cat "$CRT_TMP/mq/broker.log")"
    diag "subscriber: $(cat "$CRT_TMP/mq/sub.err")"
    diag "publisher: $(cat "$CRT_TMP/mq/pub.err")"
fi
is "$inorder" 1 "in order (a duplicate only repeats the message before it)"
is "$first" 1 "from the first"
is "$lastgot" "$last" "to the last"
ok "at most one duplicate per restart" test $((total - uniq)) -le 1
nok "the broker had no trouble with its database" grep -q "Error saving" "$CRT_TMP/mq/broker.log"
like "$(cat "$CRT_TMP/mq/pub.err")" "refused message [0-9]+; trying again" "the publisher said it was waiting for the broker"
like "$(cat "$CRT_TMP/mq/pub.err")" "end of stream after $last messages" "and how many it published"
done_testing
