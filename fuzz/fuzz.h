/* crtfs fuzzing - what the libFuzzer harnesses in fuzz/ share: the entry
 * points, the input cap and a GLib set-up under which a parser's warning is
 * a crash.  scripts/fuzz builds and runs them.
 */
#ifndef CRTFS_FUZZ_H
#define CRTFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

/* Longer inputs are skipped: the daemon refuses control writes over 64 KiB,
 * and longer ones would only slow the search down. */
#define FUZZ_MAX_INPUT (64 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* GLib 2.74's GKeyFile sets its own error twice for a value with a bad
 * escape followed by a backslash at its end (`a\l\`) and warns about
 * itself; the value is refused all the same.  That one warning is GLib's
 * bug, not a parser's. */
static inline gboolean fuzz_glib_own_warning(const GLogField *fields, gsize n)
{
    for (gsize i = 0; i < n; i++) {
        if (strcmp(fields[i].key, "MESSAGE") == 0 && fields[i].length < 0 &&
            strstr(fields[i].value, "The overwriting error message was: Key file "
                                    "contains escape character at end of line"))
            return TRUE;
    }
    return FALSE;
}

/* A parser that trips a g_return_if_fail or sets a GError over another one
 * has a bug even though it goes on: warnings and criticals abort (GLib's own
 * fatal warnings raise SIGTRAP, which libFuzzer does not catch), so that
 * libFuzzer keeps the input. */
static inline GLogWriterOutput
fuzz_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data)
{
    GLogWriterOutput r = g_log_writer_standard_streams(level, fields, n, data);

    if ((level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) &&
        !fuzz_glib_own_warning(fields, n))
        abort();
    return r;
}

/* Slices are plain mallocs, so that AddressSanitizer sees every block and
 * LeakSanitizer every leak. */
static inline void fuzz_init(void)
{
    setenv("G_SLICE", "always-malloc", 0);
    g_log_set_writer_func(fuzz_log_writer, NULL, NULL);
}

/* The input as a C string, as a line read from a file or written to a
 * control file arrives: it ends at the first NUL byte.  g_free it. */
static inline char *fuzz_string(const uint8_t *data, size_t size)
{
    return g_strndup((const char *)data, size);
}

#endif
