/* crtfs daemon - the FUSE session's request threads.
 *
 * A fixed set of threads, and one of them at a time (the receiver) blocked
 * in read(2) on the device: a request the `quick` test passes is served by
 * the receiver itself, which then reads the next, so a stream of quick
 * requests keeps waking the one thread that served the last (with every
 * thread in read(2), the kernel wakes them in turn, one sleeping thread
 * per request, often on the other CPU: a 64-byte read cost twice as much).
 * Before any other request is served, the receiving role passes to a
 * waiting thread, so a request that blocks holds up nothing else.  Polling
 * the one descriptor from every thread woke them all for each request.  libfuse 3.14's
 * own loops do not return for fuse_session_exit; these return when crt_session_stop()
 * interrupts them (SIGUSR1), or when the kernel ends the session (an
 * unmount: ENODEV).  Threads: start and stop from the main thread; the
 * queries from any. */
#ifndef CRTFS_SESSION_H
#define CRTFS_SESSION_H

#include <fuse_lowlevel.h>
#include <glib.h>

typedef struct CrtSession CrtSession;

/* Whether the request in `buf` (as received) is answered without blocking
 * or long work, so the receiving thread may serve it itself. */
typedef gboolean (*CrtSessionQuick)(const struct fuse_buf *buf);

/* Start serving `se` (mounted); `quick` may be NULL (every request is
 * served while another thread receives).  NULL with errno when the
 * threads' wake-up descriptor cannot be had. */
CrtSession *crt_session_start(struct fuse_session *se, CrtSessionQuick quick);
/* From a request handler that found its quick request takes long after all
 * (a large reply to copy): another thread receives from now on.  A no-op
 * on any other thread. */
void crt_session_yield(void);
/* Readable once the kernel has ended the session (poll it). */
int crt_session_exit_fd(CrtSession *s);
/* Whether the kernel has ended the session: nobody is left to serve. */
gboolean crt_session_ended(CrtSession *s);
/* Make every request thread return, join them and free. */
void crt_session_stop(CrtSession *s);

#endif
