/* crtfs - any baud rate on a tty (see tty-speed.h).  Only the kernel's
 * headers here: <asm/termbits.h> defines struct termios2 and BOTHER, and
 * clashes with libc's <termios.h>. */
#include "config.h"

#include <errno.h>
#include <sys/ioctl.h>

#include <asm/termbits.h>

#include "tty-speed.h"

#define CBAUD_BOTH (CBAUD | (CBAUD << IBSHIFT))

int crt_tty_speed_save(int fd, CrtTtySpeed *saved)
{
    struct termios2 t;

    saved->valid = FALSE;
    if (ioctl(fd, TCGETS2, &t) < 0)
        return -errno;
    saved->cbaud = t.c_cflag & CBAUD_BOTH;
    saved->ispeed = t.c_ispeed;
    saved->ospeed = t.c_ospeed;
    saved->valid = TRUE;
    return 0;
}

void crt_tty_speed_restore(int fd, const CrtTtySpeed *saved)
{
    struct termios2 t;

    if (!saved->valid || ioctl(fd, TCGETS2, &t) < 0)
        return;
    t.c_cflag = (t.c_cflag & ~(tcflag_t)CBAUD_BOTH) | saved->cbaud;
    t.c_ispeed = saved->ispeed;
    t.c_ospeed = saved->ospeed;
    ioctl(fd, TCSETS2, &t);
}

int crt_tty_speed_set(int fd, guint baud, guint *actual)
{
    struct termios2 t;

    if (ioctl(fd, TCGETS2, &t) < 0)
        return -errno;
    t.c_cflag = (t.c_cflag & ~(tcflag_t)CBAUD_BOTH) | BOTHER | (BOTHER << IBSHIFT);
    t.c_ispeed = baud;
    t.c_ospeed = baud;
    if (ioctl(fd, TCSETS2, &t) < 0)
        return -errno;
    /* The driver writes back the rate its divisor gives. */
    if (ioctl(fd, TCGETS2, &t) < 0)
        return -errno;
    *actual = t.c_ospeed;
    return 0;
}

int crt_tty_speed_get(int fd, guint *ispeed, guint *ospeed)
{
    struct termios2 t;

    if (ioctl(fd, TCGETS2, &t) < 0)
        return -errno;
    *ispeed = t.c_ispeed;
    *ospeed = t.c_ospeed;
    return 0;
}
