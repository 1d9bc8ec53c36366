/* crtfs daemon - the FUSE session's request threads.
 *
 * A fixed set of threads, each blocked in read(2) on the device, so the
 * kernel wakes one thread per request (polling the one descriptor from
 * every thread woke them all for each).  One receiving thread that served
 * stream reads itself was tried (bench/RESULTS-perf.md): faster when the
 * scheduler keeps it on the reader's CPU, half as fast when it does not
 * (then each read wakes it on the other CPU), as libfuse's own
 * single-threaded loop; two receivers measured the same as eight.  libfuse 3.14's own
 * loops do not return for fuse_session_exit; these return when crt_session_stop()
 * interrupts them (SIGUSR1), or when the kernel ends the session (an
 * unmount: ENODEV).  Threads: start and stop from the main thread; the
 * queries from any. */
#ifndef CRTFS_SESSION_H
#define CRTFS_SESSION_H

#include <fuse_lowlevel.h>
#include <glib.h>

typedef struct CrtSession CrtSession;

/* Start serving `se` (mounted).  NULL with errno when the threads' wake-up
 * descriptor cannot be had. */
CrtSession *crt_session_start(struct fuse_session *se);
/* Readable once the kernel has ended the session (poll it). */
int crt_session_exit_fd(CrtSession *s);
/* Whether the kernel has ended the session: nobody is left to serve. */
gboolean crt_session_ended(CrtSession *s);
/* Make every request thread return, join them and free. */
void crt_session_stop(CrtSession *s);

#endif
