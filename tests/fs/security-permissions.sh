#!/bin/bash
# chmod/chown with a non-root user (allow_other,default_permissions): modes
# and owners are kept and enforced; opening a target uses the writer's
# credentials (a root-only file stays out of reach); exec: targets are
# root's unless -o allow_exec, and then run as the writer.
. "$(dirname "$0")/lib.sh"

U=crtfs-test
if ! id -u "$U" >/dev/null 2>&1; then
    useradd -M -s /usr/sbin/nologin "$U" 2>/dev/null || useradd -M "$U" || {
        echo "1..0 # SKIP cannot create user $U"
        exit 0
    }
fi
UID_U=$(id -u "$U")
# as the user: every client still under timeout
as_user() { t setpriv --reuid="$U" --regid="$U" --clear-groups "$@"; }

chmod 0711 "$CRT_TMP" # the user must reach the mount point
crt_mount -o config="$CRT_EMPTY" -o allow_other,default_permissions || exit 1
D=$MNT/p
mkdir "$D"
ok "root sets a target" t sh -c "echo 'sim:records rate=200' > '$D/target' && echo start > '$D/ctl'"

# data: 0444 by default, readable by the user
ok "the user reads data (0444)" as_user sh -c "head -c 11 '$D/data' >/dev/null"
ok "chmod 0400 data" chmod 0400 "$D/data"
is "$(stat -c %a "$D/data")" 400 "the mode is kept"
nok "the user cannot read data after chmod 0400 (owner root)" as_user sh -c "head -c 11 '$D/data' >/dev/null 2>&1"
ok "chown $U data" chown "$U" "$D/data"
is "$(stat -c %U "$D/data")" "$U" "the owner is kept"
ok "the user reads data once it is theirs" as_user sh -c "head -c 11 '$D/data' >/dev/null"
G=crtfs-test-g
getent group "$G" >/dev/null || groupadd "$G"
GID_G=$(getent group "$G" | cut -d: -f3)
ok "chown root:$G records, chmod 0440" sh -c "chown root:'$G' '$D/records' && chmod 0440 '$D/records'"
nok "outside the group the user cannot read records" as_user sh -c "head -c 1 '$D/records' >/dev/null 2>&1"
ok "in the group the user reads records" t setpriv --reuid="$U" --regid="$U" --groups="$GID_G" sh -c "head -c 1 '$D/records' >/dev/null"

# ctl: 0200 root; refused until granted
nok "the user cannot write ctl" as_user sh -c "echo stop 2>/dev/null > '$D/ctl'" 2>/dev/null
is "$(state_word "$D")" streaming "still streaming"
ok "chown $U ctl" chown "$U" "$D/ctl"
ok "now the user can stop it" as_user sh -c "echo stop > '$D/ctl'"
is "$(state_word "$D")" stopped "stopped by the user"

# the user's chmod/chown
ok "the owner may chmod" as_user chmod 0600 "$D/data"
nok "the user may not chown" as_user chown root "$D/data" 2>/dev/null
nok "the user may not chmod root's file" as_user chmod 0666 "$D/state" 2>/dev/null
nok "the user may not mkdir in the root (0755 root)" as_user mkdir "$MNT/mine" 2>/dev/null
nok "nor rmdir a target" as_user rmdir "$D" 2>/dev/null

# targets open with the writer's credentials
ok "give the user target" chown "$U" "$D/target"
printf 'secret\n' >"$CRT_TMP/secret"
chmod 0600 "$CRT_TMP/secret"
err=$(as_user bash -c "echo '$CRT_TMP/secret' > '$D/target'" 2>&1)
is $? 1 "the user cannot make the daemon open a root-only 0600 file"
like "$err" 'Permission denied' "EACCES"
like "$(state_field "$D" error)" 'secret' "error: names the file"
is "$(state_field "$D" target)" "sim:records rate=200" "the target is unchanged"
err=$(as_user bash -c "echo 'unix:/run/crtfs-no-such.sock' > '$D/target'" 2>&1)
isnt "$(state_field "$D" target)" "unix:/run/crtfs-no-such.sock" "a failed open changes nothing"
printf 'mine\n' >"$CRT_TMP/mine"
chown "$U" "$CRT_TMP/mine"
chmod 0600 "$CRT_TMP/mine"
ok "drop the records kept from before" crt_drain "$D"
ok "a file the user owns (0600) is fine" as_user sh -c "echo '$CRT_TMP/mine' > '$D/target'"
ok "and root can start it" t sh -c "echo start > '$D/ctl'"
chmod 0644 "$D/data"
is "$(t cat "$D/data")" mine "data has the user's file"
ok "root can open the root-only file" t sh -c "echo '$CRT_TMP/secret' > '$D/target'"

# `wait` targets reopen as the writer too, also long after the write
err=$(as_user bash -c "echo '$CRT_TMP/secret wait' > '$D/target'" 2>&1)
is $? 1 "wait does not turn EACCES into waiting"
like "$err" 'Permission denied' "EACCES"
ok "the user sets an absent path with wait" \
    as_user sh -c "echo '$CRT_TMP/later wait' > '$D/target'"
ok "root starts it" t sh -c "echo start > '$D/ctl'"
like "$(state_field "$D" presence)" '^absent' "absent"
printf 'root only\n' >"$CRT_TMP/later.tmp"
chmod 0600 "$CRT_TMP/later.tmp"
mv "$CRT_TMP/later.tmp" "$CRT_TMP/later"
sleep 0.5
like "$(state_field "$D" presence)" '^absent.*Permission denied' \
    "a root-only file appearing later is not opened for the user"
chown "$U" "$CRT_TMP/later"
touch "$CRT_TMP/later" # IN_ATTRIB came with chown; this is belt and braces
ok "once the user may read it, it is opened" \
    wait_for 10 sh -c "sed -n 's/^presence: //p' '$D/state' | grep -q ^present"
ok "stop" t sh -c "echo stop-wait > '$D/ctl'"

# exec: refused to users without -o allow_exec
err=$(as_user bash -c "echo 'exec:id -u' > '$D/target'" 2>&1)
is $? 1 "exec: is refused to the user"
like "$(state_field "$D" error)" 'exec' "error: says exec: targets are root's"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"

# with -o allow_exec the command runs as the writer
crt_mount -o config="$CRT_EMPTY" -o allow_other,default_permissions,allow_exec || exit 1
D=$MNT/e
mkdir "$D"
chown "$U" "$D/target"
ok "allow_exec: the user sets exec:id -u" as_user sh -c "echo 'exec:id -u' > '$D/target'"
ok "start" t sh -c "echo start > '$D/ctl'"
is "$(t cat "$D/data")" "$UID_U" "the command ran as the writer ($UID_U)"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"

# owner, group and mode keys of the configuration file: a group may read a
# stream, nobody else, and nobody in the group may control it
G=crtfs-test-g
getent group "$G" >/dev/null || groupadd "$G" || fail "groupadd $G"
GID_G=$(getent group "$G" | cut -d: -f3)
as_member() { t setpriv --reuid="$U" --regid="$U" --groups="$GID_G" "$@"; }
printf '[grp]\ntarget=sim:records rate=50\nautostart=true\ngroup=%s\nmode=0640\n' "$G" \
    >"$CRT_TMP/grp.conf"
crt_mount -o config="$CRT_TMP/grp.conf" -o allow_other,default_permissions || exit 1
D=$MNT/grp
is "$(stat -c '%G %a' "$D/data")" "$G 440" "data: group $G, mode 0440 (the read bits of 0640)"
is "$(stat -c '%G %a' "$D/ctl")" "$G 200" "ctl: group $G, still 0200"
ok "a member of $G reads data" as_member sh -c "head -c 11 '$D/data' >/dev/null"
nok "a member cannot write ctl" as_member sh -c "echo stop > '$D/ctl'" 2>/dev/null
nok "a user outside $G cannot read data" as_user sh -c "head -c 11 '$D/data' >/dev/null" 2>/dev/null
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
printf '[bad]\ngroup=crtfs-no-such-group\n' >"$CRT_TMP/bad.conf"
err=$(t "$CRTFS" -f -o config="$CRT_TMP/bad.conf" "$CRT_TMP" 2>&1)
is $? 1 "an unknown group fails the mount"
like "$err" 'no group "crtfs-no-such-group"' "and says why"
done_testing
