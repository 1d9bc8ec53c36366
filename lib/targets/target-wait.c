/* crtfs - targets that come and go: the `wait` option (the seed's
 * DeviceInterfaceTarget, for paths and sockets).
 *
 * A `wait` target is a decorator (target-private.h) around an inner target
 * of the same spec without `wait`, opened by the opener target.c hands
 * over: this file never opens a target itself.  While the inner target is
 * there, requests go straight to it.  When it is absent (at open, or after
 * a loss), requests are held, in order, and the wrapper watches for it:
 * inotify on the parent directory for paths, a udev monitor on the tty
 * subsystem for usb:/udev: specs (which resolve anew at each open, so a
 * reopen may find another node), plus a retry timer with capped
 * exponential backoff for everything (a socket has nothing to watch).  The
 * stream therefore never ends on a loss: the engine keeps streaming, and
 * the target's return continues it.
 *
 * A loss is a completion the inner target marks fatal (end of file, a read
 * or write error, a hang-up) or, for a path, the removal of the node once
 * what it held has been read.  A regular file is never lost: its end of
 * file ends the stream as without `wait`.  Markers, so a reader can tell a
 * gap from silence: the read that met the loss completes with its cause
 * (-ENODATA for end of file), a removal takes the first held read with
 * -ENOENT, and the return takes the first held read with -EISCONN; all
 * carry no data.  Writes cut by a loss are held and sent again after the
 * return (whole: a partial write is repeated from its start).
 *
 * Threads: like every kind, loop thread only, except opening, which may
 * block and runs on the pool with the opener the caller gave (the daemon's
 * switches to the credentials of the spec's writer), and presence, counters
 * and holds_file, which any thread may ask for (under `lock`; holds_file
 * asks the inner target).  A request's wrapper state is in CrtIo's `outer`
 * fields: no allocation per request.
 *
 * Modem lines, break and line events (crtfs/lines.h) go to the inner target
 * there is now; while there is none they fail with ENODEV and the reason it
 * is absent.  A line watch outlives the inner targets: each new one is
 * watched in turn (on the pool, as it arrives), and only the current one's
 * events are passed on.  Lock order: `watch_mutex`, then an inner target's
 * own watch lock, then `lock`.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>

#include "target-private.h"

#define BACKOFF_MIN_US (100 * 1000)
#define BACKOFF_MAX_US (5 * G_USEC_PER_SEC)
/* A removed node still holding unread bytes is looked at again after this. */
#define DRAIN_CHECK_US (20 * 1000)

/* CrtIo.outer_flags. */
enum {
    IO_HELD = 1 << 0, /* on the wrapper's held (or reclaimed) queue */
};

typedef struct {
    CrtIo *head, *tail;
} Held;

typedef struct {
    CrtTarget *t;
    CrtTargetSpec spec; /* the inner spec: `wait` cleared */
    CrtTargetOpenFn open_fn;
    gpointer open_data;
    GDestroyNotify open_destroy;

    /* Loop thread. */
    Held held;           /* requests waiting for the target, in order */
    Held reclaimed;      /* requests taken back from a lost inner target */
    gboolean reclaiming; /* closing a lost inner target: its -ECANCELED are ours */
    gboolean opening;    /* an open runs on the pool */
    gboolean was_absent; /* the next arrival is a return: mark it */
    gboolean removed;    /* the path went away: retire once drained */
    gboolean regular;    /* the inner target is a regular file: never lost */
    gint64 backoff;      /* the next retry delay, us */
    CrtTimer retry;      /* retry opening; checks a removed node's drain */
    CrtTask open_work;   /* pool */
    CrtTask open_back;   /* loop */
    CrtTarget *opened;   /* open_work's result */
    GError *open_error;  /* open_work's failure */
    int inotify_fd;      /* -1 when the path cannot be watched */
    int watch;           /* inotify watch of the parent directory, -1 */
    char *dir, *name;    /* the path split for inotify */
    GSource *inotify_src;
    CrtUdevMonitor *monitor; /* udev specs: a tty appeared, look again */

    /* Any thread, under `lock`. */
    GMutex lock;
    CrtTarget *inner; /* NULL while absent (written on the loop thread) */
    char *reason;     /* why absent, "" when present */
    guint64 losses, returns;
    CrtTargetCounters base; /* counters of inner targets already gone */

    /* Line events: any thread but the loop's, under `watch_mutex`. */
    GMutex watch_mutex;
    gboolean watching; /* watch each inner target as it arrives */
} Wait;

static void held_append(Held *h, CrtIo *io)
{
    io->outer_next = NULL;
    if (h->tail)
        h->tail->outer_next = io;
    else
        h->head = io;
    h->tail = io;
    io->outer_flags |= IO_HELD;
}

static void held_remove(Held *h, CrtIo *io)
{
    CrtIo *prev = NULL;

    for (CrtIo *x = h->head; x && x != io; x = x->outer_next)
        prev = x;
    if (prev)
        prev->outer_next = io->outer_next;
    else
        h->head = io->outer_next;
    if (h->tail == io)
        h->tail = prev;
    io->outer_next = NULL;
    io->outer_flags &= ~(guint)IO_HELD;
}

static CrtIo *held_pop(Held *h)
{
    CrtIo *io = h->head;

    if (io)
        held_remove(h, io);
    return io;
}

/* Put `front` before everything in `h` (both keep their order). */
static void held_prepend_all(Held *h, Held *front)
{
    if (!front->head)
        return;
    front->tail->outer_next = h->head;
    if (!h->tail)
        h->tail = front->tail;
    h->head = front->head;
    front->head = front->tail = NULL;
}

static gboolean is_absent_errno(int err)
{
    switch (err) {
    case ENOENT:
    case ENODEV:
    case ENXIO:
    case EIO:
    case ENOMEDIUM:
    case EAGAIN:
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENETUNREACH:
    case ENETDOWN:
        return TRUE;
    default:
        return FALSE;
    }
}

static void set_reason(Wait *w, const char *why)
{
    g_autoptr(GDateTime) now = g_date_time_new_now_local();
    g_autofree char *when = g_date_time_format(now, "%F %T");

    g_mutex_lock(&w->lock);
    g_free(w->reason);
    w->reason = g_strdup_printf("waiting since %s: %s", when, why);
    g_mutex_unlock(&w->lock);
}

static void watch_path(Wait *w);

/* ---- opening -------------------------------------------------------- */

static void open_work(CrtTask *task)
{
    Wait *w = G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(Wait, open_work));

    w->open_fn(&w->spec, w->t->loop, &w->opened, &w->open_error, w->open_data);
    crt_loop_post(w->t->loop, &w->open_back);
}

static void start_open(Wait *w)
{
    CrtTarget *t = w->t;

    if (w->opening || w->inner || t->closed)
        return;
    watch_path(w);
    w->opening = TRUE;
    crt_loop_timer_stop(t->loop, &w->retry);
    g_mutex_lock(&t->lock);
    t->running++; /* the last unref waits for the open to come back */
    g_mutex_unlock(&t->lock);
    crt_loop_pool_push(t->loop, &w->open_work);
}

static void schedule_retry(Wait *w)
{
    CrtTarget *t = w->t;

    crt_loop_timer_start(t->loop, &w->retry, g_get_monotonic_time() + w->backoff);
    w->backoff = MIN(w->backoff * 2, BACKOFF_MAX_US);
}

static gboolean inner_is_regular(CrtTarget *inner)
{
    struct stat st;

    return inner->read_fd >= 0 && fstat(inner->read_fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* Complete the first held request that reads (a write would lose its
 * bytes) with `status` and no data: the marker of a loss or a return. */
static void mark(Wait *w, int status)
{
    for (CrtIo *io = w->held.head; io; io = io->outer_next) {
        if (io->type != CRT_REQUEST_WRITE) {
            held_remove(&w->held, io);
            io->fatal = FALSE;
            crt_io_complete(io, status, 0, 0);
            return;
        }
    }
}

static void inner_done(CrtIo *io);
static void check_removed(Wait *w);

static void forward(Wait *w, CrtIo *io)
{
    io->outer_done = io->done;
    io->done = inner_done;
    crt_target_submit(w->inner, io);
}

static void forward_held(Wait *w)
{
    CrtIo *io;

    while (w->inner && (io = held_pop(&w->held)))
        forward(w, io);
}

static void rewatch(Wait *w, CrtTarget *inner);

static void arrived(Wait *w, CrtTarget *inner)
{
    CrtSplit split;

    g_mutex_lock(&w->lock);
    w->inner = inner;
    /* Under w->lock, so a split set meanwhile (wait_set_split) cannot be
     * overtaken by the older one read here. */
    crt_target_get_split(w->t, &split);
    crt_target_set_split(inner, &split);
    g_free(w->reason);
    w->reason = g_strdup("");
    if (w->was_absent)
        w->returns++;
    g_mutex_unlock(&w->lock);
    w->regular = inner_is_regular(inner);
    w->removed = FALSE;
    w->backoff = BACKOFF_MIN_US;
    if (w->was_absent)
        mark(w, -EISCONN);
    w->was_absent = FALSE;
    rewatch(w, inner);
    forward_held(w);
    /* Removed between the open on the pool and now: the watch saw it while
     * nothing was open, so look again (bench/soak found it). */
    if (!w->regular && crt_target_is_stale(inner)) {
        w->removed = TRUE;
        check_removed(w);
    }
}

static void unref_work(CrtTask *task)
{
    crt_target_unref(((CrtTarget **)(task + 1))[0]);
    g_free(task);
}

/* Drop a target from the loop thread: its last unref waits for its pool
 * work, which needs this thread, so it happens on the pool. */
static void unref_later(CrtLoop *loop, CrtTarget *inner)
{
    CrtTask *task = g_malloc0(sizeof(CrtTask) + sizeof(CrtTarget *));

    ((CrtTarget **)(task + 1))[0] = inner;
    task->fn = unref_work;
    crt_loop_pool_push(loop, task);
}

static void open_back(CrtTask *task)
{
    Wait *w = G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(Wait, open_back));
    CrtTarget *t = w->t, *inner = w->opened;
    GError *err = w->open_error;

    w->opened = NULL;
    w->open_error = NULL;
    w->opening = FALSE;
    if (inner && t->closed)
        unref_later(t->loop, inner);
    else if (inner)
        arrived(w, inner);
    else if (!t->closed) {
        set_reason(w, err ? err->message : "cannot open");
        schedule_retry(w);
    }
    g_clear_error(&err);
    g_mutex_lock(&t->lock);
    t->running--;
    g_cond_broadcast(&t->cond);
    g_mutex_unlock(&t->lock);
}

/* ---- losing --------------------------------------------------------- */

static void add_counters(CrtTargetCounters *sum, const CrtTargetCounters *c)
{
    sum->bytes_read += c->bytes_read;
    sum->bytes_written += c->bytes_written;
    sum->overruns += c->overruns;
    sum->framing += c->framing;
    sum->parity += c->parity;
    sum->breaks += c->breaks;
    sum->messages += c->messages;
    sum->messages_cut_size += c->messages_cut_size;
    sum->messages_cut_wait += c->messages_cut_wait;
    sum->has_icount = sum->has_icount || c->has_icount;
}

/* The inner target is gone: take back what it holds (in order, in front of
 * what waits already), drop it and start watching for its return. */
static void lose(Wait *w, const char *why)
{
    CrtTarget *t = w->t, *inner = w->inner;
    CrtTargetCounters c;

    crt_target_get_counters(inner, &c);
    g_mutex_lock(&w->lock);
    w->inner = NULL;
    w->losses++;
    add_counters(&w->base, &c);
    g_mutex_unlock(&w->lock);
    set_reason(w, why);
    w->reclaiming = TRUE;
    crt_target_close(inner);
    w->reclaiming = FALSE;
    held_prepend_all(&w->held, &w->reclaimed);
    unref_later(t->loop, inner);
    w->was_absent = TRUE;
    w->removed = FALSE;
    w->backoff = BACKOFF_MIN_US;
    start_open(w);
}

static void inner_done(CrtIo *io)
{
    CrtTarget *t = io->outer, *from = io->target;
    Wait *w = t->impl;

    io->target = t;
    io->done = io->outer_done;
    if (w->reclaiming && io->status == -ECANCELED) {
        held_append(&w->reclaimed, io); /* taken back, goes again */
        return;
    }
    if (from != w->inner || t->closed || !io->fatal || io->status == -ECANCELED ||
        w->regular) {
        io->done(io);
        return;
    }
    /* A loss.  A cut write goes again after the return; a read is the
     * marker of the loss, with its cause. */
    io->fatal = FALSE;
    if (io->type == CRT_REQUEST_WRITE) {
        held_append(&w->reclaimed, io);
        lose(w, g_strerror(-io->status));
        return;
    }
    lose(w, io->status == -ENODATA ? "end of file" : g_strerror(-io->status));
    io->done(io);
}

/* A removed path is retired once the bytes it still holds have been read
 * (a FIFO keeps its buffer until its last reader closes it). */
static void check_removed(Wait *w)
{
    int pending = 0;

    if (!w->inner || !w->removed)
        return;
    if (w->inner->read_fd >= 0 && ioctl(w->inner->read_fd, FIONREAD, &pending) == 0 &&
        pending > 0) {
        crt_loop_timer_start(w->t->loop, &w->retry,
                             g_get_monotonic_time() + DRAIN_CHECK_US);
        return;
    }
    lose(w, "removed");
    mark(w, -ENOENT);
}

static void retry_fired(CrtTimer *timer)
{
    Wait *w = G_STRUCT_MEMBER_P(timer, -G_STRUCT_OFFSET(Wait, retry));

    if (w->inner)
        check_removed(w);
    else
        start_open(w);
}

/* ---- watching a path -------------------------------------------------- */

static void watch_path(Wait *w)
{
    if (w->inotify_fd < 0 || w->watch >= 0)
        return;
    w->watch = inotify_add_watch(w->inotify_fd, w->dir,
                                 IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE |
                                     IN_MOVED_FROM | IN_ONLYDIR);
}

static gboolean inotify_ready(gint fd, GIOCondition cond, gpointer data)
{
    Wait *w = data;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    gboolean appeared = FALSE, removed = FALSE;
    ssize_t n;

    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;

            if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
                w->watch = -1; /* the directory went: watch again when it is back */
            if (ev->len && strcmp(ev->name, w->name) == 0) {
                if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
                    removed = TRUE;
                if (ev->mask & (IN_CREATE | IN_MOVED_TO | IN_ATTRIB))
                    appeared = TRUE;
            }
            p += sizeof *ev + ev->len;
        }
    }
    if (removed && w->inner && !w->regular) {
        w->removed = TRUE;
        check_removed(w);
    }
    if (appeared && !w->inner) {
        w->backoff = BACKOFF_MIN_US;
        start_open(w);
    }
    return G_SOURCE_CONTINUE;
}

static void setup_inotify(Wait *w, const char *path)
{
    w->inotify_fd = -1;
    w->watch = -1;
    if (w->spec.kind != CRT_TARGET_PATH)
        return;
    w->dir = g_path_get_dirname(path);
    w->name = g_path_get_basename(path);
    w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->inotify_fd < 0)
        return;
    watch_path(w);
    w->inotify_src = g_unix_fd_source_new(w->inotify_fd, G_IO_IN);
    g_source_set_callback(w->inotify_src, G_SOURCE_FUNC(inotify_ready), w, NULL);
}

/* On the loop thread, once the opener's thread has set up everything
 * inotify_ready reads (the call orders those writes before it). */
static void attach_inotify(gpointer data)
{
    Wait *w = data;

    if (w->inotify_src)
        g_source_attach(w->inotify_src, crt_loop_context(w->t->loop));
}

/* ---- modem lines ------------------------------------------------------ */

/* The inner target there is now (a reference), or NULL. */
static CrtTarget *current_inner(Wait *w)
{
    CrtTarget *inner;

    g_mutex_lock(&w->lock);
    inner = w->inner ? crt_target_ref(w->inner) : NULL;
    g_mutex_unlock(&w->lock);
    return inner;
}

static int absent(Wait *w, GError **error)
{
    int r;

    g_mutex_lock(&w->lock);
    r = crt_set_error(error, ENODEV, "%s: the device is absent (%s)", w->t->text,
                      w->reason[0] ? w->reason : "waiting for it");
    g_mutex_unlock(&w->lock);
    return r;
}

static int wait_lines_get(CrtTarget *t, guint *lines, GError **error)
{
    CrtTarget *inner = current_inner(t->impl);
    int r = inner ? crt_target_lines_get(inner, lines, error) : absent(t->impl, error);

    if (inner)
        crt_target_unref(inner);
    return r;
}

static int wait_lines_set(CrtTarget *t, guint mask, guint values, GError **error)
{
    CrtTarget *inner = current_inner(t->impl);
    int r =
        inner ? crt_target_lines_set(inner, mask, values, error) : absent(t->impl, error);

    if (inner)
        crt_target_unref(inner);
    return r;
}

static int wait_send_break(CrtTarget *t, guint ms, GError **error)
{
    CrtTarget *inner = current_inner(t->impl);
    int r = inner ? crt_target_send_break(inner, ms, error) : absent(t->impl, error);

    if (inner)
        crt_target_unref(inner);
    return r;
}

/* An inner target's event, passed on while it is the current one (a lost
 * one's thread runs until its last reference goes). */
static void forward_event(CrtTarget *inner, const CrtLineEvent *ev, gpointer data)
{
    Wait *w = data;
    gboolean current;

    g_mutex_lock(&w->lock);
    current = w->inner == inner;
    g_mutex_unlock(&w->lock);
    if (current)
        crt_target_line_event(w->t, ev);
}

static int wait_watch_lines(CrtTarget *t, GError **error)
{
    Wait *w = t->impl;
    CrtTarget *inner;
    int r = 0;

    g_mutex_lock(&w->watch_mutex);
    inner = current_inner(w);
    if (inner)
        r = crt_target_watch_lines(inner, forward_event, w, NULL, error);
    /* Absent: the watch starts with the target's return. */
    w->watching = r == 0;
    g_mutex_unlock(&w->watch_mutex);
    if (inner)
        crt_target_unref(inner);
    return r;
}

static void wait_unwatch_lines(CrtTarget *t)
{
    Wait *w = t->impl;
    CrtTarget *inner;

    g_mutex_lock(&w->watch_mutex);
    w->watching = FALSE;
    inner = current_inner(w);
    if (inner)
        crt_target_unwatch_lines(inner);
    g_mutex_unlock(&w->watch_mutex);
    if (inner)
        crt_target_unref(inner);
}

typedef struct {
    CrtTask task;
    Wait *w;
    CrtTarget *inner;
} Rewatch;

/* Pool: watch a new inner target if a watch is on (a driver takes up to
 * ~50 ms to refuse TIOCMIWAIT: not on the loop thread). */
static void rewatch_work(CrtTask *task)
{
    Rewatch *rw = (Rewatch *)task;
    Wait *w = rw->w;
    CrtTarget *t = w->t;
    GError *err = NULL;

    g_mutex_lock(&w->watch_mutex);
    g_mutex_lock(&w->lock);
    gboolean current = w->inner == rw->inner;
    g_mutex_unlock(&w->lock);
    if (w->watching && current &&
        crt_target_watch_lines(rw->inner, forward_event, w, NULL, &err) < 0)
        g_message("%s: no line events from it now: %s", t->text, err->message);
    g_mutex_unlock(&w->watch_mutex);
    g_clear_error(&err);
    crt_target_unref(rw->inner);
    g_free(rw);
    g_mutex_lock(&t->lock);
    t->running--;
    g_cond_broadcast(&t->cond);
    g_mutex_unlock(&t->lock);
}

/* Loop thread, as `inner` arrives. */
static void rewatch(Wait *w, CrtTarget *inner)
{
    Rewatch *rw = g_new0(Rewatch, 1);

    rw->task.fn = rewatch_work;
    rw->w = w;
    rw->inner = crt_target_ref(inner);
    g_mutex_lock(&w->t->lock);
    w->t->running++; /* the last unref waits for it */
    g_mutex_unlock(&w->t->lock);
    crt_loop_pool_push(w->t->loop, &rw->task);
}

/* ---- watching for a tty (udev specs) ---------------------------------- */

/* A tty was added or changed: it may be the one the spec matches.  The
 * open resolves the spec anew, so any tty event is worth one try.  The
 * removal of the node the target has open retires it (once drained) like
 * a removed path; a hang-up usually says so first. */
static void tty_event(CrtUdevEvent ev, const char *devnode, gpointer data)
{
    Wait *w = data;

    if (w->t->closed)
        return;
    if (ev == CRT_UDEV_REMOVED && w->inner && w->inner->node && devnode &&
        strcmp(w->inner->node, devnode) == 0) {
        w->removed = TRUE;
        check_removed(w);
    } else if (ev == CRT_UDEV_APPEARED && !w->inner) {
        w->backoff = BACKOFF_MIN_US;
        start_open(w);
    }
}

static void setup_monitor(Wait *w)
{
    if (w->spec.kind == CRT_TARGET_UDEV)
        w->monitor = crt_udev_monitor_new(crt_loop_context(w->t->loop), tty_event, w);
}

/* ---- ops ------------------------------------------------------------ */

static void wait_submit(CrtTarget *t, CrtIo *io)
{
    Wait *w = t->impl;

    io->outer = t;
    io->fatal = FALSE;
    if (t->closed) {
        crt_io_complete(io, -ESHUTDOWN, 0, 0);
        return;
    }
    /* A removed path still being drained keeps reading. */
    if (w->inner && !w->held.head) {
        forward(w, io);
        return;
    }
    held_append(&w->held, io);
    if (!w->inner) {
        watch_path(w);
        if (!w->opening && !w->retry.armed)
            start_open(w);
    }
}

static gboolean wait_cancel(CrtTarget *t, CrtIo *io, int status)
{
    Wait *w = t->impl;

    if (io->outer_flags & IO_HELD) {
        held_remove(&w->held, io);
        crt_io_complete(io, status, 0, 0);
        return TRUE;
    }
    /* At an inner target (maybe a lost one, still finishing an ioctl). */
    return io->target != t && crt_target_cancel(io->target, io, status);
}

static void wait_close(CrtTarget *t)
{
    Wait *w = t->impl;
    CrtIo *io;

    crt_loop_timer_stop(t->loop, &w->retry);
    if (w->inotify_src) {
        g_source_destroy(w->inotify_src);
        g_source_unref(w->inotify_src);
        w->inotify_src = NULL;
    }
    crt_udev_monitor_free(w->monitor);
    w->monitor = NULL;
    while ((io = held_pop(&w->held)))
        crt_io_complete(io, -ECANCELED, 0, 0);
    if (w->inner)
        crt_target_close(w->inner); /* its requests complete -ECANCELED */
}

static void wait_destroy(CrtTarget *t)
{
    Wait *w = t->impl;

    if (w->inner)
        crt_target_unref(w->inner);
    if (w->inotify_fd >= 0)
        close(w->inotify_fd);
    if (w->open_destroy)
        w->open_destroy(w->open_data);
    crt_target_spec_clear(&w->spec);
    g_free(w->dir);
    g_free(w->name);
    g_free(w->reason);
    g_mutex_clear(&w->lock);
    g_mutex_clear(&w->watch_mutex);
    g_free(w);
}

static void wait_kick(CrtTarget *t)
{
    Wait *w = t->impl;

    if (w->inner)
        crt_target_kick(w->inner);
}

static void wait_counters(CrtTarget *t, CrtTargetCounters *c)
{
    Wait *w = t->impl;
    CrtTarget *inner;
    CrtTargetCounters ic = {0};

    g_mutex_lock(&w->lock);
    inner = w->inner ? crt_target_ref(w->inner) : NULL;
    add_counters(c, &w->base);
    c->comes_and_goes = TRUE;
    c->losses = w->losses;
    c->returns = w->returns;
    g_mutex_unlock(&w->lock);
    if (inner) {
        crt_target_get_counters(inner, &ic);
        add_counters(c, &ic);
        crt_target_unref(inner);
    }
}

/* Present while an inner target is open; the reason says since when and
 * why it waits or waited, and how often it was lost and came back. */
static CrtPresence wait_presence(CrtTarget *t, char **reason)
{
    Wait *w = t->impl;
    CrtPresence p;

    g_mutex_lock(&w->lock);
    p = w->inner ? CRT_PRESENCE_PRESENT : CRT_PRESENCE_WAITING;
    if (reason) {
        /* A udev spec's inner target says which node it resolved to. */
        char *node = w->inner ? crt_target_node_text(w->inner) : NULL;
        *reason = g_strdup_printf("%s%s%s (lost %" G_GUINT64_FORMAT ", back %" G_GUINT64_FORMAT
                                  ")",
                                  node ? node : p == CRT_PRESENCE_PRESENT ? "present" : "absent",
                                  w->reason[0] ? ", " : "", w->reason, w->losses,
                                  w->returns);
        g_free(node);
    }
    g_mutex_unlock(&w->lock);
    return p;
}

/* The current inner target's answer; none while absent. */
static gboolean wait_holds_file(CrtTarget *t, const char *path)
{
    Wait *w = t->impl;
    gboolean r;

    g_mutex_lock(&w->lock);
    r = w->inner && crt_target_holds_file(w->inner, path);
    g_mutex_unlock(&w->lock);
    return r;
}

/* The inner target open now frames by the new split; arrived() gives it
 * to the ones opened later.  Lock order: w->lock, then the inner target's
 * split_lock. */
static void wait_set_split(CrtTarget *t, const CrtSplit *split)
{
    Wait *w = t->impl;

    g_mutex_lock(&w->lock);
    if (w->inner)
        crt_target_set_split(w->inner, split);
    g_mutex_unlock(&w->lock);
}

static const CrtTargetOps wait_ops = {
    .name = "wait",
    .submit = wait_submit,
    .cancel = wait_cancel,
    .close = wait_close,
    .destroy = wait_destroy,
    .kick = wait_kick,
    .counters = wait_counters,
    .presence = wait_presence,
    .holds_file = wait_holds_file,
    .lines_get = wait_lines_get,
    .lines_set = wait_lines_set,
    .send_break = wait_send_break,
    .watch_lines = wait_watch_lines,
    .unwatch_lines = wait_unwatch_lines,
    .set_split = wait_set_split,
};

int crt_target_wait_open(const CrtTargetSpec *spec, CrtLoop *loop,
                         CrtTargetOpenFn open_fn, gpointer data, GDestroyNotify destroy,
                         CrtTarget **out, GError **error)
{
    GError *err = NULL;
    CrtTarget *t, *inner = NULL;
    Wait *w;
    int r;

    g_return_val_if_fail(spec != NULL && spec->wait && open_fn != NULL && out != NULL,
                         -EINVAL);
    if (spec->kind != CRT_TARGET_PATH && spec->kind != CRT_TARGET_UNIX &&
        spec->kind != CRT_TARGET_TCP && spec->kind != CRT_TARGET_UDEV &&
        spec->kind != CRT_TARGET_RFC2217) {
        if (destroy)
            destroy(data);
        return crt_set_error(error, EINVAL,
                             "wait applies to paths, usb:, udev: and sockets only");
    }

    w = g_new0(Wait, 1);
    crt_target_spec_copy(&w->spec, spec);
    w->spec.wait = FALSE;
    w->open_fn = open_fn;
    w->open_data = data;
    w->open_destroy = destroy;
    /* Absent is fine (that is what `wait` is for); being refused is not:
     * EACCES and the like are the writer's answer now. */
    r = open_fn(&w->spec, loop, &inner, &err, data);
    if (r < 0 && !is_absent_errno(-r)) {
        g_propagate_error(error, err);
        w->open_destroy = NULL;
        if (destroy)
            destroy(data);
        crt_target_spec_clear(&w->spec);
        g_free(w);
        return r;
    }
    t = crt_target_new_impl(spec, loop, &wait_ops, w);
    w->t = t;
    g_mutex_init(&w->lock);
    g_mutex_init(&w->watch_mutex);
    w->reason = g_strdup("");
    w->open_work.fn = open_work;
    w->open_back.fn = open_back;
    w->retry.fn = retry_fired;
    w->backoff = BACKOFF_MIN_US;
    setup_inotify(w, spec->kind == CRT_TARGET_PATH ? spec->path : "");
    setup_monitor(w);
    if (inner) {
        w->inner = inner;
        w->regular = inner_is_regular(inner);
    } else {
        w->was_absent = TRUE;
        set_reason(w, err ? err->message : g_strerror(-r));
        /* Retries start with the first request (or a watch event). */
    }
    crt_loop_call(t->loop, attach_inotify, w);
    g_clear_error(&err);
    *out = t;
    return 0;
}
