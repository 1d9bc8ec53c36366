/* crtfs - RS-485 mode and low latency on a tty (see tty-serial.h). */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "target-private.h"
#include "tty-lines.h"
#include "tty-serial.h"

/* "NAME does not support OPTION (IOCTL: reason)", with what a pty is. */
static int unsupported(GError **error, int err, int fd, const char *name,
                       const char *option, const char *ioctl_name)
{
    return crt_set_error(error, err, "%s%s does not support %s (%s: %s)", name,
                         crt_tty_is_pty(fd) ? ", a pseudo-terminal," : "", option,
                         ioctl_name, g_strerror(err));
}

static int apply_rs485(int fd, const char *name, const CrtTargetSpec *spec,
                       CrtTtySerial *saved, GError **error)
{
    struct serial_rs485 rs, check;

    memset(&rs, 0, sizeof rs);
    if (ioctl(fd, TIOCGRS485, &rs) < 0)
        return unsupported(error, errno, fd, name, "RS-485", "TIOCGRS485");
    saved->rs485 = rs;
    rs.flags &= ~(__u32)(SER_RS485_RTS_ON_SEND | SER_RS485_RTS_AFTER_SEND |
                         SER_RS485_RX_DURING_TX);
    rs.flags |= SER_RS485_ENABLED;
    if (spec->rs485_rts_on_send)
        rs.flags |= SER_RS485_RTS_ON_SEND;
    if (spec->rs485_rts_after_send)
        rs.flags |= SER_RS485_RTS_AFTER_SEND;
    if (spec->rs485_rx_during_tx)
        rs.flags |= SER_RS485_RX_DURING_TX;
    rs.delay_rts_before_send = spec->rs485_delay_before;
    rs.delay_rts_after_send = spec->rs485_delay_after;
    if (ioctl(fd, TIOCSRS485, &rs) < 0)
        return unsupported(error, errno, fd, name, "RS-485", "TIOCSRS485");
    saved->rs485_saved = TRUE;
    /* The driver may adjust what it cannot do (delays, RTS levels); it
     * must at least be on. */
    memset(&check, 0, sizeof check);
    if (ioctl(fd, TIOCGRS485, &check) == 0 && !(check.flags & SER_RS485_ENABLED))
        return crt_set_error(error, EINVAL, "%s did not turn RS-485 on (TIOCSRS485)",
                             name);
    return 0;
}

static int apply_low_latency(int fd, const char *name, CrtTtySerial *saved,
                             GError **error)
{
    struct serial_struct ss;

    memset(&ss, 0, sizeof ss);
    if (ioctl(fd, TIOCGSERIAL, &ss) < 0)
        return unsupported(error, errno, fd, name, "low_latency", "TIOCGSERIAL");
    if (ss.flags & ASYNC_LOW_LATENCY)
        return 0; /* already on: nothing to put back */
    ss.flags |= ASYNC_LOW_LATENCY;
    if (ioctl(fd, TIOCSSERIAL, &ss) < 0)
        return unsupported(error, errno, fd, name, "low_latency", "TIOCSSERIAL");
    saved->low_latency_set = TRUE;
    return 0;
}

int crt_tty_serial_apply(int fd, const char *name, const CrtTargetSpec *spec,
                         CrtTtySerial *saved, GError **error)
{
    int r = 0;

    memset(saved, 0, sizeof *saved);
    if (spec->rs485)
        r = apply_rs485(fd, name, spec, saved, error);
    if (r == 0 && spec->low_latency)
        r = apply_low_latency(fd, name, saved, error);
    return r;
}

void crt_tty_serial_restore(int fd, const CrtTtySerial *saved)
{
    struct serial_struct ss;

    if (saved->rs485_saved) {
        struct serial_rs485 rs = saved->rs485;

        ioctl(fd, TIOCSRS485, &rs);
    }
    if (saved->low_latency_set && ioctl(fd, TIOCGSERIAL, &ss) == 0) {
        ss.flags &= ~ASYNC_LOW_LATENCY;
        ioctl(fd, TIOCSSERIAL, &ss);
    }
}
