/* crtfs - UUCP lock files (/var/lock/LCK..ttyUSB0), the convention of
 * ser2net, minicom, cu and pyserial's tools, for programs that neither
 * flock(2) a tty nor honour TIOCEXCL (root ignores it).
 *
 * The file holds the owner's pid as ten ASCII digits and a newline (the
 * HDB format).  A lock whose pid is gone is stale and removed.  No lock
 * directory (or one we may not write): no UUCP lock, nothing fails.
 * Threads: any; the caller serialises opens of one path. */
#ifndef CRTFS_UUCP_LOCK_H
#define CRTFS_UUCP_LOCK_H

#include <glib.h>

/* The directory, as the Filesystem Hierarchy Standard has it. */
#define CRT_UUCP_LOCK_DIR "/var/lock"

/* Take the locks of the device `path`: the name as given (/dev/ttyUSB0 ->
 * LCK..ttyUSB0; a path outside /dev flattened, /tmp/ttyA ->
 * LCK.._tmp_ttyA, as ser2net names it) and, for a symlink such as a by-id
 * name, the real device's too.  0 with *locks the files taken (g_strfreev;
 * NULL or empty when there is nowhere to lock); -EBUSY with the holder
 * named in `error` when another live process holds one (none is kept
 * then). */
int crt_uucp_lock(const char *path, char ***locks, GError **error);
/* The same with the lock files in `dir` (the tests' own directory). */
int crt_uucp_lock_in(const char *dir, const char *path, char ***locks, GError **error);
/* Remove the locks crt_uucp_lock took (those that still hold our pid). */
void crt_uucp_unlock(char **locks);

#endif
