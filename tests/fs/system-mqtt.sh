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
timeout -k 2 60 mosquitto_sub -h 127.0.0.1 -p "$PORT" -c -i crtfs-test-sub -q 1 -t crtfs/gps >"$SUBOUT" 2>"$CRT_TMP/mq/sub.err" &
SUB=$!
sleep 1 # the subscription is made

crt_mount -o config="$CRT_EMPTY"
D=$MNT/gps
mkdir "$D"
# Numbered lines at 60 a second: "0000000001 crtfs sim record ...".
wr "$D/target" "sim:records rate=60 size=40"
is $? 0 "the target is a line source"
wr "$D/ctl" start
MQTT_HOST=127.0.0.1 MQTT_PORT=$PORT timeout -k 2 60 "$PUB" "$D" >"$CRT_TMP/mq/pub.out" 2>"$CRT_TMP/mq/pub.err" &
PUBLISHER=$!
wait_for 10 sh -c "[ \$(wc -l < '$SUBOUT') -ge 60 ]"
ok "messages arrive" test "$(wc -l <"$SUBOUT")" -ge 60

# The broker goes away for 2 s and comes back.
broker_stop
sleep 2
broker_start
ok "the broker is back" kill -0 "$BROKER"
sleep 2
wr "$D/ctl" stop
# The publisher drains what crtfs held meanwhile, then ends with the stream.
wait_for 30 sh -c "! kill -0 $PUBLISHER 2>/dev/null"
nok "the publisher ended with the stream" sh -c "kill -0 $PUBLISHER 2>/dev/null"
last=$(stat_of "$D" last_seq)
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
is "$uniq" "$last" "every line reached the subscriber across the broker restart (none lost)"
is "$inorder" 1 "in order (a duplicate only repeats the message before it)"
is "$first" 1 "from the first"
is "$lastgot" "$last" "to the last"
ok "at most one duplicate per restart" test $((total - uniq)) -le 1
like "$(cat "$CRT_TMP/mq/pub.err")" "refused message [0-9]+; trying again" "the publisher said it was waiting for the broker"
like "$(cat "$CRT_TMP/mq/pub.err")" "end of stream after $last messages" "and how many it published"
done_testing
