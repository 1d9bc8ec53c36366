/* crtfs fuzzing - `send` headers: crt_send_header_parse() of
 * daemon/send-header.c.
 *
 * The input is one write to a `send` session; its header line is cut out,
 * trimmed and told from `cancel` as crt_send_write() does, then parsed.
 * Nothing is submitted: no channel, engine or thread is made.
 *
 * Promises checked: a header parses to a request type and numbers within
 * the ranges the man page gives (ioctl and timeout 32 bits, size at most
 * 16 MiB, size defaulting to out_size), or fails with -EINVAL and a message.
 *
 * fuzz-sources: libcrtfs_a libcrtfsd_a
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <gio/gio.h>

#include "send-header.h"

#include "fuzz.h"

/* What the directory's out_size would be: a value no header word gives by
 * chance, so that the default shows. */
#define DEFAULT_SIZE 4099

static void check_header(const char *header)
{
    CrtSendHeader h;
    GError *error = NULL;
    int r = crt_send_header_parse(header, DEFAULT_SIZE, &h, &error);

    if (r < 0) {
        g_assert_cmpint(r, ==, -EINVAL);
        g_assert_nonnull(error);
        g_assert_cmpstr(error->message, !=, "");
        g_error_free(error);
        return;
    }
    g_assert_cmpint(r, ==, 0);
    g_assert_no_error(error);
    g_assert_cmpint(h.type, >, CRT_REQUEST_INVALID);
    g_assert_cmpint(h.type, <=, CRT_REQUEST_WRITE);
    g_assert_cmpuint(h.ioctl, <=, G_MAXUINT32);
    g_assert_cmpuint(h.timeout, <=, G_MAXUINT32);
    g_assert_cmpuint(h.size, <=, CRT_SEND_MAX_RESPONSE);
    if (strstr(header, "size=") == NULL)
        g_assert_cmpuint(h.size, ==, DEFAULT_SIZE);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    const char *nl;
    char *header;

    if (size > FUZZ_MAX_INPUT)
        return -1;
    /* As crt_send_write() cuts the header from the payload. */
    nl = memchr(buf, '\n', size);
    header = g_strndup(buf, nl ? (size_t)(nl - buf) : size);
    g_strstrip(header);
    if (strcmp(header, "cancel") != 0 || (nl != NULL && nl + 1 != buf + size))
        check_header(header);
    g_free(header);
    return 0;
}
