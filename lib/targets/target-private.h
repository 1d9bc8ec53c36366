/* crtfs - the ops contract: what target kinds implement and what the engine
 * hands them.  The one header of lib/targets/ that the rest of the library
 * (the engine) includes.
 *
 * A request in flight at a target is a CrtIo, embedded in the engine's slot
 * or single-request structure (no allocation per request).  The engine calls
 * a kind's submit/cancel/close/kick on the loop thread only, so a kind needs
 * no lock for its queues; a kind completes every submitted CrtIo exactly
 * once, on the loop thread, by crt_io_complete(), also when it is cancelled
 * (with the status cancel gave) or closed (-ECANCELED).  Opening runs on the
 * caller's thread and may block; counters, stale, presence and holds_file may
 * be asked from any thread.
 *
 * A decorator is a target whose ops hand requests on to an inner target of
 * a plain kind (the `wait` wrapper, target-wait.c): it keeps its own
 * per-request state in CrtIo's `outer` fields, since the inner kind uses the
 * others, and answers the any-thread questions by asking its inner target.
 * target.c decides, once per open, whether a spec is opened plain or
 * wrapped; a decorator opens its inner targets through the opener it was
 * given, never through crt_target_open().
 */
#ifndef CRTFS_TARGET_PRIVATE_H
#define CRTFS_TARGET_PRIVATE_H

#include <crtfs/error.h>
#include <crtfs/engine.h>
#include <crtfs/lines.h>
#include <crtfs/target.h>

typedef struct CrtIo CrtIo;
typedef void (*CrtIoDoneFn)(CrtIo *io);

/* Where a CrtIo is in a target (target-private; 0 when not at a target). */
enum {
    CRT_IO_IDLE = 0,
    CRT_IO_QUEUED,  /* waiting in a kind's queue: cancel takes it back */
    CRT_IO_RUNNING, /* on a worker thread or past the point of no return */
};

struct CrtIo {
    /* Set by the submitter. */
    CrtRequestType type;
    guint32 ioctl_code;
    const void *in;
    size_t in_len;
    void *out;
    size_t out_cap;
    CrtIoDoneFn done; /* loop thread, exactly once per submit */
    /* A read may come with out == NULL and out_cap > 0: the target calls
     * bind (loop thread) right before it fills the request, and bind
     * attaches the output buffer, or returns FALSE when none is free; the
     * target then reads nothing until crt_target_kick().  Binding late keeps
     * the buffer just returned by the consumer in use, so a stream cycles
     * through one cache-hot buffer instead of one per request. */
    gboolean (*bind)(CrtIo *io);
    /* A transaction's end conditions (crtfs/engine.h), NULL for the first
     * bytes; `got` is the response, or a framed streaming read's message,
     * read so far (the kind's). */
    const CrtSendEnd *end;
    size_t got;

    /* Results, written by the target before done(). */
    int status;       /* 0 or -errno; -ENODATA means end of stream */
    size_t bytes_in;  /* bytes written to the target */
    size_t bytes_out; /* bytes placed in `out` */
    gboolean fatal;   /* the target cannot produce more: streaming stops */

    /* Target-private bookkeeping. */
    CrtTarget *target;
    CrtIo *next, *prev;   /* the kind's queue */
    CrtIo *rnext, *rprev; /* second queue (transactions: read side) */
    int tstate;
    guint flags;     /* the kind's own flags */
    size_t progress; /* bytes of a partial write so far */
    CrtTimer timer;  /* the kind's own timer (sim delays) */
    CrtTask work;    /* blocking work on the pool */
    CrtTask back;    /* return from the pool to the loop */

    /* A decorator's bookkeeping, apart from the inner kind's above (one
     * level of decoration; crt_io_complete leaves these alone). */
    CrtTarget *outer;       /* the decorator the request was submitted to */
    CrtIoDoneFn outer_done; /* the submitter's done while at the inner target */
    CrtIo *outer_next;      /* the decorator's queues */
    guint outer_flags;      /* the decorator's own flags */
};

/* Fill status/bytes and call io->done.  Loop thread. */
void crt_io_complete(CrtIo *io, int status, size_t bytes_in, size_t bytes_out);

typedef struct {
    const char *name;
    /* Open what the spec names; caller's thread; may block.  `creds` (NULL:
     * the caller) are whom a command the kind runs runs as (exec); kinds
     * that run nothing ignore them.  On failure the kind has cleaned up
     * after itself: neither close nor destroy is called. */
    int (*open)(CrtTarget *t, const CrtTargetSpec *spec, const CrtTargetCreds *creds,
                GError **error);
    /* Start a request.  Loop thread.  It may complete the request before it
     * returns: done() is reentrancy-safe in the engine. */
    void (*submit)(CrtTarget *t, CrtIo *io);
    /* Take back a queued request and complete it with `status`; TRUE if it
     * did, FALSE if the request is past cancelling (it completes on its
     * own).  Loop thread. */
    gboolean (*cancel)(CrtTarget *t, CrtIo *io, int status);
    /* Complete every queued request with -ECANCELED and stop watching the
     * descriptors.  Requests running on a worker complete when they
     * return.  Loop thread. */
    void (*close)(CrtTarget *t);
    /* Free the kind's state: close descriptors, restore termios, reap a
     * child.  Called once, from the last unref, after close. */
    void (*destroy)(CrtTarget *t);
    /* A failed bind may succeed now: try the head read again.  Loop thread. */
    void (*kick)(CrtTarget *t);
    /* Kind-specific counters (tty icount), added to `c`; may be NULL.  Any
     * thread. */
    void (*counters)(CrtTarget *t, CrtTargetCounters *c);
    /* Whether what the spec names is no longer what is open (a path
     * replaced or removed); may be NULL (never).  Any thread. */
    gboolean (*stale)(CrtTarget *t);
    /* Whether the target is there now and, when `reason` is not NULL, what
     * to say in `presence:` (g_free; NULL for nothing); may be NULL (always
     * there, nothing to say).  *reason is NULL on entry.  Any thread. */
    CrtPresence (*presence)(CrtTarget *t, char **reason);
    /* Whether the file `path` names is the one open now; may be NULL: the
     * target's own descriptors are compared (crt_fd_names_path).  Any
     * thread. */
    gboolean (*holds_file)(CrtTarget *t, const char *path);

    /* Modem lines, break and line events (crtfs/lines.h); each may be NULL:
     * the kind has none, and target-lines.c answers -ENOTTY in words.  Not
     * the loop thread; may block briefly (a break for its duration). */
    int (*lines_get)(CrtTarget *t, guint *lines, GError **error);
    int (*lines_set)(CrtTarget *t, guint mask, guint values, GError **error);
    int (*send_break)(CrtTarget *t, guint ms, GError **error);
    /* Start reporting events through crt_target_line_event(), from a
     * thread of the kind's own; unwatch stops it, and when it returns no
     * event is being or will be reported.  close() is preceded by unwatch
     * when a watch is on. */
    int (*watch_lines)(CrtTarget *t, GError **error);
    void (*unwatch_lines)(CrtTarget *t);
    /* A split was set on the target (crt_target_set_split, stored in
     * t->split already): a decorator passes it to its inner target; may be
     * NULL.  Any thread. */
    void (*set_split)(CrtTarget *t, const CrtSplit *split);

    /* crt_target_line_inject (the simulator only). */
    int (*line_inject)(CrtTarget *t, CrtLineEventKind kind, guint count, GError **error);
} CrtTargetOps;

struct CrtTarget {
    const CrtTargetOps *ops;
    CrtLoop *loop;
    gint ref;
    CrtTargetKind kind;
    char *text;
    gpointer impl;           /* the kind's state */
    int read_fd, write_fd;   /* -1 when none (sim) */
    struct CrtFdDriver *fdd; /* the shared fd driver's state (target-fd.c) */
    gboolean closed;         /* close() ran (loop thread) */
    gint running;            /* CrtIo on workers (atomic); destroy waits */
    GMutex lock;             /* guards `running` waits and `cond` */
    GCond cond;
    guint64 bytes_read;    /* atomic */
    guint64 bytes_written; /* atomic */

    /* Message framing: the split set now, guarded by `split_lock` (the fd
     * driver copies it at each message's start); `split_framed` mirrors
     * split.mode != NONE (atomic) so unframed reads take no lock, and
     * `split_gen` tells a read still waiting for its first byte that a new
     * split came.  The line
     * the idle gap in characters is timed by: set by the kind's open before
     * the target is shared, read-only after (0: not a tty). */
    GMutex split_lock;
    CrtSplit split;
    gint split_framed;
    gint split_gen; /* atomic: bumped by every set, after `split` */
    guint line_baud;
    guint line_char_bits;
    guint64 messages;          /* atomic */
    guint64 messages_cut_size; /* atomic */
    guint64 messages_cut_wait; /* atomic */

    /* The line-event watcher (target-lines.c); `watch_lock` is held while
     * it runs, so unwatch waits for a call in progress. */
    GMutex watch_lock;
    CrtLineEventFn watch_fn;
    gpointer watch_data;
    GDestroyNotify watch_destroy;
    gboolean watching; /* the kind's watch_lines succeeded */

    /* A udev spec's target (usb:, udev:): the node it resolved to and the
     * identity that matched it (crt_target_udev_identity), for presence;
     * NULL otherwise.  Set at open, then read-only. */
    char *node;
    char *identity;
};

/* A kind reports one line event to the watcher, if any (target-lines.c).
 * From the kind's event thread; never the loop thread while it holds a
 * queue it also takes in the watcher's path. */
void crt_target_line_event(CrtTarget *t, const CrtLineEvent *ev);
/* Stop a watch before the target closes (target.c's close path). */
void crt_target_lines_release(CrtTarget *t);

/* A queue of line events and the thread that hands them to the target's
 * watcher (crt_target_line_event), one at a time, in order: for kinds that
 * see events on the loop thread or under their own locks (sim:uart,
 * rfc2217), where the watcher must not run.  Its lock is a leaf: post may
 * be called under the kind's locks.  target-lines.c. */
typedef struct {
    CrtTarget *t;
    GMutex lock;
    GCond wake;
    GQueue queue; /* CrtLineEvent *, oldest first */
    gboolean on, stopping;
    GThread *thread;
} CrtLineEvents;

void crt_line_events_init(CrtLineEvents *q, CrtTarget *t);
/* After stop. */
void crt_line_events_clear(CrtLineEvents *q);
/* Start the thread (once; a second start while on does nothing). */
void crt_line_events_start(CrtLineEvents *q, const char *thread_name);
/* Hand on what is queued, end the thread and wait for it; posts after it
 * are dropped.  Not from the event thread. */
void crt_line_events_stop(CrtLineEvents *q);
/* Queue one event, timed now; dropped unless started.  Any thread. */
void crt_line_events_post(CrtLineEvents *q, CrtLineEventKind kind, CrtLine line,
                          gboolean up, guint64 count);

/* Per-kind ops tables. */
extern const CrtTargetOps crt_target_path_ops;
extern const CrtTargetOps crt_target_unix_ops;
extern const CrtTargetOps crt_target_tcp_ops;
extern const CrtTargetOps crt_target_rfc2217_ops;
extern const CrtTargetOps crt_target_exec_ops;
extern const CrtTargetOps crt_target_sim_ops;

/* The shared driver for descriptor-based kinds (target-fd.c).  A kind's open
 * sets up its descriptors and calls crt_fd_attach(); its ops table uses
 * crt_fd_submit/cancel/close and its destroy calls crt_fd_detach() before
 * closing the descriptors.  Reads and writes are non-blocking on the loop
 * thread, in submission order; ioctls run on the pool. */
void crt_fd_attach(CrtTarget *t, int read_fd, int write_fd);
void crt_fd_submit(CrtTarget *t, CrtIo *io);
gboolean crt_fd_cancel(CrtTarget *t, CrtIo *io, int status);
void crt_fd_close(CrtTarget *t);
void crt_fd_kick(CrtTarget *t);
void crt_fd_detach(CrtTarget *t);
/* Pace writes: one byte, then `us` microseconds, before the next (the
 * spec's chardelay); the loop's timers wait, never the loop thread.  After
 * attach, before the first request (target.c's open does it). */
void crt_fd_set_chardelay(CrtTarget *t, guint us);

/* Connect to HOST:PORT (every address it resolves to, each within a
 * timeout); 0 and *fd (non-blocking, close-on-exec, TCP_NODELAY) or -errno
 * with `error` naming the peer.  Blocks; caller's thread (target-socket.c). */
int crt_tcp_connect(const char *host, guint16 port, int *fd, GError **error);
/* "HOST:PORT", an IPv6 address in brackets (g_free). */
char *crt_tcp_name(const char *host, guint16 port);

/* Set a descriptor O_NONBLOCK and FD_CLOEXEC; 0 or -errno. */
int crt_fd_set_nonblock(int fd);
/* Whether `path` names the file open on `fd` now (the same device and
 * inode); FALSE for -1 or a path that is not there. */
gboolean crt_fd_names_path(int fd, const char *path);

/* A target of `ops` with state `impl`, for kinds that are not opened by
 * ops->open (a decorator).  target.c. */
CrtTarget *crt_target_new_impl(const CrtTargetSpec *spec, CrtLoop *loop,
                               const CrtTargetOps *ops, gpointer impl);

/* The `wait` decorator (target-wait.c): a target for `spec` (which has
 * `wait`) that stays for good around inner targets of the same spec without
 * `wait`, which `open_fn(..., data)` opens: once here on the caller's
 * thread, then on the pool whenever the inner one is absent or lost.
 * `destroy(data)` runs when the target no longer needs `data` (also on
 * failure).  The semantics are crt_target_open_full()'s; target.c's open
 * path is the only caller. */
int crt_target_wait_open(const CrtTargetSpec *spec, CrtLoop *loop,
                         CrtTargetOpenFn open_fn, gpointer data, GDestroyNotify destroy,
                         CrtTarget **out, GError **error);

/* Identity resolution (target-udev.c).  Resolve a CRT_TARGET_UDEV spec
 * to the one tty node it matches: 0 with *node (g_free) and its device
 * number, -ENOENT when none matches, -ENOTUNIQ (naming them) when several
 * do.  Any thread; reads sysfs through a libudev context of its own. */
int crt_target_udev_resolve(const CrtTargetSpec *spec, char **node, dev_t *devnum,
                            GError **error);
/* "present (/dev/ttyUSB0, matched usb:0403:6001)" for a target opened
 * from a udev spec, NULL for others (g_free).  Any thread. */
char *crt_target_node_text(CrtTarget *target);
/* "usb:0403:6001 serial=A12345": what a udev spec asks for (g_free). */
char *crt_target_udev_identity(const CrtTargetSpec *spec);

/* Calls fn on the loop thread of `ctx` for each tty device that is added
 * or changes (APPEARED) or is removed (REMOVED), with its node (NULL when
 * it has none): udevd's events when it runs, else the kernel's.  NULL when
 * netlink cannot be had; the caller's retries then have to do. */
typedef enum { CRT_UDEV_OTHER = 0, CRT_UDEV_APPEARED, CRT_UDEV_REMOVED } CrtUdevEvent;
typedef void (*CrtUdevMonitorFn)(CrtUdevEvent ev, const char *devnode, gpointer data);
typedef struct CrtUdevMonitor CrtUdevMonitor;
CrtUdevMonitor *crt_udev_monitor_new(GMainContext *ctx, CrtUdevMonitorFn fn, gpointer data);
/* On the loop thread of `ctx`, or after it stopped. */
void crt_udev_monitor_free(CrtUdevMonitor *m);

/* Engine-facing calls (loop thread): submit, cancel, close. */
void crt_target_submit(CrtTarget *t, CrtIo *io);
gboolean crt_target_cancel(CrtTarget *t, CrtIo *io, int status);
void crt_target_close(CrtTarget *t);
void crt_target_kick(CrtTarget *t);

#endif
