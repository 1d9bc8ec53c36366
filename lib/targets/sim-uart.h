/* crtfs - the simulator's UART (`sim:uart`): a serial line looped back on
 * itself, like pyserial's loop://.  What is written comes back to the
 * reader at the line's byte rate (a 10-bit character frame: start, 8 data
 * bits, stop, so 115200 baud is 11,520 bytes/s); the outputs loop back to
 * the inputs (RTS -> CTS, DTR -> DSR and DCD; RI stays down); a break sent
 * is a break received; errors can be injected.  Received breaks and errors
 * are events and counters only: no byte enters the data for them.
 *
 * Threads: the wire (transmit/receive) belongs to the loop thread; the
 * lines, counters and events may be used from any thread; events reach the
 * watcher from the UART's own event thread, in order.
 */
#ifndef CRTFS_SIM_UART_H
#define CRTFS_SIM_UART_H

#include "target-private.h"

typedef struct SimUart SimUart;

#define CRT_SIM_UART_DEFAULT_BAUD 115200

SimUart *crt_sim_uart_new(CrtTarget *t, guint baud);
/* After unwatch: frees everything. */
void crt_sim_uart_free(SimUart *u);

/* Loop thread.  Put `n` bytes on the wire behind what is on it; returns the
 * monotonic time (us) at which the last of them has been sent. */
gint64 crt_sim_uart_transmit(SimUart *u, const void *p, size_t n);
/* Loop thread.  Copy up to `cap` bytes that have arrived by now into
 * `dst`; returns how many.  When none has, *next is the monotonic time (us)
 * the next one arrives, or 0 when the wire is empty. */
size_t crt_sim_uart_receive(SimUart *u, void *dst, size_t cap, gint64 *next);

/* The ops slots of a sim:uart target (lines.h semantics). */
int crt_sim_uart_lines_get(SimUart *u, guint *lines, GError **error);
int crt_sim_uart_lines_set(SimUart *u, guint mask, guint values, GError **error);
int crt_sim_uart_send_break(SimUart *u, guint ms, GError **error);
int crt_sim_uart_watch(SimUart *u);
void crt_sim_uart_unwatch(SimUart *u);
int crt_sim_uart_inject(SimUart *u, CrtLineEventKind kind, guint count, GError **error);
void crt_sim_uart_counters(SimUart *u, CrtTargetCounters *c);

#endif
