/* crtfs - what the two files of the rfc2217: kind share (target-rfc2217.c:
 * opening, negotiation, the shuttle; rfc2217-lines.c: modem lines, break
 * and line events).  Private to lib/targets/.  Threads and locks are
 * described at the struct.
 */
#ifndef CRTFS_RFC2217_H
#define CRTFS_RFC2217_H

#include "target-private.h"
#include "telnet.h"

/* Bytes held in each direction; a full buffer stops reading its source. */
#define SHUTTLE_CAP 65536
/* How long the server has to answer a negotiation or a command. */
#define REPLY_TIMEOUT_MS 2000

/* RFC 2217 commands, client to server; the server answers with + 100. */
enum {
    CPC_SET_BAUDRATE = 1,
    CPC_SET_DATASIZE = 2,
    CPC_SET_PARITY = 3,
    CPC_SET_STOPSIZE = 4,
    CPC_SET_CONTROL = 5,
    CPC_NOTIFY_LINESTATE = 6,
    CPC_NOTIFY_MODEMSTATE = 7,
    CPC_SET_LINESTATE_MASK = 10,
    CPC_SET_MODEMSTATE_MASK = 11,
    CPC_SERVER = 100,
};

/* SET-CONTROL values. */
enum {
    CTL_FLOW_NONE = 1,
    CTL_FLOW_XONXOFF = 2,
    CTL_FLOW_HARDWARE = 3,
    CTL_BREAK_ON = 5,
    CTL_BREAK_OFF = 6,
    CTL_DTR_ON = 8,
    CTL_DTR_OFF = 9,
    CTL_RTS_ON = 11,
    CTL_RTS_OFF = 12,
};

/* NOTIFY-LINESTATE bits we report, and NOTIFY-MODEMSTATE's levels. */
enum {
    LS_BREAK = 0x10,
    LS_FRAMING = 0x08,
    LS_PARITY = 0x04,
    LS_OVERRUN = 0x02,
    LS_REPORTED = LS_BREAK | LS_FRAMING | LS_PARITY | LS_OVERRUN,
    MS_DCD = 0x80,
    MS_RI = 0x40,
    MS_DSR = 0x20,
    MS_CTS = 0x10,
};

/* One rfc2217: target's state (t->impl).  Threads: open on the caller's
 * thread, the shuttle on the loop thread, the lines calls on others; the
 * fields below say which.  Lock order: cmd_lock, then lock. */
typedef struct {
    GSource base; /* the shuttle */
    CrtTarget *t;
    int net;  /* the connection */
    int pair; /* our end of the socketpair; the fd driver has the other */
    gpointer net_tag, pair_tag;
    CrtTelnet *tn;
    gboolean comport; /* the server took COM-PORT-OPTION */

    /* The caller's thread while opening, then the loop thread. */
    guint8 *in; /* decoded data for the pair: in[in_off, in_len) */
    size_t in_off, in_len;
    GByteArray *out; /* encoded bytes for the network from out_off */
    size_t out_off;
    gboolean net_end;   /* the connection ended (or failed) */
    gboolean pair_shut; /* ...and the pair was shut after what it held */

    /* Any thread, under `lock`. */
    GMutex lock;
    GCond cond;
    int want;          /* the command whose answer a caller waits for, 0 */
    gboolean answered; /* ...and it came: */
    guint8 answer[8];
    size_t answer_len;
    gboolean gone; /* the connection ended: waiting is pointless */
    guint8 modem;  /* the last NOTIFY-MODEMSTATE */
    guint outputs; /* DTR, RTS as last set (up until set) */
    guint64 breaks, framing, parity, overruns;
    CrtLineEvents events; /* to the watcher, from a thread of its own */

    GMutex cmd_lock; /* one command waits for its answer at a time */
} Rfc;

/* Queue a COM-PORT-OPTION command on `out` (caller's thread while
 * opening, loop thread after). */
void crt_rfc2217_queue_command(Rfc *r, guint8 cmd, const guint8 *value, size_t len);
/* Wait for the answer to `cmd` from now on (0: none); takes `lock`. */
void crt_rfc2217_expect(Rfc *r, int cmd);
/* Move what can move now and watch for the rest.  Loop thread. */
void crt_rfc2217_shuttle(Rfc *r);

/* A NOTIFY-MODEMSTATE / NOTIFY-LINESTATE from the server: the inputs,
 * counters and events.  Under `lock` (rfc2217-lines.c). */
void crt_rfc2217_modem_state_unlocked(Rfc *r, guint8 now);
void crt_rfc2217_line_state_unlocked(Rfc *r, guint8 ls);

/* The lines ops (rfc2217-lines.c); not the loop thread. */
int crt_rfc2217_lines_get(CrtTarget *t, guint *lines, GError **error);
int crt_rfc2217_lines_set(CrtTarget *t, guint mask, guint values, GError **error);
int crt_rfc2217_send_break(CrtTarget *t, guint ms, GError **error);
int crt_rfc2217_watch_lines(CrtTarget *t, GError **error);
void crt_rfc2217_unwatch_lines(CrtTarget *t);

#endif
