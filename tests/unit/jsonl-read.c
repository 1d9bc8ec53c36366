/* crtfs tests - a strict reader of records.jsonl lines (jsonl-read.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "jsonl-read.h"

typedef struct {
    const char *start, *p, *end;
    char *error;
} Cursor;

static gboolean fail(Cursor *c, const char *what)
{
    if (!c->error)
        c->error = g_strdup_printf("%s at byte %td", what, c->p - c->start);
    return FALSE;
}

static gboolean expect(Cursor *c, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) {
        if (!c->error)
            c->error = g_strdup_printf("expected '%s' at \"%.*s\"", lit,
                                       (int)MIN(c->end - c->p, 40), c->p);
        return FALSE;
    }
    c->p += n;
    return TRUE;
}

/* A JSON integer: *u for an unsigned one (sign FALSE), else *v. */
static gboolean number(Cursor *c, gboolean sign, gint64 *v, guint64 *u)
{
    char buf[24];
    size_t n = 0;
    gboolean neg = sign && c->p < c->end && *c->p == '-';

    while (c->p + n < c->end && n < sizeof buf - 1 &&
           (g_ascii_isdigit(c->p[n]) || (neg && n == 0)))
        n++;
    if (n == (size_t)neg || (n > (size_t)neg + 1 && c->p[neg] == '0'))
        return fail(c, "not a JSON integer");
    memcpy(buf, c->p, n);
    buf[n] = '\0';
    errno = 0;
    if (sign)
        *v = g_ascii_strtoll(buf, NULL, 10);
    else
        *u = g_ascii_strtoull(buf, NULL, 10);
    if (errno)
        return fail(c, "an integer out of range");
    c->p += n;
    return TRUE;
}

/* The inside of a string up to its closing quote, unescaped into `out`. */
static gboolean string(Cursor *c, GByteArray *out)
{
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p++;
        const char *map = "\"\"\\\\b\bf\fn\nr\rt\t";
        const char *m;
        unsigned v;

        if (ch < 0x20 || ch == 0x7f)
            return fail(c, "a raw control byte in a string");
        if (ch != '\\') {
            g_byte_array_append(out, &ch, 1);
            continue;
        }
        if (c->p >= c->end)
            return fail(c, "a backslash at the end");
        ch = (unsigned char)*c->p++;
        if (ch == 'u') {
            if (c->end - c->p < 4 || sscanf(c->p, "%4x", &v) != 1 ||
                !g_ascii_isxdigit(c->p[3]))
                return fail(c, "a bad \\u escape");
            /* The encoder writes \u for the controls without a short
             * escape and for DEL, for nothing else. */
            if (!((v < 0x20 && !memchr("\b\f\n\r\t", (int)v, 5)) || v == 0x7f))
                return fail(c, "a \\u escape the encoder does not make");
            ch = (unsigned char)v;
            c->p += 4;
            g_byte_array_append(out, &ch, 1);
            continue;
        }
        for (m = map; *m && *m != (char)ch; m += 2)
            ;
        if (!*m)
            return fail(c, "an unknown escape");
        g_byte_array_append(out, (const guint8 *)m + 1, 1);
    }
    return expect(c, "\"");
}

/* A short string field into buf. */
static gboolean short_string(Cursor *c, char *buf, size_t cap)
{
    GByteArray *b = g_byte_array_new();
    gboolean ok = string(c, b) && b->len < cap;

    if (ok) {
        memcpy(buf, b->data, b->len);
        buf[b->len] = '\0';
    } else {
        fail(c, "a string too long");
    }
    g_byte_array_unref(b);
    return ok;
}

static gboolean payload(Cursor *c, JsonlLine *l)
{
    GByteArray *b = g_byte_array_new();

    l->payload = g_byte_array_new();
    l->has_payload = TRUE;
    if (c->end - c->p >= 10 && memcmp(c->p, ",\"base64\":", 10) == 0) {
        gsize n;
        guchar *raw;

        l->base64 = TRUE;
        expect(c, ",\"base64\":\"");
        if (!string(c, b)) {
            g_byte_array_unref(b);
            return FALSE;
        }
        g_byte_array_append(b, (const guint8 *)"", 1);
        for (guint i = 0; i + 1 < b->len; i++) {
            if (!g_ascii_isalnum(b->data[i]) && !strchr("+/=", b->data[i])) {
                g_byte_array_unref(b);
                return fail(c, "not base64");
            }
        }
        if ((b->len - 1) % 4 != 0) {
            g_byte_array_unref(b);
            return fail(c, "base64 not padded");
        }
        raw = g_base64_decode((const char *)b->data, &n);
        g_byte_array_append(l->payload, raw, (guint)n);
        g_free(raw);
        g_byte_array_unref(b);
        return TRUE;
    }
    g_byte_array_unref(b);
    if (!expect(c, ",\"text\":\""))
        return FALSE;
    if (!string(c, l->payload))
        return FALSE;
    /* Text is what was valid UTF-8 (NULs included). */
    for (guint i = 0, start = 0; i <= l->payload->len; i++) {
        if (i == l->payload->len || l->payload->data[i] == 0) {
            if (!g_utf8_validate_len((const char *)l->payload->data + start, i - start,
                                     NULL))
                return fail(c, "text that is not UTF-8");
            start = i + 1;
        }
    }
    return TRUE;
}

char *jsonl_read_line(const char *s, size_t len, JsonlLine *out)
{
    Cursor c = {s, s, s + len, NULL};
    guint64 seq = 0, length = 0;

    memset(out, 0, sizeof *out);
    if (len == 0 || s[len - 1] != '\n' || memchr(s, '\n', len - 1))
        return g_strdup("not one line ending in a newline");
    if (expect(&c, "{\"seq\":") && number(&c, FALSE, NULL, &seq) &&
        expect(&c, ",\"time\":\"") && short_string(&c, out->time, sizeof out->time) &&
        expect(&c, ",\"mono_ns\":") && number(&c, TRUE, &out->mono_ns, NULL) &&
        expect(&c, ",\"status\":\"") &&
        short_string(&c, out->status, sizeof out->status) && expect(&c, ",\"length\":") &&
        number(&c, FALSE, NULL, &length) && (*c.p == '}' || payload(&c, out)) &&
        expect(&c, "}\n") && c.p == c.end) {
        out->seq = seq;
        out->length = (size_t)length;
        if (out->has_payload && out->payload->len != out->length)
            c.error = g_strdup_printf("length %zu, payload of %u bytes", out->length,
                                      out->payload->len);
        else if (out->has_payload == (out->length == 0))
            c.error =
                g_strdup(out->length ? "no payload key" : "a payload key at length 0");
    }
    if (!c.error && c.p != c.end)
        c.error = g_strdup("bytes after the object");
    if (c.error)
        jsonl_line_clear(out);
    return c.error;
}

void jsonl_line_clear(JsonlLine *l)
{
    if (l->payload)
        g_byte_array_unref(l->payload);
    memset(l, 0, sizeof *l);
}
