/* crtfs - the simulator's UART (see sim-uart.h). */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "sim-uart.h"

/* Start bit, 8 data bits, stop bit. */
#define BITS_PER_CHAR 10
/* What the transmitter takes from the target before it stops reading (its
 * FIFO and the tty's buffer): the writer's socket fills behind it. */
#define TX_ROOM 4096
/* Arrived bytes the target has not read yet, before the transmitter stops
 * taking more (no overrun is simulated: the line waits for the reader). */
#define RX_ROOM 65536

/* Bytes taken at one time: they leave the transmitter one character time
 * apart, starting at `start`. */
typedef struct {
    gint64 start_ns; /* monotonic */
    size_t len;
    size_t taken; /* already arrived */
} Burst;

typedef struct {
    GSource base;
    SimUart *u;
} FarSource;

struct SimUart {
    CrtTarget *t;
    guint baud;
    gint64 char_ns;

    /* The far end of the line: loop thread only. */
    int far;           /* the UART's end of the target's socketpair */
    FarSource *source; /* watches `far` */
    gpointer tag;
    GByteArray *wire; /* bytes of the bursts on their way */
    GArray *bursts;   /* of Burst, oldest first */
    gint64 tx_free_ns;
    GByteArray *rx; /* arrived, not yet taken by the target's socket */
    CrtTimer arrive;

    /* Lines, counters and the event thread: under `lock`. */
    GMutex lock;
    guint outputs; /* CRT_LINE_DTR | CRT_LINE_RTS bits */
    guint64 breaks, framing, parity, overruns;
    CrtLineEvents events;
};

static gint64 now_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

/* Take what the target wrote, while there is room on the line. */
static void transmit(SimUart *u)
{
    guint8 buf[TX_ROOM];

    while (u->wire->len < TX_ROOM && u->rx->len < RX_ROOM) {
        ssize_t n = read(u->far, buf, TX_ROOM - u->wire->len);
        Burst b;

        if (n <= 0)
            return;
        b = (Burst){MAX(now_ns(), u->tx_free_ns), (size_t)n, 0};
        g_byte_array_append(u->wire, buf, (guint)n);
        g_array_append_val(u->bursts, b);
        u->tx_free_ns = b.start_ns + (gint64)n * u->char_ns;
    }
}

/* Move the characters whose frames are complete to `rx`; returns the
 * monotonic time (us) the next one completes, 0 when none is on its way. */
static gint64 arrive(SimUart *u)
{
    gint64 now = now_ns();

    while (u->bursts->len > 0) {
        Burst *b = &g_array_index(u->bursts, Burst, 0);
        gint64 done = now < b->start_ns ? 0 : (now - b->start_ns) / u->char_ns;
        size_t n = (size_t)MIN((gint64)b->len, done) - b->taken;

        g_byte_array_append(u->rx, u->wire->data, (guint)n);
        g_byte_array_remove_range(u->wire, 0, (guint)n);
        b->taken += n;
        if (b->taken < b->len)
            return (b->start_ns + (gint64)(b->taken + 1) * u->char_ns + 999) / 1000;
        g_array_remove_index(u->bursts, 0);
    }
    return 0;
}

/* Hand arrived bytes to the target's end, as far as its socket takes them. */
static void deliver(SimUart *u)
{
    while (u->rx->len > 0) {
        ssize_t n = write(u->far, u->rx->data, u->rx->len);

        if (n <= 0)
            return;
        g_byte_array_remove_range(u->rx, 0, (guint)n);
    }
}

/* One turn of the far end: take, arrive, deliver, and watch for what is
 * needed next. */
static void run(SimUart *u)
{
    gint64 next;
    GIOCondition ev = 0;

    transmit(u);
    next = arrive(u);
    deliver(u);
    transmit(u); /* delivering may have made room */
    if (u->wire->len < TX_ROOM && u->rx->len < RX_ROOM)
        ev |= G_IO_IN;
    if (u->rx->len > 0)
        ev |= G_IO_OUT;
    g_source_modify_unix_fd(&u->source->base, u->tag, ev);
    if (!next)
        next = u->bursts->len ? g_get_monotonic_time() : 0;
    if (next)
        crt_loop_timer_start(u->t->loop, &u->arrive, next);
}

static gboolean far_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    run(((FarSource *)source)->u);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs far_funcs = {.dispatch = far_dispatch};

static void arrive_fired(CrtTimer *timer)
{
    run(G_STRUCT_MEMBER_P(timer, -G_STRUCT_OFFSET(SimUart, arrive)));
}

SimUart *crt_sim_uart_new(CrtTarget *t, guint baud, int far)
{
    SimUart *u = g_new0(SimUart, 1);

    u->t = t;
    u->baud = baud ? baud : CRT_SIM_UART_DEFAULT_BAUD;
    u->char_ns = (gint64)BITS_PER_CHAR * 1000000000 / u->baud;
    u->far = far;
    u->wire = g_byte_array_new();
    u->rx = g_byte_array_new();
    u->bursts = g_array_new(FALSE, FALSE, sizeof(Burst));
    u->arrive.fn = arrive_fired;
    /* Opening a tty raises DTR and RTS. */
    u->outputs = CRT_LINE_DTR | CRT_LINE_RTS;
    g_mutex_init(&u->lock);
    crt_line_events_init(&u->events, t);
    u->source = (FarSource *)g_source_new(&far_funcs, sizeof(FarSource));
    u->source->u = u;
    u->tag = g_source_add_unix_fd(&u->source->base, far, G_IO_IN);
    g_source_set_name(&u->source->base, "crtfs-sim-uart");
    g_source_attach(&u->source->base, crt_loop_context(t->loop));
    return u;
}

guint crt_sim_uart_baud(SimUart *u)
{
    return u->baud;
}

void crt_sim_uart_stop(SimUart *u)
{
    crt_loop_timer_stop(u->t->loop, &u->arrive);
    g_source_destroy(&u->source->base);
}

void crt_sim_uart_free(SimUart *u)
{
    if (!u)
        return;
    g_source_unref(&u->source->base);
    close(u->far);
    g_byte_array_unref(u->wire);
    g_byte_array_unref(u->rx);
    g_array_unref(u->bursts);
    g_mutex_clear(&u->lock);
    crt_line_events_clear(&u->events);
    g_free(u);
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
            crt_line_events_post(&u->events, CRT_LINE_EVENT_CHANGE, inputs[i],
                                 (after & inputs[i]) != 0, 0);
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
    crt_line_events_post(&u->events, CRT_LINE_EVENT_BREAK, 0, FALSE, 1);
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
    crt_line_events_post(&u->events, kind, 0, FALSE, count);
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

int crt_sim_uart_watch(SimUart *u)
{
    crt_line_events_start(&u->events, "crtfs-uart");
    return 0;
}

void crt_sim_uart_unwatch(SimUart *u)
{
    crt_line_events_stop(&u->events);
}
