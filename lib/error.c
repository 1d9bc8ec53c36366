/* crtfs - errors that need words (see include/crtfs/error.h): one GError
 * domain for the whole library, G_IO_ERROR, with codes from errno. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>

#include <gio/gio.h>

#include <crtfs/error.h>

int crt_set_error(GError **error, int err, const char *fmt, ...)
{
    g_return_val_if_fail(err > 0, -EINVAL);

    if (error != NULL) {
        va_list ap;

        va_start(ap, fmt);
        char *msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        g_set_error_literal(error, G_IO_ERROR, g_io_error_from_errno(err), msg);
        g_free(msg);
    }
    return -err;
}
