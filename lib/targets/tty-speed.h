/* crtfs - any baud rate on a tty: termios2 with BOTHER (TCGETS2/TCSETS2),
 * for the rates baud.h's table of B* constants lacks.  A file of its own
 * because <asm/termbits.h> and <termios.h> cannot be included together;
 * this header needs neither.  Pure ioctls on the caller's thread.
 */
#ifndef CRTFS_TTY_SPEED_H
#define CRTFS_TTY_SPEED_H

#include <glib.h>

/* A tty's rate as termios2 has it, to be put back (crt_tty_speed_restore). */
typedef struct {
    gboolean valid;
    guint cbaud; /* the CBAUD | CIBAUD bits of c_cflag */
    guint ispeed, ospeed;
} CrtTtySpeed;

/* Save the rate `fd` runs at now; 0 or -errno. */
int crt_tty_speed_save(int fd, CrtTtySpeed *saved);
/* Put a saved rate back (after tcsetattr() put back the rest: struct
 * termios cannot carry a BOTHER rate). */
void crt_tty_speed_restore(int fd, const CrtTtySpeed *saved);

/* Set both directions to `baud` bits per second with BOTHER; 0 and the
 * rate the driver actually set in *actual, or -errno. */
int crt_tty_speed_set(int fd, guint baud, guint *actual);

/* The rates `fd` runs at; 0 or -errno. */
int crt_tty_speed_get(int fd, guint *ispeed, guint *ospeed);

#endif
