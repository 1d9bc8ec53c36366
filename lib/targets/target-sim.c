/* crtfs - the built-in simulator target (see include/crtfs/sim.h).
 *
 * Everything happens on the loop thread: reads wait in a FIFO and are served
 * by a task (never inside submit, so a fast stream cannot recurse), delays
 * are loop timers, and there is no thread of its own.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <crtfs/sim.h>

#include "sim-uart.h"
#include "target-private.h"

#define DEFAULT_RECORD_SIZE 32
#define SERVE_BUDGET 64
/* A stream paused longer than this restarts its rate clock instead of
 * bursting out the records it "missed". */
#define RATE_RESYNC_US G_USEC_PER_SEC

/* Which list a CrtIo is on (CrtIo.flags, low bits). */
enum {
    ON_READS = 1, /* waiting for data */
    ON_TIMER = 2, /* an ioctl or transaction waiting for its delay */
    ON_DONE = 3,  /* decided, completes from the serve task */
    ON_MASK = 3,
    /* A read chosen to fail (fail=): it fails, with io->status, when its
     * turn comes, after the reads submitted before it, as a device would. */
    DOOMED = 4,
};

typedef struct {
    CrtIo *head, *tail;
} IoList;

typedef struct {
    CrtTarget *t;
    CrtSimGen gen;
    guint rate;
    guint size;
    guint delay_min, delay_max;
    guint64 fail_after;
    int fail_errno;
    gboolean fail_fatal;
    guint64 limit;

    IoList reads, timed, done;
    CrtTask serve;       /* completes `done` and serves `reads` */
    CrtTimer rate_timer; /* the next record is due */
    guint64 requests;    /* requests submitted, for fail= */
    guint64 reads_served;
    guint64 produced;      /* records (or reads) produced */
    guint64 counter;       /* next counter value */
    gint64 clock_start;    /* rate clock origin, monotonic us */
    guint64 clock_base;    /* `produced` at clock_start */
    gboolean stalled;      /* EOF or a fatal failure was reported */
    gboolean bind_blocked; /* no output buffer: wait for a kick */
    GByteArray *echo;      /* written bytes not read yet */
    SimUart *uart;         /* sim:uart: the line the bytes travel on */
    GRand *rand;
} Sim;

static void list_append(IoList *l, CrtIo *io, guint which)
{
    io->next = NULL;
    io->prev = l->tail;
    if (l->tail)
        l->tail->next = io;
    else
        l->head = io;
    l->tail = io;
    io->flags = (io->flags & DOOMED) | which;
}

static void list_remove(IoList *l, CrtIo *io)
{
    if (io->prev)
        io->prev->next = io->next;
    else
        l->head = io->next;
    if (io->next)
        io->next->prev = io->prev;
    else
        l->tail = io->prev;
    io->next = io->prev = NULL;
    io->flags &= DOOMED;
}

static IoList *list_of(Sim *s, CrtIo *io)
{
    switch (io->flags & ON_MASK) {
    case ON_READS:
        return &s->reads;
    case ON_TIMER:
        return &s->timed;
    case ON_DONE:
        return &s->done;
    default:
        return NULL;
    }
}

/* Decide a request's result now; it completes from the serve task. */
static void finish_later(Sim *s, CrtIo *io, int status, size_t in, size_t out)
{
    io->status = status;
    io->bytes_in = in;
    io->bytes_out = out;
    io->tstate = CRT_IO_RUNNING;
    list_append(&s->done, io, ON_DONE);
    crt_loop_post(s->t->loop, &s->serve);
}

/* A record: its number as "%010" PRIu64, " crtfs sim record ", dots, and
 * '\n' as its last byte; cut to `len`.  Made by hand: at 64-byte records
 * snprintf cost more than the rest of the record's way to a reader. */
static void fill_record(char *dst, size_t len, guint64 n)
{
    static const char tail[] = " crtfs sim record ";
    char line[20 + sizeof tail], digits[20];
    size_t nd = 0, k = 0;

    do {
        digits[nd++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    for (size_t i = nd; i < 10; i++)
        line[k++] = '0';
    while (nd > 0)
        line[k++] = digits[--nd];
    memcpy(line + k, tail, sizeof tail - 1);
    k += sizeof tail - 1;
    memcpy(dst, line, MIN(len, k));
    if (len > k)
        memset(dst + k, '.', len - k);
    if (len)
        dst[len - 1] = '\n';
}

/* How many records (or reads) the rate allows now; schedules the rate timer
 * when none is due.  Rate 0 means no limit. */
static guint64 rate_allowance(Sim *s)
{
    gint64 now;
    guint64 expected;

    if (s->rate == 0)
        return G_MAXUINT64;
    now = g_get_monotonic_time();
    if (s->clock_start == 0 ||
        now - s->clock_start > RATE_RESYNC_US + (gint64)((s->produced - s->clock_base) *
                                                         G_USEC_PER_SEC / s->rate)) {
        s->clock_start = now;
        s->clock_base = s->produced;
    }
    expected =
        s->clock_base + 1 + (guint64)(now - s->clock_start) * s->rate / G_USEC_PER_SEC;
    if (expected > s->produced)
        return expected - s->produced;
    crt_loop_timer_start(s->t->loop, &s->rate_timer,
                         s->clock_start + (gint64)((s->produced - s->clock_base) *
                                                   G_USEC_PER_SEC / s->rate));
    return 0;
}

/* Fill one read from the generator; returns bytes, or -1 to wait. */
static gssize generate(Sim *s, CrtIo *io)
{
    guint64 allowed = rate_allowance(s);
    size_t n;

    if (allowed == 0)
        return -1;
    switch (s->gen) {
    case CRT_SIM_GEN_RECORDS: {
        guint64 k = MAX(1, io->out_cap / s->size);
        size_t len = MIN(io->out_cap, (size_t)s->size);

        k = MIN(k, allowed);
        for (guint64 i = 0; i < k; i++)
            fill_record((char *)io->out + i * len, len, ++s->produced);
        return (gssize)(k * len);
    }
    case CRT_SIM_GEN_COUNTER:
        n = io->out_cap / sizeof(guint64);
        for (size_t i = 0; i < n; i++) {
            guint64 le = GUINT64_TO_LE(s->counter++);

            memcpy((char *)io->out + i * sizeof le, &le, sizeof le);
        }
        s->produced++;
        return (gssize)(n * sizeof(guint64));
    case CRT_SIM_GEN_ZERO:
        memset(io->out, 0, io->out_cap);
        s->produced++;
        return (gssize)io->out_cap;
    case CRT_SIM_GEN_UART: /* served by the fd driver (open_uart) */
        return -1;
    case CRT_SIM_GEN_ECHO:
        if (s->echo->len == 0)
            return -1;
        n = MIN(io->out_cap, s->echo->len);
        memcpy(io->out, s->echo->data, n);
        g_byte_array_remove_range(s->echo, 0, (guint)n);
        return (gssize)n;
    }
    return -1;
}

/* Serve the head read; FALSE when it has to wait. */
static gboolean serve_one_read(Sim *s)
{
    CrtIo *io = s->reads.head;
    gssize n;

    if (s->stalled || s->bind_blocked)
        return FALSE;
    if (io->flags & DOOMED) {
        list_remove(&s->reads, io);
        if (io->fatal)
            s->stalled = TRUE;
        crt_io_complete(io, io->status, 0, 0);
        return TRUE;
    }
    if (s->limit && s->reads_served >= s->limit) {
        s->stalled = TRUE;
        list_remove(&s->reads, io);
        io->fatal = TRUE;
        crt_io_complete(io, -ENODATA, 0, 0);
        return TRUE;
    }
    if (io->out_cap && !io->out && !io->bind(io)) {
        s->bind_blocked = TRUE;
        return FALSE;
    }
    n = generate(s, io);
    if (n < 0)
        return FALSE;
    s->reads_served++;
    list_remove(&s->reads, io);
    __atomic_add_fetch(&s->t->bytes_read, (guint64)n, __ATOMIC_RELAXED);
    crt_io_complete(io, 0, 0, (size_t)n);
    return TRUE;
}

/* Complete decided requests and serve reads, in the order they came: a
 * failure decided at submission completes before reads submitted after it. */
static void serve(Sim *s)
{
    int budget = SERVE_BUDGET;
    CrtIo *io;

    while (budget > 0) {
        if ((io = s->done.head)) {
            list_remove(&s->done, io);
            crt_io_complete(io, io->status, io->bytes_in, io->bytes_out);
        } else if (!s->reads.head || s->t->closed || !serve_one_read(s)) {
            return;
        }
        budget--;
    }
    crt_loop_post(s->t->loop, &s->serve);
}

static void serve_task(CrtTask *task)
{
    serve(G_STRUCT_MEMBER_P(task, -G_STRUCT_OFFSET(Sim, serve)));
}

static void rate_timer_fired(CrtTimer *timer)
{
    serve(G_STRUCT_MEMBER_P(timer, -G_STRUCT_OFFSET(Sim, rate_timer)));
}

static void delay_fired(CrtTimer *timer)
{
    CrtIo *io = G_STRUCT_MEMBER_P(timer, -G_STRUCT_OFFSET(CrtIo, timer));
    Sim *s = io->target->impl;
    size_t out = 0;

    list_remove(&s->timed, io);
    if (io->ioctl_code == CRT_SIM_IOCTL_ZERO) {
        memset(io->out, 0, io->out_cap);
        out = io->out_cap;
    } else if (io->out_cap) {
        out = MIN(io->in_len, io->out_cap);
        memcpy(io->out, io->in, out);
    }
    crt_io_complete(io, 0, io->in_len, out);
}

static guint32 delay_argument(Sim *s, CrtIo *io, gboolean from_input)
{
    guint32 ms;

    if (from_input && io->in_len >= sizeof ms) {
        memcpy(&ms, io->in, sizeof ms);
        return ms;
    }
    if (s->delay_max > s->delay_min)
        return (guint32)g_rand_int_range(s->rand, (gint32)s->delay_min,
                                         (gint32)s->delay_max + 1);
    return s->delay_min;
}

static void submit_ioctl(Sim *s, CrtIo *io)
{
    guint32 ms;

    switch (io->ioctl_code) {
    case CRT_SIM_IOCTL_ZERO_BYTES:
        finish_later(s, io, 0, io->in_len, 0);
        return;
    case CRT_SIM_IOCTL_SLEEP:
    case CRT_SIM_IOCTL_ZERO:
        ms = delay_argument(s, io, TRUE);
        break;
    default:
        if (io->type == CRT_REQUEST_IOCTL) {
            finish_later(s, io, -ENOTTY, 0, 0);
            return;
        }
        ms = delay_argument(s, io, FALSE); /* a transaction: echo */
        break;
    }
    io->tstate = CRT_IO_QUEUED;
    list_append(&s->timed, io, ON_TIMER);
    io->timer.fn = delay_fired;
    crt_loop_timer_start(s->t->loop, &io->timer,
                         g_get_monotonic_time() + (gint64)ms * 1000);
}

static gboolean inject_failure(Sim *s, CrtIo *io)
{
    s->requests++;
    if (!s->fail_after || s->requests < s->fail_after)
        return FALSE;
    if (s->requests > s->fail_after && !s->fail_fatal)
        return FALSE;
    io->fatal = s->fail_fatal;
    if (io->type == CRT_REQUEST_READ) {
        io->status = -s->fail_errno;
        io->flags |= DOOMED; /* queued below like any read */
        return FALSE;
    }
    if (s->fail_fatal)
        s->stalled = TRUE;
    finish_later(s, io, -s->fail_errno, 0, 0);
    return TRUE;
}

static void sim_submit(CrtTarget *t, CrtIo *io)
{
    Sim *s = t->impl;

    if (s->uart) {
        crt_fd_submit(t, io);
        return;
    }
    io->fatal = FALSE;
    io->flags = 0;
    if (t->closed) {
        io->fatal = TRUE;
        finish_later(s, io, -ESHUTDOWN, 0, 0);
        return;
    }
    if (inject_failure(s, io))
        return;
    switch (io->type) {
    case CRT_REQUEST_READ:
        /* A new stream: report EOF again if due, and bind again. */
        if (!s->reads.head)
            s->stalled = s->bind_blocked = FALSE;
        io->tstate = CRT_IO_QUEUED;
        list_append(&s->reads, io, ON_READS);
        crt_loop_post(t->loop, &s->serve);
        return;
    case CRT_REQUEST_WRITE:
        if (s->gen == CRT_SIM_GEN_ECHO) {
            g_byte_array_append(s->echo, io->in, (guint)io->in_len);
            crt_loop_post(t->loop, &s->serve);
        }
        __atomic_add_fetch(&t->bytes_written, (guint64)io->in_len, __ATOMIC_RELAXED);
        finish_later(s, io, 0, io->in_len, 0);
        return;
    case CRT_REQUEST_IOCTL:
    case CRT_REQUEST_INTERNAL_IOCTL:
        submit_ioctl(s, io);
        return;
    default:
        finish_later(s, io, -EINVAL, 0, 0);
        return;
    }
}

static void sim_kick(CrtTarget *t)
{
    Sim *s = t->impl;

    if (s->uart) {
        crt_fd_kick(t);
        return;
    }
    s->bind_blocked = FALSE;
    crt_loop_post(t->loop, &s->serve);
}

static gboolean sim_cancel(CrtTarget *t, CrtIo *io, int status)
{
    Sim *s = t->impl;
    IoList *l = list_of(s, io);

    if (s->uart)
        return crt_fd_cancel(t, io, status);
    if (io->tstate != CRT_IO_QUEUED || !l)
        return FALSE;
    if ((io->flags & ON_MASK) == ON_TIMER)
        crt_loop_timer_stop(t->loop, &io->timer);
    list_remove(l, io);
    crt_io_complete(io, status, 0, 0);
    return TRUE;
}

static void sim_close(CrtTarget *t)
{
    Sim *s = t->impl;
    CrtIo *io;

    if (s->uart) {
        crt_fd_close(t);
        crt_sim_uart_stop(s->uart);
        return;
    }
    crt_loop_timer_stop(t->loop, &s->rate_timer);
    while ((io = s->reads.head) || (io = s->timed.head))
        sim_cancel(t, io, -ECANCELED);
    while ((io = s->done.head)) {
        list_remove(&s->done, io);
        crt_io_complete(io, io->status, io->bytes_in, io->bytes_out);
    }
}

static void sim_free(Sim *s)
{
    g_byte_array_unref(s->echo);
    g_rand_free(s->rand);
    g_free(s);
}

static void sim_destroy(CrtTarget *t)
{
    Sim *s = t->impl;

    /* close() emptied the lists, so the serve task cannot re-post itself;
     * take it back if a completion left it queued. */
    crt_loop_cancel(t->loop, &s->serve);
    if (s->uart) {
        crt_fd_detach(t);
        close(t->read_fd);
        crt_sim_uart_free(s->uart);
    }
    sim_free(s);
    t->impl = NULL;
}

/* sim:uart: the target's side is one end of a socketpair, driven by the
 * shared fd driver like any descriptor (framing, transactions, pacing); the
 * UART is the other end (sim-uart.c). */
static int open_uart(CrtTarget *t, Sim *s, const CrtTargetSpec *spec, GError **error)
{
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        int e = errno;

        sim_free(s);
        t->impl = NULL;
        return crt_set_error(error, e, "%s: cannot make the simulated line: %s", t->text,
                             g_strerror(e));
    }
    s->uart = crt_sim_uart_new(t, spec->baud, sv[1]);
    t->line_baud = crt_sim_uart_baud(s->uart);
    t->line_char_bits = 10;
    crt_fd_attach(t, sv[0], sv[0]);
    return 0;
}

static int sim_open(CrtTarget *t, const CrtTargetSpec *spec, const CrtTargetCreds *creds,
                    GError **error)
{
    Sim *s = g_new0(Sim, 1);

    s->t = t;
    s->gen = spec->sim_gen;
    s->rate = spec->sim_rate;
    s->size = spec->sim_size ? spec->sim_size : DEFAULT_RECORD_SIZE;
    s->delay_min = spec->sim_delay_min;
    s->delay_max = spec->sim_delay_max;
    s->fail_after = spec->sim_fail_after;
    s->fail_errno = spec->sim_fail_errno > 0 ? spec->sim_fail_errno : EIO;
    s->fail_fatal = spec->sim_fail_fatal;
    s->limit = spec->sim_limit;
    s->counter = 1;
    s->serve.fn = serve_task;
    s->rate_timer.fn = rate_timer_fired;
    s->echo = g_byte_array_new();
    s->rand = g_rand_new();
    t->impl = s;
    return s->gen == CRT_SIM_GEN_UART ? open_uart(t, s, spec, error) : 0;
}

/* ---- the UART's lines (sim:uart only) ---- */

static SimUart *uart_or_refuse(CrtTarget *t, GError **error)
{
    Sim *s = t->impl;

    if (!s->uart)
        crt_set_error(error, ENOTTY,
                      "%s is a simulator without a UART (use sim:uart): it has no modem "
                      "lines or break",
                      t->text);
    return s->uart;
}

static int sim_lines_get(CrtTarget *t, guint *lines, GError **error)
{
    SimUart *u = uart_or_refuse(t, error);

    return u ? crt_sim_uart_lines_get(u, lines, error) : -ENOTTY;
}

static int sim_lines_set(CrtTarget *t, guint mask, guint values, GError **error)
{
    SimUart *u = uart_or_refuse(t, error);

    return u ? crt_sim_uart_lines_set(u, mask, values, error) : -ENOTTY;
}

static int sim_send_break(CrtTarget *t, guint ms, GError **error)
{
    SimUart *u = uart_or_refuse(t, error);

    return u ? crt_sim_uart_send_break(u, ms, error) : -ENOTTY;
}

static int sim_watch_lines(CrtTarget *t, GError **error)
{
    SimUart *u = uart_or_refuse(t, error);

    return u ? crt_sim_uart_watch(u) : -ENOTTY;
}

static void sim_unwatch_lines(CrtTarget *t)
{
    Sim *s = t->impl;

    if (s->uart)
        crt_sim_uart_unwatch(s->uart);
}

static int sim_line_inject(CrtTarget *t, CrtLineEventKind kind, guint count,
                           GError **error)
{
    Sim *s = t->impl;

    if (!s->uart)
        return crt_set_error(error, EOPNOTSUPP,
                             "%s: only the simulator's UART (sim:uart) injects line "
                             "events",
                             t->text);
    return crt_sim_uart_inject(s->uart, kind, count, error);
}

static void sim_counters(CrtTarget *t, CrtTargetCounters *c)
{
    Sim *s = t->impl;

    if (s->uart)
        crt_sim_uart_counters(s->uart, c);
}

const CrtTargetOps crt_target_sim_ops = {
    .name = "sim",
    .open = sim_open,
    .submit = sim_submit,
    .cancel = sim_cancel,
    .close = sim_close,
    .kick = sim_kick,
    .destroy = sim_destroy,
    .counters = sim_counters,
    .lines_get = sim_lines_get,
    .lines_set = sim_lines_set,
    .send_break = sim_send_break,
    .watch_lines = sim_watch_lines,
    .unwatch_lines = sim_unwatch_lines,
    .line_inject = sim_line_inject,
};
