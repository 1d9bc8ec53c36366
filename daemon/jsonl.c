/* crtfs - entries as lines of JSON (see jsonl.h). */
#include "config.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "jsonl.h"

gboolean crt_jsonl_is_text(const void *data, size_t length)
{
    const char *p = data, *end = p + length;

    while (p < end) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        const char *stop = nul ? nul : end;

        /* A NUL is a whole character: a sequence it cuts is invalid on
         * either side of it, as it would be at the end. */
        if (!g_utf8_validate_len(p, (gsize)(stop - p), NULL))
            return FALSE;
        p = nul ? nul + 1 : end;
    }
    return TRUE;
}

/* The escape of byte `c`, or NULL when it goes out as it is. */
static const char *short_escape(unsigned char c)
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        return NULL;
    }
}

static gboolean needs_escape(unsigned char c)
{
    return c < 0x20 || c == 0x7f || c == '"' || c == '\\';
}

void crt_jsonl_escape(GString *out, const char *s, size_t length)
{
    size_t run = 0; /* bytes from s[i - run] on that go out as they are */

    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc;

        if (!needs_escape(c)) {
            run++;
            continue;
        }
        g_string_append_len(out, s + i - run, (gssize)run);
        run = 0;
        esc = short_escape(c);
        if (esc)
            g_string_append(out, esc);
        else
            g_string_append_printf(out, "\\u%04x", c);
    }
    g_string_append_len(out, s + length - run, (gssize)run);
}

void crt_jsonl_time(GString *out, gint64 time_ns)
{
    /* Floor division: a time before 1970 still has nanoseconds 0..1e9-1. */
    gint64 sec = time_ns / 1000000000, nsec = time_ns % 1000000000;
    time_t t;
    struct tm tm;
    char day[32];

    if (nsec < 0) {
        nsec += 1000000000;
        sec--;
    }
    t = (time_t)sec;
    if (!gmtime_r(&t, &tm) || strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        g_strlcpy(day, "1970-01-01T00:00:00", sizeof day);
    g_string_append_printf(out, "%s.%09" PRId64 "Z", day, nsec);
}

/* Append `length` bytes as padded base64, without a copy in between. */
static void append_base64(GString *out, const void *data, size_t length)
{
    size_t at = out->len;
    gint state = 0, save = 0;
    gsize n;

    g_string_set_size(out, at + (length / 3 + 1) * 4 + 8); /* the step and close bounds */
    n = g_base64_encode_step(data, length, FALSE, out->str + at, &state, &save);
    n += g_base64_encode_close(FALSE, out->str + at + n, &state, &save);
    g_string_set_size(out, at + n);
}

size_t crt_jsonl_append(GString *out, const CrtJsonlEntry *e)
{
    size_t start = out->len;

    g_string_append_printf(out, "{\"seq\":%" G_GUINT64_FORMAT ",\"time\":\"", e->seq);
    crt_jsonl_time(out, e->time_ns);
    g_string_append_printf(out, "\",\"mono_ns\":%" G_GINT64_FORMAT ",\"status\":\"",
                           e->mono_ns);
    crt_jsonl_escape(out, e->status, strlen(e->status));
    g_string_append_printf(out, "\",\"length\":%zu", e->length);
    if (e->length > 0 && crt_jsonl_is_text(e->data, e->length)) {
        g_string_append(out, ",\"text\":\"");
        crt_jsonl_escape(out, e->data, e->length);
        g_string_append_c(out, '"');
    } else if (e->length > 0) {
        g_string_append(out, ",\"base64\":\"");
        append_base64(out, e->data, e->length);
        g_string_append_c(out, '"');
    }
    g_string_append(out, "}\n");
    return out->len - start;
}
