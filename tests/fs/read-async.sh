#!/bin/bash
# Event-driven runtimes, the man page's patterns: Python's asyncio waits on
# an O_NONBLOCK descriptor with loop.add_reader (FUSE poll works with
# epoll), and Node reads `cat data` through a pipe from child_process, so
# no libuv pool thread blocks: six followed targets and fs.stat still
# answers at once.
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1
for i in 1 2 3 4 5 6; do
    mkdir "$MNT/t$i"
    t sh -c "echo 'sim:records size=32 rate=50' > '$MNT/t$i/target'; echo start > '$MNT/t$i/ctl'" ||
        fail "t$i streams"
done

out=$(t python3 - "$MNT" <<'PY'
import asyncio, os, sys

async def follow(path, want):
    loop = asyncio.get_running_loop()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    got, ready = b"", asyncio.Event()
    loop.add_reader(fd, ready.set)
    try:
        while got.count(b"\n") < want:
            await ready.wait()
            ready.clear()
            try:
                got += os.read(fd, 65536)
            except BlockingIOError:
                pass
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return got.count(b"\n")

async def main(mount):
    counts = await asyncio.wait_for(asyncio.gather(
        *(follow(os.path.join(mount, "t%d" % i, "data"), 10) for i in range(1, 7))), 20)
    print(" ".join(str(c) for c in counts))

asyncio.run(main(sys.argv[1]))
PY
)
st=$?
is "$st" 0 "asyncio: add_reader on six data files"
like "$out" '^([0-9]+ ){5}[0-9]+$' "every follower got its records ($out)"

out=$(t node - "$MNT" <<'JS'
const { spawn } = require("child_process");
const fs = require("fs");
const path = require("path");
const mount = process.argv[2];
let done = 0, lines = 0, pending = 2;
const end = () => { if (--pending === 0) process.exit(0); };
const kids = [];
for (let i = 1; i <= 6; i++) {
  const cat = spawn("cat", [path.join(mount, "t" + i, "data")]);
  kids.push(cat);
  let n = 0;
  cat.stdout.on("data", (b) => {
    if (n >= 10) return;
    for (const c of b) if (c === 10) n++;
    if (n >= 10) { lines += n; if (++done === 6) finish(); }
  });
}
// While six readers wait, the libuv pool is free: fs.stat answers.
const t0 = Date.now();
fs.stat(path.join(mount, "version"), (err) => {
  console.log("stat " + (err ? err.code : "ok") + " " + (Date.now() - t0 < 2000 ? "fast" : "slow"));
  end();
});
function finish() {
  console.log("lines " + (lines >= 60 ? "all" : lines));
  for (const k of kids) k.kill();
  end();
}
setTimeout(() => { console.log("timeout"); process.exit(1); }, 20000);
JS
)
is "$?" 0 "node: six targets through child_process cat"
like "$out" 'stat ok fast' "fs.stat answers at once while they wait"
like "$out" 'lines all' "every reader got its records"

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
