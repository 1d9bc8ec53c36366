/* crtfs - a tty's modem lines, break and line events (crtfs/lines.h) for
 * the path target: TIOCMGET/TIOCMBIS/TIOCMBIC, TIOCSBRK/TIOCCBRK, and a
 * watch thread waiting in TIOCMIWAIT.  Refusals name the tty and say why
 * in words: a pseudo-terminal has no modem lines, no break and no line
 * events (the kernel answers ENOTTY for the modem-line ioctls and accepts
 * a break on a pty without sending anything, so a pty is recognised and
 * refused here).
 *
 * Threads: any thread but the loop thread; `fd` must stay open during a
 * call, and until crt_tty_watch_stop() returns for a watch.
 */
#ifndef CRTFS_TTY_LINES_H
#define CRTFS_TTY_LINES_H

#include <linux/serial.h>

#include "target-private.h"

/* Whether `fd` is either side of a pseudo-terminal. */
gboolean crt_tty_is_pty(int fd);

/* crt_target_lines_get/lines_set/send_break for the tty `fd`, named `name`
 * in the words of an error. */
int crt_tty_lines_get(int fd, const char *name, guint *lines, GError **error);
int crt_tty_lines_set(int fd, const char *name, guint mask, guint values, GError **error);
int crt_tty_send_break(int fd, const char *name, guint ms, GError **error);

typedef struct CrtTtyWatch CrtTtyWatch;

/* Start a thread that reports `t`'s line events (crt_target_line_event)
 * from the tty `fd`: changes of CTS, DSR, DCD and RI, and the deltas of the
 * break, framing, parity and overrun counters.  0 and *out, or -errno with
 * words when the driver cannot tell (a pty: -ENOTTY).  Blocks about
 * 50 ms when it succeeds: a driver without TIOCMIWAIT is only found out by
 * trying, and one that has it answers nothing until a line changes. */
int crt_tty_watch_start(CrtTarget *t, int fd, const char *name, CrtTtyWatch **out,
                        GError **error);
/* Stop the thread and free the watch: when this returns, no event is being
 * or will be reported.  Not from the watch thread itself. */
void crt_tty_watch_stop(CrtTtyWatch *w);

/* The ioctls the watch makes, replaceable by tests (which have no UART
 * that answers TIOCMIWAIT).  Each returns 0 or -1 with errno, as ioctl(2);
 * `wait` must return -1 with EINTR when the thread receives a signal. */
typedef struct {
    int (*get_lines)(int fd, int *tiocm);
    int (*get_icount)(int fd, struct serial_icounter_struct *ic);
    int (*wait)(int fd, int tiocm_mask);
} CrtTtyLineIo;

/* Tests only, before any watch starts: NULL puts the real ioctls back. */
void crt_tty_line_io_set(const CrtTtyLineIo *io);

#endif
