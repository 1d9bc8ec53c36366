/* crtfs - `rfc2217:HOST:PORT`: a remote serial port behind a Telnet COM
 * Port Control server (RFC 2217; ser2net's `telnet(rfc2217)` accepter).
 *
 * The protocol is kept away from the shared fd driver: opening connects
 * (target-socket.c's connect), negotiates BINARY and SGA both ways and
 * COM-PORT-OPTION on our side (telnet.c refuses everything else, once),
 * sets the line the spec asks for and waits for the server to confirm
 * each setting; then a socketpair stands between the two.  The fd driver
 * reads and writes one end like any stream, so streaming, transactions
 * and framing are unchanged; the shuttle, a GSource on the target's loop,
 * moves bytes between the other end and the connection: decoding Telnet
 * from the network (IAC IAC is a 0xFF data byte, commands and
 * subnegotiations are taken out, wherever the reads split them) and
 * encoding towards it (0xFF doubled).  Each direction has a bounded
 * buffer: a full one stops reading its source, so a slow side holds the
 * other back instead of growing memory.  The end of the connection is the
 * end of the stream on the pair (a `wait` target sees a loss and connects
 * again, setting the line again).
 *
 * Modem lines, break and line events are rfc2217-lines.c's; the state
 * both files share is rfc2217.h's.
 *
 * Threads: open on the caller's thread (it blocks for the connection and
 * the answers); the shuttle on the loop thread; the lines calls on any
 * other thread.  `lock` guards what those share (rfc2217.h); `cmd_lock` lets
 * one command at a time wait for its answer (SET-CONTROL answers do not
 * say which command they answer).  Lock order: cmd_lock, then lock.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rfc2217.h"

/* A subnegotiation from the server (telnet.c's callback): its answers to
 * our commands and its notifications.  Requests a server makes of us
 * (signature, flow control suspend) are not acted on. */
static void on_subneg(guint8 option, const guint8 *p, size_t len, gboolean truncated,
                      gpointer data)
{
    Rfc *r = data;

    if (option != CRT_TNOPT_COM_PORT || len < 2 || p[0] < CPC_SERVER)
        return;
    g_mutex_lock(&r->lock);
    switch (p[0] - CPC_SERVER) {
    case CPC_NOTIFY_MODEMSTATE:
        crt_rfc2217_modem_state_unlocked(r, p[1]);
        break;
    case CPC_NOTIFY_LINESTATE:
        crt_rfc2217_line_state_unlocked(r, p[1]);
        break;
    default:
        if (r->want && p[0] - CPC_SERVER == r->want && !r->answered) {
            r->answer_len = MIN(len - 1, sizeof r->answer);
            memcpy(r->answer, p + 1, r->answer_len);
            r->answered = TRUE;
            g_cond_broadcast(&r->cond);
        }
        break;
    }
    g_mutex_unlock(&r->lock);
}

/* ---- moving bytes ------------------------------------------------------ */

/* Read from the connection into the free end of `in` and decode there:
 * 0, -EAGAIN, or the end (-ENODATA, -errno). */
static int net_read(Rfc *r)
{
    ssize_t n;

    if (r->in_off == r->in_len)
        r->in_off = r->in_len = 0;
    else if (r->in_len == SHUTTLE_CAP && r->in_off > 0) {
        memmove(r->in, r->in + r->in_off, r->in_len - r->in_off);
        r->in_len -= r->in_off;
        r->in_off = 0;
    }
    if (r->in_len == SHUTTLE_CAP)
        return -EAGAIN;
    n = recv(r->net, r->in + r->in_len, SHUTTLE_CAP - r->in_len, MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
    if (n == 0)
        return -ENODATA;
    r->in_len +=
        crt_telnet_decode(r->tn, r->in + r->in_len, (size_t)n, r->in + r->in_len);
    /* Answers to the peer's negotiations go out before later data. */
    GByteArray *pending = crt_telnet_pending(r->tn);
    if (pending->len) {
        g_byte_array_append(r->out, pending->data, pending->len);
        g_byte_array_set_size(pending, 0);
    }
    return 0;
}

static int net_write(Rfc *r)
{
    ssize_t n;

    if (r->out_off == r->out->len)
        return 0;
    n = send(r->net, r->out->data + r->out_off, r->out->len - r->out_off,
             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
    r->out_off += (size_t)n;
    if (r->out_off == r->out->len) {
        g_byte_array_set_size(r->out, 0);
        r->out_off = 0;
    }
    return 0;
}

static gboolean out_has_room(Rfc *r)
{
    return r->out->len - r->out_off < SHUTTLE_CAP;
}

/* Take what the fd driver wrote to the pair and encode it. */
static void pair_read(Rfc *r)
{
    guint8 buf[4096];
    ssize_t n;

    while (out_has_room(r) && (n = recv(r->pair, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        crt_telnet_encode(r->tn, buf, (size_t)n, r->out);
}

static void pair_write(Rfc *r)
{
    while (r->in_off < r->in_len) {
        ssize_t n = send(r->pair, r->in + r->in_off, r->in_len - r->in_off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            break; /* full (the reader is behind), or the target is closing */
        r->in_off += (size_t)n;
    }
}

/* The connection is over: once the pair has what came before the end,
 * shut it, so that the fd driver reads the end of the stream and its
 * writes fail as a broken connection's would. */
static void finish_if_drained(Rfc *r)
{
    if (!r->net_end || r->pair_shut || r->in_off < r->in_len)
        return;
    shutdown(r->pair, SHUT_RDWR);
    r->pair_shut = TRUE;
    g_mutex_lock(&r->lock);
    r->gone = TRUE;
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
}

/* Watch `ev` on `fd`.  A descriptor that hung up is reported whatever its
 * events, so one we wait nothing from is taken out of the poll set until
 * we do (else a full buffer and a closed connection would spin). */
static gpointer watch_fd(Rfc *r, gpointer tag, int fd, GIOCondition ev)
{
    if (!tag)
        return ev ? g_source_add_unix_fd(&r->base, fd, ev) : NULL;
    if (!ev &&
        (g_source_query_unix_fd(&r->base, tag) & (G_IO_HUP | G_IO_ERR | G_IO_NVAL))) {
        g_source_remove_unix_fd(&r->base, tag);
        return NULL;
    }
    g_source_modify_unix_fd(&r->base, tag, ev);
    return tag;
}

static void shuttle_update(Rfc *r)
{
    GIOCondition nev = 0, pev = 0;

    if (!r->net_end) {
        if (r->in_len < SHUTTLE_CAP || r->in_off > 0)
            nev |= G_IO_IN;
        if (r->out_off < r->out->len)
            nev |= G_IO_OUT;
    }
    if (!r->pair_shut) {
        if (r->in_off < r->in_len)
            pev |= G_IO_OUT;
        if (!r->net_end && out_has_room(r))
            pev |= G_IO_IN;
    }
    if (r->net_end && r->net_tag) {
        g_source_remove_unix_fd(&r->base, r->net_tag);
        r->net_tag = NULL;
    }
    if (!r->net_end)
        r->net_tag = watch_fd(r, r->net_tag, r->net, nev);
    if (r->pair_shut && r->pair_tag) {
        g_source_remove_unix_fd(&r->base, r->pair_tag);
        r->pair_tag = NULL;
    }
    if (!r->pair_shut)
        r->pair_tag = watch_fd(r, r->pair_tag, r->pair, pev);
}

static void shuttle_once(Rfc *r)
{
    if (!r->net_end) {
        pair_read(r);
        int rr = net_read(r);
        int wr = net_write(r);

        if ((rr < 0 && rr != -EAGAIN) || (wr < 0 && wr != -EAGAIN)) {
            r->net_end = TRUE;
            g_byte_array_set_size(r->out, 0);
            r->out_off = 0;
        }
    }
    pair_write(r);
    finish_if_drained(r);
}

void crt_rfc2217_shuttle(Rfc *r)
{
    shuttle_once(r);
    shuttle_update(r);
}

static gboolean shuttle_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    crt_rfc2217_shuttle((Rfc *)source);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs shuttle_funcs = {
    .dispatch = shuttle_dispatch,
};

/* ---- opening: negotiation and the line settings ---------------------- */

typedef gboolean (*DoneFn)(Rfc *r);

/* Talk to the server on the caller's thread until `done`, at most
 * REPLY_TIMEOUT_MS; 0, -ETIMEDOUT, or -errno when the connection ends. */
static int converse(Rfc *r, DoneFn done)
{
    gint64 deadline = g_get_monotonic_time() + REPLY_TIMEOUT_MS * 1000;

    for (;;) {
        struct pollfd pfd = {.fd = r->net, .events = POLLIN};
        GByteArray *pending = crt_telnet_pending(r->tn);
        int left, n;

        g_byte_array_append(r->out, pending->data, pending->len);
        g_byte_array_set_size(pending, 0);
        if (done(r) && r->out_off == r->out->len)
            return 0;
        if (r->out_off < r->out->len)
            pfd.events |= POLLOUT;
        left = (int)MAX((deadline - g_get_monotonic_time()) / 1000, 0);
        n = poll(&pfd, 1, left);
        /* Done but not all sent when time is up: the shuttle sends the
         * rest. */
        if (n == 0)
            return done(r) ? 0 : -ETIMEDOUT;
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n <= 0)
            continue;
        if ((pfd.revents & POLLOUT) && (n = net_write(r)) < 0 && n != -EAGAIN)
            return n;
        if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) && (n = net_read(r)) < 0 &&
            n != -EAGAIN)
            return n == -ENODATA ? -ECONNRESET : n;
    }
}

static gboolean negotiated(Rfc *r)
{
    return crt_telnet_settled(r->tn);
}

static gboolean answered(Rfc *r)
{
    gboolean a;

    g_mutex_lock(&r->lock);
    a = r->answered;
    g_mutex_unlock(&r->lock);
    return a;
}

void crt_rfc2217_queue_command(Rfc *r, guint8 cmd, const guint8 *value, size_t len)
{
    guint8 p[8];

    p[0] = cmd;
    memcpy(p + 1, value, len);
    crt_telnet_subneg(CRT_TNOPT_COM_PORT, p, len + 1, r->out);
}

void crt_rfc2217_expect(Rfc *r, int cmd)
{
    g_mutex_lock(&r->lock);
    r->want = cmd;
    r->answered = FALSE;
    r->answer_len = 0;
    g_mutex_unlock(&r->lock);
}

static guint32 answer_value(Rfc *r)
{
    guint32 v = 0;

    for (size_t i = 0; i < r->answer_len; i++)
        v = v << 8 | r->answer[i];
    return v;
}

/* The connection failed while opening (`doing`).  A server that turns us
 * away (ser2net: "Port already in use") says why in data before it
 * closes, maybe after its negotiation: pass that on. */
static int ended(Rfc *r, int rc, const char *server, const char *doing, GError **error)
{
    g_autofree char *said =
        g_strndup((const char *)r->in + r->in_off, MIN(r->in_len - r->in_off, 120));

    g_strstrip(g_strdelimit(said, "\r\n\t", ' '));
    if (said[0] && g_utf8_validate(said, -1, NULL))
        return crt_set_error(error, -rc, "%s closed the connection, saying \"%s\"",
                             server, said);
    return crt_set_error(error, -rc, "%s: %s: %s", server, doing, g_strerror(-rc));
}

/* One setting at open: send it, wait for the answer, compare. */
static int set_one(Rfc *r, const char *name, guint8 cmd, guint32 value, size_t width,
                   const char *text, const char *server, GError **error)
{
    guint8 b[4];
    int rc;

    for (size_t i = 0; i < width; i++)
        b[i] = (guint8)(value >> (8 * (width - 1 - i)));
    crt_rfc2217_expect(r, cmd);
    crt_rfc2217_queue_command(r, cmd, b, width);
    rc = converse(r, answered);
    if (rc == -ETIMEDOUT)
        return crt_set_error(error, ETIMEDOUT,
                             "%s: the server did not confirm %s %s within %d ms", server,
                             name, text, REPLY_TIMEOUT_MS);
    if (rc < 0) {
        g_autofree char *doing = g_strdup_printf("setting %s", name);
        return ended(r, rc, server, doing, error);
    }
    if (r->answer_len != width || answer_value(r) != value)
        return crt_set_error(error, EINVAL,
                             "%s: the remote port refused %s %s (it answered %u)", server,
                             name, text, answer_value(r));
    return 0;
}

static int apply_line(Rfc *r, const CrtTargetSpec *spec, const char *server,
                      GError **error)
{
    static const guint8 parity[] = {
        [CRT_PARITY_NONE] = 1, [CRT_PARITY_ODD] = 2, [CRT_PARITY_EVEN] = 3};
    static const char *const parity_names[] = {"none", "even", "odd"};
    static const guint8 flow[] = {[CRT_FLOW_NONE] = CTL_FLOW_NONE,
                                  [CRT_FLOW_XONXOFF] = CTL_FLOW_XONXOFF,
                                  [CRT_FLOW_RTSCTS] = CTL_FLOW_HARDWARE};
    static const char *const flow_names[] = {"none", "rtscts", "xonxoff"};
    char text[16];
    int rc = 0;

    if (spec->baud) {
        g_snprintf(text, sizeof text, "%u", spec->baud);
        rc = set_one(r, "baud", CPC_SET_BAUDRATE, spec->baud, 4, text, server, error);
    }
    if (rc == 0 && spec->data_bits) {
        g_snprintf(text, sizeof text, "%u", spec->data_bits);
        rc = set_one(r, "data bits", CPC_SET_DATASIZE, spec->data_bits, 1, text, server,
                     error);
    }
    if (rc == 0 && spec->parity_set)
        rc = set_one(r, "parity", CPC_SET_PARITY, parity[spec->parity], 1,
                     parity_names[spec->parity], server, error);
    if (rc == 0 && spec->stop_bits) {
        g_snprintf(text, sizeof text, "%u", spec->stop_bits);
        rc = set_one(r, "stop bits", CPC_SET_STOPSIZE, spec->stop_bits, 1, text, server,
                     error);
    }
    if (rc == 0 && spec->flow_set)
        rc = set_one(r, "flow control", CPC_SET_CONTROL, flow[spec->flow], 1,
                     flow_names[spec->flow], server, error);
    crt_rfc2217_expect(r, 0);
    return rc;
}

static gboolean line_asked(const CrtTargetSpec *spec)
{
    return spec->baud || spec->data_bits || spec->parity_set || spec->stop_bits ||
           spec->flow_set;
}

/* Negotiate, and set the line when the server speaks COM-PORT-OPTION. */
static int handshake(Rfc *r, const CrtTargetSpec *spec, const char *server,
                     GError **error)
{
    int rc;

    crt_telnet_start(r->tn);
    rc = converse(r, negotiated);
    if (rc == -ETIMEDOUT)
        /* Not ETIMEDOUT: a server that does not speak Telnet at all (a
         * plain tcp accepter) is a mistake in a spec, not an absence. */
        return crt_set_error(error, EPROTO,
                             "%s does not negotiate Telnet options (within %d ms): is "
                             "its accepter telnet(rfc2217)?",
                             server, REPLY_TIMEOUT_MS);
    if (rc < 0)
        return ended(r, rc, server, "during Telnet negotiation", error);
    r->comport = crt_telnet_local_enabled(r->tn, CRT_TNOPT_COM_PORT);
    if (!r->comport && line_asked(spec))
        return crt_set_error(error, EPROTONOSUPPORT,
                             "%s refuses COM-PORT-OPTION (RFC 2217), so the line "
                             "settings cannot be set: use telnet(rfc2217) in ser2net's "
                             "accepter, or drop the line options",
                             server);
    if (!r->comport)
        return 0;
    rc = apply_line(r, spec, server, error);
    if (rc == 0) {
        /* Report line errors and breaks, and every modem-line change
         * (servers answer these masks with nothing we wait for). */
        static const guint8 ls = LS_REPORTED, ms = 0xff;

        crt_rfc2217_queue_command(r, CPC_SET_LINESTATE_MASK, &ls, 1);
        crt_rfc2217_queue_command(r, CPC_SET_MODEMSTATE_MASK, &ms, 1);
    }
    return rc;
}

static void rfc_free(Rfc *r)
{
    if (r->net >= 0)
        close(r->net);
    if (r->pair >= 0)
        close(r->pair);
    crt_telnet_free(r->tn);
    g_byte_array_unref(r->out);
    g_free(r->in);
    g_mutex_clear(&r->lock);
    g_mutex_clear(&r->cmd_lock);
    g_cond_clear(&r->cond);
    crt_line_events_clear(&r->events);
    g_source_unref(&r->base);
}

static Rfc *rfc_new(CrtTarget *t, int net)
{
    static const int local[] = {CRT_TNOPT_BINARY, CRT_TNOPT_SGA, CRT_TNOPT_COM_PORT, -1};
    static const int remote[] = {CRT_TNOPT_BINARY, CRT_TNOPT_SGA, -1};
    Rfc *r = (Rfc *)g_source_new(&shuttle_funcs, sizeof(Rfc));

    r->t = t;
    r->net = net;
    r->pair = -1;
    r->tn = crt_telnet_new(local, remote, on_subneg, r);
    r->in = g_malloc(SHUTTLE_CAP);
    r->out = g_byte_array_new();
    r->outputs = CRT_LINES_OUTPUTS;
    g_mutex_init(&r->lock);
    g_mutex_init(&r->cmd_lock);
    g_cond_init(&r->cond);
    crt_line_events_init(&r->events, t);
    g_source_set_name(&r->base, "crtfs-rfc2217");
    return r;
}

static int rfc_open(CrtTarget *t, const CrtTargetSpec *spec, const CrtTargetCreds *creds,
                    GError **error)
{
    g_autofree char *server = crt_tcp_name(spec->host, spec->port);
    int net, sv[2];
    int rc = crt_tcp_connect(spec->host, spec->port, &net, error);
    Rfc *r;

    if (rc < 0)
        return rc;
    r = rfc_new(t, net);
    rc = handshake(r, spec, server, error);
    if (rc == 0 &&
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        rc = crt_set_error(error, errno, "cannot set up %s: socketpair: %s", server,
                           g_strerror(errno));
    if (rc < 0) {
        rfc_free(r);
        return rc;
    }
    r->pair = sv[1];
    t->impl = r;
    crt_fd_attach(t, sv[0], sv[0]);
    /* Bytes that came during the handshake, and the masks, go at once. */
    shuttle_update(r);
    g_source_attach(&r->base, crt_loop_context(t->loop));
    return 0;
}

static void rfc_close(CrtTarget *t)
{
    Rfc *r = t->impl;

    crt_fd_close(t);
    /* On the loop thread, so no dispatch runs once the last reference
     * drops elsewhere. */
    g_source_destroy(&r->base);
    g_mutex_lock(&r->lock);
    r->gone = TRUE;
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
}

static void rfc_destroy(CrtTarget *t)
{
    Rfc *r = t->impl;
    int fd = t->read_fd;

    crt_fd_detach(t);
    if (fd >= 0)
        close(fd);
    rfc_free(r);
    t->impl = NULL;
}

static void rfc_counters(CrtTarget *t, CrtTargetCounters *c)
{
    Rfc *r = t->impl;

    g_mutex_lock(&r->lock);
    c->has_icount = r->comport;
    c->breaks += r->breaks;
    c->framing += r->framing;
    c->parity += r->parity;
    c->overruns += r->overruns;
    g_mutex_unlock(&r->lock);
}

const CrtTargetOps crt_target_rfc2217_ops = {
    .name = "rfc2217",
    .open = rfc_open,
    .submit = crt_fd_submit,
    .cancel = crt_fd_cancel,
    .close = rfc_close,
    .kick = crt_fd_kick,
    .destroy = rfc_destroy,
    .counters = rfc_counters,
    .lines_get = crt_rfc2217_lines_get,
    .lines_set = crt_rfc2217_lines_set,
    .send_break = crt_rfc2217_send_break,
    .watch_lines = crt_rfc2217_watch_lines,
    .unwatch_lines = crt_rfc2217_unwatch_lines,
};
