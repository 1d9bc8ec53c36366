/* crtfs - how the engine library reports errors that need words.
 *
 * Functions return 0 or -errno; those that take a `GError **` also fill it,
 * in the G_IO_ERROR domain with the code g_io_error_from_errno() gives for
 * the errno, and a message that names what failed and why.  Callers that
 * build on the library (the daemon) report their own errors the same way.
 */
#ifndef CRTFS_ERROR_H
#define CRTFS_ERROR_H

#include <glib.h>

#include <crtfs/export.h>

G_BEGIN_DECLS

/* Set *error (when `error` is not NULL) to a G_IO_ERROR with the code of
 * the positive errno `err` (g_io_error_from_errno) and the printf-style
 * message; returns -err, so a failure reads `return crt_set_error(...)`.
 * `err` <= 0 is a programmer error (-EINVAL, nothing set).  Any thread. */
CRT_API int crt_set_error(GError **error, int err, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

G_END_DECLS

#endif
