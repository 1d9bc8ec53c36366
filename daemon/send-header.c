/* crtfs - the `send` header line (send-header.h). */
#include "config.h"

#include <errno.h>
#include <string.h>

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

/* until=TEXT: \n \r \t \\ and \xNN escapes, 1 to 16 bytes. */
static int parse_until(const char *s, CrtSendEnd *end)
{
    guint n = 0;

    for (const char *p = s; *p; p++) {
        int c = (guchar)*p;

        if (n == sizeof end->until)
            return -1;
        if (c == '\\') {
            char next = *++p;

            if (next == 'n' || next == 'r' || next == 't' || next == '\\')
                c = next == 'n' ? '\n' : next == 'r' ? '\r' : next == 't' ? '\t' : '\\';
            else if (next == 'x' && g_ascii_isxdigit(p[1]) && g_ascii_isxdigit(p[2])) {
                c = g_ascii_xdigit_value(p[1]) * 16 + g_ascii_xdigit_value(p[2]);
                p += 2;
            } else
                return -1;
        }
        end->until[n++] = (guint8)c;
    }
    end->until_len = n;
    return n ? 0 : -1;
}

/* gap=DURATION: NNNms or NNNs, at most 60 s. */
static int parse_gap(const char *s, CrtSendEnd *end)
{
    gboolean ms = g_str_has_suffix(s, "ms");
    char *digits = g_strndup(s, strlen(s) - (ms ? 2 : g_str_has_suffix(s, "s") ? 1 : 0));
    guint64 v;
    int r = digits[0] && strlen(digits) < strlen(s) &&
                    g_ascii_string_to_unsigned(digits, 10, 1, ms ? 60000 : 60, &v, NULL)
                ? 0
                : -1;

    if (r == 0)
        end->gap_ms = (guint)(ms ? v : v * 1000);
    g_free(digits);
    return r;
}

/* len=OFFSET:WIDTH:ADJUST: a big-endian field of 1, 2 or 4 bytes. */
static int parse_len_field(const char *s, CrtSendEnd *end)
{
    char **f = g_strsplit(s, ":", -1);
    guint64 off, width;
    gint64 adj;
    int r = g_strv_length(f) == 3 &&
                    g_ascii_string_to_unsigned(f[0], 10, 0, 65535, &off, NULL) &&
                    g_ascii_string_to_unsigned(f[1], 10, 1, 4, &width, NULL) &&
                    width != 3 &&
                    g_ascii_string_to_signed(f[2], 10, -65535, 65535, &adj, NULL)
                ? 0
                : -1;

    if (r == 0) {
        end->len_offset = (guint)off;
        end->len_width = (guint)width;
        end->len_adjust = adj;
    }
    g_strfreev(f);
    return r;
}

/* An end-condition word: 0, 1 when `w` is none, -1 when it is bad. */
static int parse_end_word(const char *w, CrtSendHeader *h)
{
    guint64 v;
    int r = 1;

    if (g_str_has_prefix(w, "exact=")) {
        r = g_ascii_string_to_unsigned(w + 6, 10, 1, CRT_SEND_MAX_RESPONSE, &v, NULL)
                ? 0
                : -1;
        h->end.size = r == 0 ? (size_t)v : 0;
    } else if (g_str_has_prefix(w, "until="))
        r = parse_until(w + 6, &h->end);
    else if (g_str_has_prefix(w, "gap="))
        r = parse_gap(w + 4, &h->end);
    else if (g_str_has_prefix(w, "len="))
        r = parse_len_field(w + 4, &h->end);
    if (r == 0)
        h->has_end = TRUE;
    return r;
}

/* One word after the type: 0, or -1 when it is not one the header knows. */
static int parse_word(const char *w, CrtSendHeader *h)
{
    int end = parse_end_word(w, h);

    if (end <= 0)
        return end;
    if (g_str_has_prefix(w, "ioctl="))
        return parse_code(w + 6, &h->ioctl);
    if (g_str_has_prefix(w, "timeout="))
        return g_ascii_string_to_unsigned(w + 8, 10, 0, G_MAXUINT32, &h->timeout, NULL)
                   ? 0
                   : -1;
    if (g_str_has_prefix(w, "payload=")) {
        h->has_len = TRUE;
        return g_ascii_string_to_unsigned(w + 8, 10, 0, CRT_SEND_MAX_RESPONSE, &h->len,
                                          NULL)
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
                              "timeout=MS, size=BYTES or payload=BYTES up to %zu; for "
                              "internal-ioctl exact=BYTES, until=TEXT, gap=MS|S or "
                              "len=OFFSET:WIDTH:ADJUST)",
                              w, CRT_SEND_MAX_RESPONSE);
    }
    g_strfreev(words);
    if (r == 0 && h->type == CRT_REQUEST_INVALID)
        r = crt_set_error(error, EINVAL, "send: the header names no request type");
    if (r == 0 && h->has_end && h->type != CRT_REQUEST_INTERNAL_IOCTL)
        r = crt_set_error(error, EINVAL,
                          "send: exact=, until=, gap= and len= end the response of an "
                          "internal-ioctl only");
    if (r == 0 && h->end.size > h->size)
        h->size = h->end.size; /* room for exactly that response */
    return r;
}
