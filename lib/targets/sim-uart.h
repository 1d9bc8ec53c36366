/* crtfs - the simulator's UART (`sim:uart`): a serial line looped back on
 * itself, like pyserial's loop://.  What is written comes back to the
 * reader at the line's byte rate (a 10-bit character frame: start, 8 data
 * bits, stop, so 115200 baud is 11,520 bytes/s); the outputs loop back to
 * the inputs (RTS -> CTS, DTR -> DSR and DCD; RI stays down); a break sent
 * is a break received; errors can be injected.  Received breaks and errors
 * are events and counters only: no byte enters the data for them.
 *
 * The target's side is an ordinary descriptor driven by the shared fd driver
 * (so framing, transactions and write pacing work as for a tty); the UART
 * is the other end of its socketpair, on the loop.
 *
 * Threads: the wire (the far end) belongs to the loop thread; the
 * lines, counters and events may be used from any thread; events reach the
 * watcher from the UART's own event thread, in order.
 */
#ifndef CRTFS_SIM_UART_H
#define CRTFS_SIM_UART_H

#include "target-private.h"

typedef struct SimUart SimUart;

#define CRT_SIM_UART_DEFAULT_BAUD 115200

/* The UART behind a target whose descriptor is one end of a socketpair:
 * `far` (taken over) is the other end, which the line's far end reads what
 * the target writes from and writes it back to as it arrives.  Loop thread
 * work starts at once on t's loop. */
SimUart *crt_sim_uart_new(CrtTarget *t, guint baud, int far);
guint crt_sim_uart_baud(SimUart *u);
/* Stop the far end (the target's close, on the loop thread). */
void crt_sim_uart_stop(SimUart *u);
/* After stop and unwatch: frees everything, closes `far`. */
void crt_sim_uart_free(SimUart *u);

/* The ops slots of a sim:uart target (lines.h semantics). */
int crt_sim_uart_lines_get(SimUart *u, guint *lines, GError **error);
int crt_sim_uart_lines_set(SimUart *u, guint mask, guint values, GError **error);
int crt_sim_uart_send_break(SimUart *u, guint ms, GError **error);
int crt_sim_uart_watch(SimUart *u);
void crt_sim_uart_unwatch(SimUart *u);
int crt_sim_uart_inject(SimUart *u, CrtLineEventKind kind, guint count, GError **error);
void crt_sim_uart_counters(SimUart *u, CrtTargetCounters *c);

#endif
