/* crtfs - the `send` header line (send-header.h). */
#include "config.h"

#include <errno.h>

#include "send-header.h"
#include <crtfs/error.h>

/* An ioctl code: decimal or 0x hexadecimal, 32 bits. */
static int parse_code(const char *s, guint64 *out)
{
    gboolean hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');

    return g_ascii_string_to_unsigned(hex ? s + 2 : s, hex ? 16 : 10, 0, G_MAXUINT32, out,
                                      NULL)
               ? 0
               : -1;
}

/* One word after the type: 0, or -1 when it is not one the header knows. */
static int parse_word(const char *w, CrtSendHeader *h)
{
    if (g_str_has_prefix(w, "ioctl="))
        return parse_code(w + 6, &h->ioctl);
    if (g_str_has_prefix(w, "timeout="))
        return g_ascii_string_to_unsigned(w + 8, 10, 0, G_MAXUINT32, &h->timeout, NULL)
                   ? 0
                   : -1;
    if (g_str_has_prefix(w, "payload=")) {
        h->has_len = TRUE;
        return g_ascii_string_to_unsigned(w + 8, 10, 0, CRT_SEND_MAX_RESPONSE, &h->len, NULL)
                   ? 0
                   : -1;
    }
    if (g_str_has_prefix(w, "size="))
        return g_ascii_string_to_unsigned(w + 5, 10, 0, CRT_SEND_MAX_RESPONSE, &h->size,
                                          NULL)
                   ? 0
                   : -1;
    return -1;
}

int crt_send_header_parse(const char *line, size_t default_size, CrtSendHeader *h,
                          GError **error)
{
    char **words = g_strsplit_set(line, " \t", -1);
    int r = 0;

    *h = (CrtSendHeader){.type = CRT_REQUEST_INVALID, .size = default_size};
    for (guint i = 0; r == 0 && words[i]; i++) {
        const char *w = words[i];

        if (!*w)
            continue;
        if (i == 0 && crt_request_type_from_string(w, &h->type) == 0)
            continue;
        if (i == 0)
            r = crt_set_error(
                error, EINVAL,
                "send: unknown request type \"%.64s\" (read, write, ioctl or "
                "internal-ioctl)",
                w);
        else if (parse_word(w, h) < 0)
            r = crt_set_error(error, EINVAL,
                              "send: bad header word \"%.64s\" (expected ioctl=CODE, "
                              "timeout=MS, size=BYTES or payload=BYTES up to %zu)",
                              w, CRT_SEND_MAX_RESPONSE);
    }
    g_strfreev(words);
    if (r == 0 && h->type == CRT_REQUEST_INVALID)
        r = crt_set_error(error, EINVAL, "send: the header names no request type");
    return r;
}
