/* crtfs - the standard serial line rates and their termios constants, for
 * the tty code of the path target, which sets these as B* constants and
 * any other rate with termios2 BOTHER (tty-speed.h).  Pure functions, any
 * thread. */
#ifndef CRTFS_BAUD_H
#define CRTFS_BAUD_H

#include <glib.h>
#include <termios.h>

/* The highest rate a spec may ask for: above what any UART does. */
#define CRT_BAUD_MAX 20000000u

/* The termios B* constant of a standard rate, B0 for any other rate. */
speed_t crt_baud_constant(guint baud);
/* The rate of a B* constant, 0 for B0 or an unknown one. */
guint crt_baud_from_constant(speed_t constant);

#endif
