/* crtfs - the simulator's UART (see sim-uart.h). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "sim-uart.h"

/* Start bit, 8 data bits, stop bit. */
#define BITS_PER_CHAR 10

/* Bytes written at one time: they leave the transmitter one character time
 * apart, starting at `start`. */
typedef struct {
    gint64 start_ns; /* monotonic */
    size_t len;
    size_t taken; /* already received */
} Burst;

struct SimUart {
    CrtTarget *t;
    guint baud;
    gint64 char_ns;

    /* The wire: loop thread only. */
    GByteArray *wire; /* bytes of the bursts not received yet */
    GArray *bursts;   /* of Burst, oldest first */
    gint64 tx_free_ns;

    /* Lines, counters and the event thread: under `lock`. */
    GMutex lock;
    guint outputs; /* CRT_LINE_DTR | CRT_LINE_RTS bits */
    guint64 breaks, framing, parity, overruns;
    /* Our own queue rather than a GAsyncQueue: TSan sees GLib's locks only
     * where crtfs takes them (lib/tsan-glib.c). */
    GQueue events; /* of CrtLineEvent*, for the event thread */
    GCond wake;
    gboolean watching, stopping;
    GThread *thread;
};

SimUart *crt_sim_uart_new(CrtTarget *t, guint baud)
{
    SimUart *u = g_new0(SimUart, 1);

    u->t = t;
    u->baud = baud ? baud : CRT_SIM_UART_DEFAULT_BAUD;
    u->char_ns = (gint64)BITS_PER_CHAR * 1000000000 / u->baud;
    u->wire = g_byte_array_new();
    u->bursts = g_array_new(FALSE, FALSE, sizeof(Burst));
    /* Opening a tty raises DTR and RTS. */
    u->outputs = CRT_LINE_DTR | CRT_LINE_RTS;
    g_mutex_init(&u->lock);
    g_cond_init(&u->wake);
    return u;
}

void crt_sim_uart_free(SimUart *u)
{
    if (!u)
        return;
    g_byte_array_unref(u->wire);
    g_array_unref(u->bursts);
    g_mutex_clear(&u->lock);
    g_cond_clear(&u->wake);
    g_free(u);
}

static gint64 now_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

gint64 crt_sim_uart_transmit(SimUart *u, const void *p, size_t n)
{
    Burst b = {MAX(now_ns(), u->tx_free_ns), n, 0};

    if (n == 0)
        return MAX(now_ns(), u->tx_free_ns) / 1000;
    g_byte_array_append(u->wire, p, (guint)n);
    g_array_append_val(u->bursts, b);
    u->tx_free_ns = b.start_ns + (gint64)n * u->char_ns;
    return (u->tx_free_ns + 999) / 1000;
}

size_t crt_sim_uart_receive(SimUart *u, void *dst, size_t cap, gint64 *next)
{
    gint64 now = now_ns();
    size_t got = 0;

    *next = 0;
    while (u->bursts->len > 0 && got < cap) {
        Burst *b = &g_array_index(u->bursts, Burst, 0);
        /* Character i of a burst has arrived once its frame is complete. */
        gint64 arrived = now < b->start_ns ? 0 : (now - b->start_ns) / u->char_ns;
        size_t ready = (size_t)MIN((gint64)b->len, arrived) - b->taken;
        size_t n = MIN(ready, cap - got);

        if (n == 0) {
            if (got == 0)
                *next = (b->start_ns + (gint64)(b->taken + 1) * u->char_ns + 999) / 1000;
            break;
        }
        memcpy((guint8 *)dst + got, u->wire->data, n);
        g_byte_array_remove_range(u->wire, 0, (guint)n);
        got += n;
        b->taken += n;
        if (b->taken == b->len)
            g_array_remove_index(u->bursts, 0);
        else
            break; /* the rest of this burst is still on its way */
    }
    return got;
}

/* The inputs as the loop-back wires them. */
static guint lines_of(guint outputs)
{
    guint l = outputs;

    if (outputs & CRT_LINE_RTS)
        l |= CRT_LINE_CTS;
    if (outputs & CRT_LINE_DTR)
        l |= CRT_LINE_DSR | CRT_LINE_DCD;
    return l;
}

/* Queue an event for the watcher; `lock` held. */
static void post_locked(SimUart *u, CrtLineEventKind kind, CrtLine line, gboolean up,
                        guint64 count)
{
    CrtLineEvent *ev;

    if (!u->watching)
        return;
    ev = g_new0(CrtLineEvent, 1);
    ev->kind = kind;
    ev->line = line;
    ev->up = up;
    ev->count = count;
    ev->time_ns = g_get_real_time() * 1000;
    g_queue_push_tail(&u->events, ev);
    g_cond_signal(&u->wake);
}

int crt_sim_uart_lines_get(SimUart *u, guint *lines, GError **error)
{
    g_mutex_lock(&u->lock);
    *lines = lines_of(u->outputs);
    g_mutex_unlock(&u->lock);
    return 0;
}

int crt_sim_uart_lines_set(SimUart *u, guint mask, guint values, GError **error)
{
    static const CrtLine inputs[] = {CRT_LINE_CTS, CRT_LINE_DSR, CRT_LINE_DCD,
                                     CRT_LINE_RI};
    guint before, after;

    g_mutex_lock(&u->lock);
    before = lines_of(u->outputs);
    u->outputs = (u->outputs & ~mask) | (values & mask);
    after = lines_of(u->outputs);
    for (size_t i = 0; i < G_N_ELEMENTS(inputs); i++) {
        if ((before ^ after) & inputs[i])
            post_locked(u, CRT_LINE_EVENT_CHANGE, inputs[i], (after & inputs[i]) != 0, 0);
    }
    g_mutex_unlock(&u->lock);
    return 0;
}

int crt_sim_uart_send_break(SimUart *u, guint ms, GError **error)
{
    /* The line is held for the break; the far end (ourselves) sees one
     * when it ends, as a UART reports it. */
    g_usleep((gulong)ms * 1000);
    g_mutex_lock(&u->lock);
    u->breaks++;
    post_locked(u, CRT_LINE_EVENT_BREAK, 0, FALSE, 1);
    g_mutex_unlock(&u->lock);
    return 0;
}

int crt_sim_uart_inject(SimUart *u, CrtLineEventKind kind, guint count, GError **error)
{
    g_mutex_lock(&u->lock);
    switch (kind) {
    case CRT_LINE_EVENT_BREAK:
        u->breaks += count;
        break;
    case CRT_LINE_EVENT_FRAMING:
        u->framing += count;
        break;
    case CRT_LINE_EVENT_PARITY:
        u->parity += count;
        break;
    case CRT_LINE_EVENT_OVERRUN:
        u->overruns += count;
        break;
    default:
        g_mutex_unlock(&u->lock);
        return crt_set_error(error, EINVAL,
                             "cannot inject a line change: set dtr or rts");
    }
    post_locked(u, kind, 0, FALSE, count);
    g_mutex_unlock(&u->lock);
    return 0;
}

void crt_sim_uart_counters(SimUart *u, CrtTargetCounters *c)
{
    g_mutex_lock(&u->lock);
    c->has_icount = TRUE;
    c->breaks = u->breaks;
    c->framing = u->framing;
    c->parity = u->parity;
    c->overruns = u->overruns;
    g_mutex_unlock(&u->lock);
}

/* The event thread: hands queued events to the watcher, in order, until
 * unwatch stops it (after the events queued before). */
static gpointer event_thread(gpointer data)
{
    SimUart *u = data;
    CrtLineEvent *ev;

    g_mutex_lock(&u->lock);
    for (;;) {
        while (!(ev = g_queue_pop_head(&u->events)) && !u->stopping)
            g_cond_wait(&u->wake, &u->lock);
        if (!ev)
            break;
        g_mutex_unlock(&u->lock);
        crt_target_line_event(u->t, ev);
        g_free(ev);
        g_mutex_lock(&u->lock);
    }
    g_mutex_unlock(&u->lock);
    return NULL;
}

int crt_sim_uart_watch(SimUart *u)
{
    g_mutex_lock(&u->lock);
    if (!u->watching) {
        u->watching = TRUE;
        u->stopping = FALSE;
        u->thread = g_thread_new("crtfs-uart", event_thread, u);
    }
    g_mutex_unlock(&u->lock);
    return 0;
}

void crt_sim_uart_unwatch(SimUart *u)
{
    GThread *thread;

    g_mutex_lock(&u->lock);
    thread = u->thread;
    u->thread = NULL;
    u->watching = FALSE; /* nothing new is queued */
    u->stopping = TRUE;
    g_cond_signal(&u->wake);
    g_mutex_unlock(&u->lock);
    if (thread)
        g_thread_join(thread);
}
