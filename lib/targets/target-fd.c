/* crtfs - the shared driver of descriptor-based targets.
 *
 * Reads and writes are non-blocking and done on the loop thread, in the
 * order requests were submitted: the head of the read queue receives the next
 * bytes the descriptor yields, so streamed buffers come out in the order the
 * target produced them.  A transaction (internal-ioctl) is queued on both
 * sides: its write goes out in order with other writes, and its read side
 * stands in the read queue ahead of every streaming read from the moment it
 * is submitted, so the response goes to the transaction and no stream byte is
 * taken by it.  A transaction with end conditions (CrtSendEnd) reads until
 * they hold; what it read past its end is pushed back for the stream: the
 * next streaming read gets it before anything new.  Ioctls may block, so
 * they run on the loop's worker pool.
 *
 * With a split set (crt_target_set_split), a streaming read is a message:
 * the first streaming read in the queue keeps reading into its buffer until
 * the framer (framer.c) says the message ended (a delimiter, the length),
 * the idle gap passed after its last bytes, it reached the maximum size, or
 * max_wait passed since its first byte.  Bytes read past its end are pushed
 * back, and the pushback goes through the framer like new bytes, so one
 * read(2) may yield several messages.  A transaction submitted meanwhile
 * still goes ahead of it: the message waits, with what it holds, and goes on
 * after the response (its timers keep running).  The end of the stream
 * completes a partial message with its bytes, and the next read with the
 * end.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "framer.h"
#include "target-private.h"

/* Reads per dispatch before other sources get a turn. */
#define READ_BUDGET 64
/* Bytes of the pushback a framed message takes at a time. */
#define PUSHBACK_STEP 512

/* CrtIo.flags for this driver. */
enum {
    IO_IN_READQ = 1 << 0,
    IO_IN_WRITEQ = 1 << 1,
    IO_TXN = 1 << 2,
};

typedef struct CrtFdDriver {
    GSource base;
    CrtTarget *t;
    gpointer rtag, wtag;      /* wtag NULL when both sides share one fd */
    CrtIo *rq_head, *rq_tail; /* reads and transactions' read sides */
    CrtIo *wq_head, *wq_tail; /* writes and transactions' write sides */
    gboolean stalled;         /* EOF or a read error: wait for a new stream */
    gboolean bind_blocked;    /* no output buffer: wait for crt_fd_kick */
    GIOCondition rev, wev;    /* events watched now */
    GByteArray *pushback;     /* stream bytes read past a transaction's or a
                               * message's end, from pb_off on */
    size_t pb_off;            /* taken from the front: consumed without a
                               * memmove per message */
    /* Message framing: the streaming read a message accumulates in (its
     * `got` is the message so far), NULL between messages. */
    CrtIo *msg;
    CrtFramer framer;
    guint msg_gen;      /* t->split_gen when the message began */
    gint64 msg_first;   /* monotonic us of the message's first byte, 0: none yet */
    gint64 msg_last;    /* and of its last bytes */
    gint64 idle_us;     /* the idle gap, 0 unless split=idle */
    gint64 wait_us;     /* max_wait */
    CrtTimer msg_timer; /* the idle gap or max_wait, whichever is first */
    int pending_end;    /* the end of stream that met a partial message: the
                         * next streaming read reports it; 0 none */
    guint chardelay_us;       /* write pacing: one byte, then this long (0: none) */
    CrtTimer pace;            /* armed while the next byte waits */
    gboolean in_reads;  /* do_reads runs (a read submitted meanwhile is its) */
    CrtTask more;       /* do_reads again: held bytes outlasted its budget */
} FdDriver;

int crt_fd_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

gboolean crt_fd_names_path(int fd, const char *path)
{
    struct stat open_st, now;

    return fd >= 0 && path && fstat(fd, &open_st) == 0 && stat(path, &now) == 0 &&
           open_st.st_dev == now.st_dev && open_st.st_ino == now.st_ino;
}

void crt_io_complete(CrtIo *io, int status, size_t bytes_in, size_t bytes_out)
{
    io->status = status;
    io->bytes_in = bytes_in;
    io->bytes_out = bytes_out;
    io->tstate = CRT_IO_IDLE;
    io->flags = 0;
    io->done(io);
}

/* Intrusive queues: the write queue links through next/prev, the read queue
 * through rnext/rprev, so a transaction can stand in both. */
static void wq_append(FdDriver *d, CrtIo *io)
{
    io->next = NULL;
    io->prev = d->wq_tail;
    if (d->wq_tail)
        d->wq_tail->next = io;
    else
        d->wq_head = io;
    d->wq_tail = io;
    io->flags |= IO_IN_WRITEQ;
}

static void wq_remove(FdDriver *d, CrtIo *io)
{
    if (io->prev)
        io->prev->next = io->next;
    else
        d->wq_head = io->next;
    if (io->next)
        io->next->prev = io->prev;
    else
        d->wq_tail = io->prev;
    io->next = io->prev = NULL;
    io->flags &= ~IO_IN_WRITEQ;
}

/* Insert `io` before `before` (NULL: at the tail). */
static void rq_insert(FdDriver *d, CrtIo *io, CrtIo *before)
{
    io->rnext = before;
    io->rprev = before ? before->rprev : d->rq_tail;
    if (io->rprev)
        io->rprev->rnext = io;
    else
        d->rq_head = io;
    if (before)
        before->rprev = io;
    else
        d->rq_tail = io;
    io->flags |= IO_IN_READQ;
}

static void rq_remove(FdDriver *d, CrtIo *io)
{
    if (io->rprev)
        io->rprev->rnext = io->rnext;
    else
        d->rq_head = io->rnext;
    if (io->rnext)
        io->rnext->rprev = io->rprev;
    else
        d->rq_tail = io->rprev;
    io->rnext = io->rprev = NULL;
    io->flags &= ~IO_IN_READQ;
}

static void unlink_io(FdDriver *d, CrtIo *io)
{
    if (io->end && io->timer.armed)
        crt_loop_timer_stop(d->t->loop, &io->timer);
    if (io->flags & IO_IN_WRITEQ)
        wq_remove(d, io);
    if (io->flags & IO_IN_READQ)
        rq_remove(d, io);
}

/* The head of the read queue may read unless it is a transaction whose
 * request has not been written completely yet. */
static gboolean head_can_read(FdDriver *d)
{
    CrtIo *io = d->rq_head;

    return io && !d->stalled && !d->bind_blocked && !(io->flags & IO_IN_WRITEQ);
}

/* Watch `ev` on one descriptor.  A descriptor nobody waits on is left in
 * the poll set with no events (changing the set allocates), unless it hung
 * up: poll reports a hang-up whatever the events, so such a descriptor is
 * taken out until a request needs it again. */
static gpointer watch(FdDriver *d, gpointer tag, int fd, GIOCondition ev)
{
    if (!tag)
        return ev ? g_source_add_unix_fd(&d->base, fd, ev) : NULL;
    g_source_modify_unix_fd(&d->base, tag, ev);
    return tag;
}

static void update_events(FdDriver *d)
{
    GIOCondition rev = head_can_read(d) ? G_IO_IN : 0;
    GIOCondition wev = d->wq_head && !d->pace.armed ? G_IO_OUT : 0;
    CrtTarget *t = d->t;
    gboolean shared = t->read_fd == t->write_fd;
    gboolean watched =
        (d->rtag || !(shared ? rev | wev : rev)) && (shared || d->wtag || !wev);

    /* GLib wakes the context on every change: skip the ones that aren't. */
    if (rev == d->rev && wev == d->wev && watched)
        return;
    d->rev = rev;
    d->wev = wev;
    if (!shared) {
        d->rtag = watch(d, d->rtag, t->read_fd, rev);
        d->wtag = watch(d, d->wtag, t->write_fd, wev);
    } else {
        d->rtag = watch(d, d->rtag, t->read_fd, rev | wev);
    }
}

/* Drop a descriptor that reports a hang-up or error nobody asked about. */
static gpointer unwatch_idle(FdDriver *d, gpointer tag, GIOCondition watched)
{
    if (tag && !watched &&
        (g_source_query_unix_fd(&d->base, tag) & (G_IO_HUP | G_IO_ERR | G_IO_NVAL))) {
        g_source_remove_unix_fd(&d->base, tag);
        return NULL;
    }
    return tag;
}

static void complete_read(FdDriver *d, CrtIo *io, int status, size_t n)
{
    if (io->end && io->timer.armed)
        crt_loop_timer_stop(d->t->loop, &io->timer);
    rq_remove(d, io);
    if (status < 0 && status != -ECANCELED)
        io->fatal = TRUE;
    crt_io_complete(io, status, (io->flags & IO_TXN) ? io->in_len : 0, n);
}

/* Where a transaction's response ends in its first `got` bytes, or 0 while
 * it goes on. */
static size_t response_end(const CrtSendEnd *end, const guint8 *p, size_t got)
{
    if (end->size && got >= end->size)
        return end->size;
    if (end->until_len && got >= end->until_len) {
        const guint8 *at = memmem(p, got, end->until, end->until_len);

        if (at)
            return (size_t)(at - p) + end->until_len;
    }
    if (end->len_width && got >= (size_t)end->len_offset + end->len_width) {
        guint64 v = 0;
        gint64 total;

        for (guint i = 0; i < end->len_width; i++)
            v = v << 8 | p[end->len_offset + i];
        total = (gint64)v + end->len_adjust;
        /* A field that says less than itself: the response is the field. */
        total = MAX(total, (gint64)end->len_offset + end->len_width);
        if ((guint64)total <= got)
            return (size_t)total;
    }
    return 0;
}

/* ---- the pushback ---------------------------------------------------- */

static size_t pb_len(const FdDriver *d)
{
    return d->pushback ? d->pushback->len - d->pb_off : 0;
}

static const guint8 *pb_data(const FdDriver *d)
{
    return d->pushback->data + d->pb_off;
}

/* Take `n` bytes from the front. */
static void pb_consume(FdDriver *d, size_t n)
{
    d->pb_off += n;
    if (d->pb_off == d->pushback->len) {
        g_byte_array_set_size(d->pushback, 0);
        d->pb_off = 0;
    }
}

/* Before bytes are added: what was consumed goes for good. */
static void pb_compact(FdDriver *d)
{
    if (!d->pushback)
        d->pushback = g_byte_array_new();
    if (d->pb_off) {
        g_byte_array_remove_range(d->pushback, 0, (guint)d->pb_off);
        d->pb_off = 0;
    }
}

static void pushback_append(FdDriver *d, const guint8 *p, size_t n)
{
    pb_compact(d);
    g_byte_array_append(d->pushback, p, (guint)n);
}

/* The transaction at the head is complete at `n` of its `got` bytes; the
 * rest goes back to the stream. */
static void finish_transaction(FdDriver *d, CrtIo *io, size_t n)
{
    if (io->got > n)
        pushback_append(d, (const guint8 *)io->out + n, io->got - n);
    complete_read(d, io, 0, n);
}

/* An idle gap after the last bytes of a transaction: its response is what
 * came.  Loop thread. */
static void gap_fired(CrtTimer *timer)
{
    CrtIo *io = G_STRUCT_MEMBER_P(timer, -G_STRUCT_OFFSET(CrtIo, timer));
    FdDriver *d = io->target->fdd;

    if (d && d->rq_head == io && io->got > 0) {
        finish_transaction(d, io, io->got);
        update_events(d);
    }
}

/* One read for a transaction with end conditions: FALSE when the loop of
 * reads should stop (nothing more now, or the end of the stream). */
static gboolean read_transaction(FdDriver *d, CrtIo *io)
{
    CrtTarget *t = d->t;
    ssize_t n = read(t->read_fd, (guint8 *)io->out + io->got, io->out_cap - io->got);
    size_t e;

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return FALSE;
    if (n <= 0) {
        d->stalled = TRUE;
        if (io->got > 0) /* what came before the end: the response */
            finish_transaction(d, io, io->got);
        else
            complete_read(d, io, n == 0 ? -ENODATA : -errno, 0);
        return FALSE;
    }
    __atomic_add_fetch(&t->bytes_read, (guint64)n, __ATOMIC_RELAXED);
    io->got += (size_t)n;
    e = response_end(io->end, io->out, io->got);
    if (e || io->got == io->out_cap) {
        finish_transaction(d, io, e ? e : io->got);
        return TRUE;
    }
    if (io->end->gap_ms) {
        if (io->timer.armed)
            crt_loop_timer_stop(t->loop, &io->timer);
        io->timer.fn = gap_fired;
        crt_loop_timer_start(t->loop, &io->timer,
                             g_get_monotonic_time() + (gint64)io->end->gap_ms * 1000);
    }
    return FALSE;
}

/* A streaming read served from what a transaction pushed back. */
static gboolean read_pushback(FdDriver *d, CrtIo *io)
{
    size_t n;

    if (io->out_cap && !io->out && !io->bind(io)) {
        d->bind_blocked = TRUE;
        return FALSE;
    }
    n = MIN(io->out_cap, pb_len(d));
    memcpy(io->out, pb_data(d), n);
    pb_consume(d, n);
    complete_read(d, io, 0, n);
    return TRUE;
}

/* ---- framed streaming reads (split) ----------------------------------- */

/* The message in `io` ends at `end` of its bytes; the verdict says why. */
static void finish_message(FdDriver *d, CrtIo *io, size_t end, CrtFrameVerdict why)
{
    CrtTarget *t = d->t;

    if (d->msg_timer.armed)
        crt_loop_timer_stop(t->loop, &d->msg_timer);
    d->msg = NULL;
    __atomic_add_fetch(&t->messages, 1, __ATOMIC_RELAXED);
    if (why == CRT_FRAME_CUT_SIZE)
        __atomic_add_fetch(&t->messages_cut_size, 1, __ATOMIC_RELAXED);
    else if (why == CRT_FRAME_CUT_WAIT)
        __atomic_add_fetch(&t->messages_cut_wait, 1, __ATOMIC_RELAXED);
    complete_read(d, io, 0, end);
}

static void msg_fired(CrtTimer *timer);
static void do_reads(FdDriver *d);

/* Bytes came for the message: (re)arm its timer, max_wait from the first
 * byte, the idle gap from these. */
static void note_arrival(FdDriver *d)
{
    gint64 now = g_get_monotonic_time();
    gint64 deadline;

    d->msg_last = now;
    if (d->msg_first == 0)
        d->msg_first = now;
    else if (!d->idle_us)
        return; /* max_wait runs already, and nothing else is timed */
    deadline = d->msg_first + d->wait_us;
    if (d->idle_us)
        deadline = MIN(deadline, now + d->idle_us);
    d->msg_timer.fn = msg_fired;
    crt_loop_timer_start(d->t->loop, &d->msg_timer, deadline);
}

/* The idle gap or max_wait ran out: the message is what came.  Loop
 * thread. */
static void msg_fired(CrtTimer *timer)
{
    FdDriver *d = G_STRUCT_MEMBER_P(timer, -G_STRUCT_OFFSET(FdDriver, msg_timer));
    CrtTarget *t = d->t;
    CrtIo *io = d->msg;
    /* Whichever was due first, even when the loop comes late for both. */
    gboolean waited = !d->idle_us || d->msg_first + d->wait_us < d->msg_last + d->idle_us;

    if (!io || io->got == 0)
        return;
    finish_message(d, io, io->got, waited ? CRT_FRAME_CUT_WAIT : CRT_FRAME_IDLE);
    if (t->closed)
        return;
    /* Whole messages may wait in the pushback: no readiness comes for them. */
    if (pb_len(d) && head_can_read(d))
        do_reads(d);
    if (!t->closed)
        update_events(d);
}

/* The first read of a message: take the split in force now. */
static void start_message(FdDriver *d, CrtIo *io)
{
    CrtTarget *t = d->t;
    CrtSplit split;

    d->msg_gen = (guint)g_atomic_int_get(&t->split_gen);
    crt_target_get_split(t, &split);
    crt_framer_start(&d->framer, &split, io->out_cap);
    d->msg = io;
    io->got = 0;
    d->msg_first = 0;
    d->idle_us = crt_framer_idle_us(&split, t->line_baud, t->line_char_bits);
    d->wait_us = crt_framer_wait_us(&split);
}

/* Feed the message from the pushback (which may end it), a step at a time:
 * a pushback of many small messages is copied once, not once per message. */
static void message_from_pushback(FdDriver *d, CrtIo *io)
{
    while (pb_len(d)) {
        size_t n = MIN(MIN(d->framer.max - io->got, pb_len(d)), PUSHBACK_STEP), end;
        CrtFrameVerdict v;

        memcpy((guint8 *)io->out + io->got, pb_data(d), n);
        v = crt_framer_feed(&d->framer, io->out, io->got + n, &end);
        if (v != CRT_FRAME_MORE) {
            pb_consume(d, end - io->got);
            finish_message(d, io, end, v);
            return;
        }
        pb_consume(d, n);
        io->got += n;
    }
    note_arrival(d);
}

/* The stream ended (status) with the message holding `io->got` bytes. */
static void message_at_end(FdDriver *d, CrtIo *io, int status)
{
    if (io->got > 0) {
        d->pending_end = status;
        finish_message(d, io, io->got, CRT_FRAME_END);
        return;
    }
    d->msg = NULL;
    d->stalled = TRUE;
    complete_read(d, io, status, 0);
}

/* One step of a framed streaming read at the head: FALSE when the loop of
 * reads should stop (nothing more now, or the end of the stream). */
static gboolean read_message(FdDriver *d, CrtIo *io)
{
    CrtTarget *t = d->t;
    size_t end;
    ssize_t n;

    /* A split set while the read waited for its first byte applies to it. */
    if (d->msg == io && io->got == 0 &&
        d->msg_gen != (guint)g_atomic_int_get(&t->split_gen))
        d->msg = NULL;
    if (d->msg != io) {
        if (d->pending_end) {
            int status = d->pending_end;

            d->pending_end = 0;
            d->stalled = TRUE;
            complete_read(d, io, status, 0);
            return FALSE;
        }
        if (!io->out && !io->bind(io)) {
            d->bind_blocked = TRUE;
            return FALSE;
        }
        start_message(d, io);
    }
    if (pb_len(d)) {
        message_from_pushback(d, io);
        return TRUE;
    }
    n = read(t->read_fd, (guint8 *)io->out + io->got, d->framer.max - io->got);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return FALSE;
    if (n <= 0) {
        message_at_end(d, io, n == 0 ? -ENODATA : -errno);
        return TRUE;
    }
    __atomic_add_fetch(&t->bytes_read, (guint64)n, __ATOMIC_RELAXED);
    CrtFrameVerdict v = crt_framer_feed(&d->framer, io->out, io->got + (size_t)n, &end);

    if (v != CRT_FRAME_MORE) {
        /* The pushback is empty here: it is always used up before a read. */
        if (end < io->got + (size_t)n)
            pushback_append(d, (const guint8 *)io->out + end, io->got + (size_t)n - end);
        finish_message(d, io, end, v);
        return TRUE;
    }
    io->got += (size_t)n;
    note_arrival(d);
    /* A short read drained the descriptor: poll for the rest. */
    return io->got == d->framer.max;
}

/* Whether the head streaming read is framed: a message in progress, a
 * split set, or an end of stream that a partial message met. */
static gboolean head_is_framed(FdDriver *d, CrtIo *io)
{
    return !(io->flags & IO_TXN) && io->out_cap > 0 &&
           (d->msg == io || d->pending_end || g_atomic_int_get(&d->t->split_framed));
}

static void read_loop(FdDriver *d)
{
    CrtTarget *t = d->t;

    for (int budget = READ_BUDGET; budget > 0 && head_can_read(d); budget--) {
        CrtIo *io = d->rq_head;
        size_t cap = io->out_cap; /* io may be reused once completed */
        ssize_t n;

        if ((io->flags & IO_TXN) && io->end) {
            if (!read_transaction(d, io))
                break;
            continue;
        }
        if (head_is_framed(d, io)) {
            if (!read_message(d, io))
                break;
            continue;
        }
        if (!(io->flags & IO_TXN) && pb_len(d)) {
            if (!read_pushback(d, io))
                break;
            continue;
        }

        if (cap && !io->out && !io->bind(io)) {
            d->bind_blocked = TRUE;
            break;
        }
        n = cap ? read(t->read_fd, io->out, cap) : 0;

        if (n > 0) {
            __atomic_add_fetch(&t->bytes_read, (guint64)n, __ATOMIC_RELAXED);
            complete_read(d, io, 0, (size_t)n);
            /* A short read drained a pipe or socket: poll rather than try
             * again only to meet EAGAIN. */
            if ((size_t)n < cap)
                break;
        } else if (n == 0 && cap == 0) {
            complete_read(d, io, 0, 0); /* a zero-size read: readiness only */
        } else if (n == 0) {
            /* End of stream: one request reports it; the rest wait for the
             * engine to stop or for a new stream to begin. */
            d->stalled = TRUE;
            complete_read(d, io, -ENODATA, 0);
        } else if (errno == EAGAIN || errno == EINTR) {
            break;
        } else {
            d->stalled = TRUE;
            complete_read(d, io, -errno, 0);
        }
    }
}

/* Bytes the driver holds (whole messages in the pushback, an end a partial
 * message met) get no readiness; only reads serve them. */
static gboolean holds_bytes(FdDriver *d)
{
    return pb_len(d) || d->pending_end;
}

static void do_reads(FdDriver *d)
{
    CrtTarget *t = d->t;

    /* A completion in the loop may submit the next read: the loop serves
     * it, instead of one nested loop per message held (as deep as the
     * messages one read(2) brought). */
    if (d->in_reads)
        return;
    d->in_reads = TRUE;
    read_loop(d);
    d->in_reads = FALSE;
    /* The budget ran out before what is held: go on after other sources
     * had their turn.  (A transaction at the head waits for the device.) */
    if (!t->closed && holds_bytes(d) && head_can_read(d) && !(d->rq_head->flags & IO_TXN))
        crt_loop_post(t->loop, &d->more);
}

static void more_reads(CrtTask *task)
{
    FdDriver *d = G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(FdDriver, more));

    if (d->t->closed)
        return;
    do_reads(d);
    if (!d->t->closed)
        update_events(d);
}

static void finish_write(FdDriver *d, CrtIo *io, int status)
{
    wq_remove(d, io);
    if (status == 0 && (io->flags & IO_TXN))
        return; /* the read side now waits for the response */
    if (io->flags & IO_IN_READQ)
        rq_remove(d, io);
    if (status < 0)
        io->fatal = status != -ECANCELED;
    crt_io_complete(io, status, io->progress, 0);
}

static void pace_fired(CrtTimer *timer);

/* Paced writes (chardelay): one byte, then the pace timer, whoever's the
 * next byte is; a request completes with its last byte. */
static void do_paced_writes(FdDriver *d)
{
    CrtTarget *t = d->t;
    CrtIo *io;

    while (!d->pace.armed && (io = d->wq_head)) {
        ssize_t n = 0;

        if (io->progress < io->in_len)
            n = write(t->write_fd, (const char *)io->in + io->progress, 1);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n < 0) {
            finish_write(d, io, -errno);
            continue;
        }
        if (n > 0) {
            __atomic_add_fetch(&t->bytes_written, 1, __ATOMIC_RELAXED);
            io->progress++;
            d->pace.fn = pace_fired;
            crt_loop_timer_start(t->loop, &d->pace,
                                 g_get_monotonic_time() + d->chardelay_us);
        }
        if (io->progress == io->in_len)
            finish_write(d, io, 0);
    }
}

static void do_writes(FdDriver *d)
{
    CrtTarget *t = d->t;
    CrtIo *io;

    if (d->chardelay_us) {
        do_paced_writes(d);
        return;
    }
    while ((io = d->wq_head)) {
        const char *p = (const char *)io->in + io->progress;
        ssize_t n = 0;

        if (io->progress < io->in_len)
            n = write(t->write_fd, p, io->in_len - io->progress);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n < 0) {
            finish_write(d, io, -errno);
            continue;
        }
        __atomic_add_fetch(&t->bytes_written, (guint64)n, __ATOMIC_RELAXED);
        io->progress += (size_t)n;
        if (io->progress == io->in_len)
            finish_write(d, io, 0);
    }
}

static void pace_fired(CrtTimer *timer)
{
    FdDriver *d = G_STRUCT_MEMBER_P(timer, -G_STRUCT_OFFSET(FdDriver, pace));

    if (d->t->closed)
        return;
    do_writes(d);
    if (!d->t->closed)
        update_events(d);
}

static gboolean fd_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    FdDriver *d = (FdDriver *)source;
    gboolean shared = d->t->read_fd == d->t->write_fd;
    GIOCondition rev = d->rtag ? g_source_query_unix_fd(source, d->rtag) : 0;
    GIOCondition wev = shared    ? rev
                       : d->wtag ? g_source_query_unix_fd(source, d->wtag)
                                 : 0;

    if (wev & (G_IO_OUT | G_IO_ERR | G_IO_HUP))
        do_writes(d);
    if (rev & (G_IO_IN | G_IO_ERR | G_IO_HUP))
        do_reads(d);
    /* Completions above may have closed the target from a callback. */
    if (d->t->closed)
        return G_SOURCE_REMOVE;
    update_events(d);
    d->rtag = unwatch_idle(d, d->rtag, shared ? d->rev | d->wev : d->rev);
    if (!shared)
        d->wtag = unwatch_idle(d, d->wtag, d->wev);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs fd_source_funcs = {
    .dispatch = fd_dispatch,
};

void crt_fd_attach(CrtTarget *t, int read_fd, int write_fd)
{
    FdDriver *d = (FdDriver *)g_source_new(&fd_source_funcs, sizeof(FdDriver));

    d->t = t;
    t->read_fd = read_fd;
    t->write_fd = write_fd;
    t->fdd = d;
    d->rtag = g_source_add_unix_fd(&d->base, read_fd, 0);
    if (write_fd != read_fd)
        d->wtag = g_source_add_unix_fd(&d->base, write_fd, 0);
    d->rev = d->wev = 0;
    d->more.fn = more_reads;
    g_source_set_name(&d->base, "crtfs-fd");
    g_source_set_can_recurse(&d->base, TRUE); /* see loop.c: no allocation per dispatch */
    g_source_attach(&d->base, crt_loop_context(t->loop));
}

void crt_fd_set_chardelay(CrtTarget *t, guint us)
{
    t->fdd->chardelay_us = us;
}

/* After close (which destroyed the source on the loop thread): free it. */
void crt_fd_detach(CrtTarget *t)
{
    if (!t->fdd)
        return;
    g_source_destroy(&t->fdd->base);
    g_source_unref(&t->fdd->base);
    t->fdd = NULL;
}

static void ioctl_back(CrtTask *task)
{
    CrtIo *io = G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(CrtIo, back));
    CrtTarget *t = io->target;

    crt_io_complete(io, io->status, io->bytes_in, io->bytes_out);
    /* The last unref waits for this: the descriptor outlives the ioctl. */
    g_mutex_lock(&t->lock);
    t->running--;
    g_cond_broadcast(&t->cond);
    g_mutex_unlock(&t->lock);
}

/* Worker thread: the ioctl gets the input as its argument memory, in the
 * output buffer when that is large enough so the result lands there. */
static void ioctl_work(CrtTask *task)
{
    CrtIo *io = G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(CrtIo, work));
    void *arg = io->out;
    void *scratch = NULL;
    size_t in_len = io->in_len;

    if (in_len > io->out_cap) {
        arg = scratch = g_malloc(in_len);
    }
    if (arg && in_len)
        memcpy(arg, io->in, in_len);
    io->status = ioctl(io->target->read_fd, io->ioctl_code, arg) < 0 ? -errno : 0;
    io->bytes_in = io->status == 0 ? in_len : 0;
    io->bytes_out = io->status == 0 ? io->out_cap : 0;
    if (scratch && io->out_cap)
        memcpy(io->out, scratch, io->out_cap);
    g_free(scratch);
    io->back.fn = ioctl_back;
    crt_loop_post(io->target->loop, &io->back);
}

void crt_fd_submit(CrtTarget *t, CrtIo *io)
{
    FdDriver *d = t->fdd;

    io->flags = 0;
    io->progress = 0;
    io->fatal = FALSE;
    if (t->closed) {
        crt_io_complete(io, -ESHUTDOWN, 0, 0);
        return;
    }
    switch (io->type) {
    case CRT_REQUEST_IOCTL:
        io->tstate = CRT_IO_RUNNING;
        io->work.fn = ioctl_work;
        g_mutex_lock(&t->lock);
        t->running++;
        g_mutex_unlock(&t->lock);
        crt_loop_pool_push(t->loop, &io->work);
        return;
    case CRT_REQUEST_READ:
        /* A new stream tries again after EOF, and after a bind that found
         * no buffer (the stream that waited for it was cancelled). */
        if (!d->rq_head)
            d->stalled = d->bind_blocked = FALSE;
        rq_insert(d, io, NULL);
        if (holds_bytes(d) && d->rq_head == io) {
            /* No readiness will come for bytes we hold already. */
            io->tstate = CRT_IO_QUEUED;
            do_reads(d);
            update_events(d);
            return;
        }
        break;
    case CRT_REQUEST_WRITE:
        wq_append(d, io);
        break;
    case CRT_REQUEST_INTERNAL_IOCTL: {
        CrtIo *pos;

        /* Bytes already waiting belong to the stream: hand them to the
         * queued reads before the transaction takes the head. */
        if (head_can_read(d))
            do_reads(d);
        pos = d->rq_head;

        /* Ahead of every streaming read, behind earlier transactions. */
        while (pos && (pos->flags & IO_TXN))
            pos = pos->rnext;
        io->flags |= IO_TXN;
        io->got = 0;
        rq_insert(d, io, pos);
        wq_append(d, io);
        d->stalled = FALSE;
        break;
    }
    default:
        crt_io_complete(io, -EINVAL, 0, 0);
        return;
    }
    io->tstate = CRT_IO_QUEUED;
    update_events(d);
}

/* A message in progress is taken back (cancel, close): its bytes go to
 * the front of the pushback, for the stream's next read, not lost. */
static void drop_message(FdDriver *d, CrtIo *io)
{
    if (d->msg_timer.armed)
        crt_loop_timer_stop(d->t->loop, &d->msg_timer);
    if (io->got > 0) {
        pb_compact(d);
        g_byte_array_prepend(d->pushback, io->out, (guint)io->got);
    }
    io->got = 0;
    d->msg = NULL;
}

gboolean crt_fd_cancel(CrtTarget *t, CrtIo *io, int status)
{
    FdDriver *d = t->fdd;

    if (io->tstate != CRT_IO_QUEUED)
        return FALSE;
    if (io == d->msg)
        drop_message(d, io);
    unlink_io(d, io);
    crt_io_complete(io, status, io->progress, 0);
    if (!t->closed)
        update_events(d);
    return TRUE;
}

void crt_fd_kick(CrtTarget *t)
{
    FdDriver *d = t->fdd;

    d->bind_blocked = FALSE;
    /* Bytes held already (whole messages in the pushback, an end of stream
     * a partial message met) get no readiness: serve them now. */
    if (holds_bytes(d) && head_can_read(d)) {
        do_reads(d);
        if (t->closed)
            return;
    }
    update_events(d);
}

void crt_fd_close(CrtTarget *t)
{
    FdDriver *d = t->fdd;
    CrtIo *io;

    crt_loop_cancel(t->loop, &d->more);
    if (d->msg)
        drop_message(d, d->msg);
    /* t->closed is already set: completions cannot resubmit here. */
    crt_loop_timer_stop(t->loop, &d->pace);
    while ((io = d->wq_head) || (io = d->rq_head)) {
        unlink_io(d, io);
        crt_io_complete(io, -ECANCELED, io->progress, 0);
    }
    /* The stream is over: bytes a transaction pushed back go with it (here,
     * on the loop thread that alone touches them). */
    if (d->pushback)
        g_byte_array_unref(d->pushback);
    d->pushback = NULL;
    d->pb_off = 0;
    /* Destroyed here, on the loop thread, so no dispatch can run once the
     * last reference drops on another thread. */
    g_source_destroy(&d->base);
}
