/* crtfs - serial driver options of a tty that termios does not carry:
 * RS-485 mode (TIOCGRS485/TIOCSRS485) and low latency (TIOCGSERIAL/
 * TIOCSSERIAL, ASYNC_LOW_LATENCY).  Each is applied at open with the old
 * setting saved, and put back on release.  A driver without the feature
 * (a pty) makes the open fail with its errno and words.  Caller's thread.
 */
#ifndef CRTFS_TTY_SERIAL_H
#define CRTFS_TTY_SERIAL_H

#include <linux/serial.h>

#include <crtfs/target.h>

/* What a tty had before crt_tty_serial_apply changed it. */
typedef struct {
    gboolean rs485_saved;
    struct serial_rs485 rs485;
    gboolean low_latency_set; /* we set ASYNC_LOW_LATENCY: clear it again */
} CrtTtySerial;

/* Apply the spec's rs485 and low_latency options to `fd` (named `name` in
 * the words), remembering in `saved` what to put back; 0 or -errno.  On
 * failure whatever was changed already is in `saved` too. */
int crt_tty_serial_apply(int fd, const char *name, const CrtTargetSpec *spec,
                         CrtTtySerial *saved, GError **error);
/* Put back what crt_tty_serial_apply changed. */
void crt_tty_serial_restore(int fd, const CrtTtySerial *saved);

#endif
