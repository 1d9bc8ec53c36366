/* crtfs - the message framer and the text form of a split (see framer.h
 * and crtfs/target.h).  Pure functions: the fd driver owns the timing. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <crtfs/error.h>

#include "framer.h"

#define SPLIT_IDLE_MAX_US (60u * 1000000u)
#define SPLIT_CHAR_MAX_TENTHS 10000u
#define SPLIT_LENGTH_MAX (1024u * 1024u * 1024u)

/* ---- the state machine ------------------------------------------------ */

void crt_framer_start(CrtFramer *f, const CrtSplit *split, size_t cap)
{
    f->split = *split;
    f->max = MAX(cap, 1);
    if (split->mode != CRT_SPLIT_NONE && split->max_size && split->max_size < f->max)
        f->max = split->max_size;
    f->scanned = 0;
}

/* Where a delimiter ends in the message, searching only what can hold one
 * that was not there at the last feed (it may straddle the two). */
static size_t delim_end(const CrtFramer *f, const guint8 *msg, size_t len)
{
    const CrtSplit *s = &f->split;
    size_t from = f->scanned >= s->delim_len - 1 ? f->scanned - (s->delim_len - 1) : 0;
    const guint8 *at;

    if (s->delim_len == 0 || len < s->delim_len || len - from < s->delim_len)
        return 0;
    at = memmem(msg + from, len - from, s->delim, s->delim_len);
    return at ? (size_t)(at - msg) + s->delim_len : 0;
}

CrtFrameVerdict crt_framer_feed(CrtFramer *f, const guint8 *msg, size_t len, size_t *end)
{
    const CrtSplit *s = &f->split;
    size_t e = 0;

    *end = 0;
    switch (s->mode) {
    case CRT_SPLIT_NONE:
        /* Whatever arrived is the read, as without framing. */
        *end = MIN(len, f->max);
        return len > 0 ? CRT_FRAME_END : CRT_FRAME_MORE;
    case CRT_SPLIT_DELIM:
        e = delim_end(f, msg, len);
        break;
    case CRT_SPLIT_LENGTH:
        e = len >= s->length ? s->length : 0;
        break;
    case CRT_SPLIT_IDLE:
        break; /* only silence ends it: the driver's timer */
    }
    f->scanned = len;
    if (e > 0 && e <= f->max) {
        *end = e;
        return CRT_FRAME_END;
    }
    if (len >= f->max) {
        *end = f->max;
        return CRT_FRAME_CUT_SIZE;
    }
    return CRT_FRAME_MORE;
}

gint64 crt_framer_idle_us(const CrtSplit *split, guint baud, guint char_bits)
{
    gint64 us;

    if (split->mode != CRT_SPLIT_IDLE)
        return 0;
    if (split->idle_us > 0) {
        us = split->idle_us;
    } else {
        baud = baud ? baud : 9600;
        char_bits = char_bits ? char_bits : 10;
        /* tenths of characters of char_bits bits at baud bits/s, rounded up */
        us = ((gint64)split->idle_tenths * char_bits * 100000 + baud - 1) / baud;
    }
    return MAX(us, (gint64)CRT_SPLIT_IDLE_FLOOR_US);
}

gint64 crt_framer_wait_us(const CrtSplit *split)
{
    return (gint64)(split->max_wait_ms ? split->max_wait_ms : CRT_SPLIT_DEFAULT_WAIT_MS) *
           1000;
}

/* ---- the text form ---------------------------------------------------- */

/* Fails with `"TEXT" is not WHAT`, the way config values are refused. */
static int bad(GError **error, const char *text, const char *what)
{
    char *quoted = g_strescape(text, NULL);

    crt_set_error(error, EINVAL, "\"%s\" is not %s", quoted, what);
    g_free(quoted);
    return -EINVAL;
}

/* "3.5" (at most one decimal) in tenths, or FALSE. */
static gboolean parse_tenths(const char *s, size_t n, guint64 *out)
{
    guint64 whole = 0;
    size_t i = 0;

    if (n == 0 || !g_ascii_isdigit(s[0]))
        return FALSE;
    for (; i < n && g_ascii_isdigit(s[i]); i++) {
        whole = whole * 10 + (guint64)(s[i] - '0');
        if (whole > SPLIT_CHAR_MAX_TENTHS)
            return FALSE;
    }
    whole *= 10;
    if (i < n && s[i] == '.' && i + 2 == n && g_ascii_isdigit(s[i + 1]))
        whole += (guint64)(s[i + 1] - '0');
    else if (i != n)
        return FALSE;
    if (whole > SPLIT_CHAR_MAX_TENTHS)
        return FALSE;
    *out = whole;
    return TRUE;
}

static int parse_idle(const char *text, CrtSplit *s, GError **error)
{
    static const struct {
        const char *unit;
        guint64 us;
    } units[] = {{"us", 1}, {"ms", 1000}, {"s", 1000000}};
    const char *v = text + 5; /* after idle= */
    size_t digits = strspn(v, "0123456789.");
    guint64 n;

    if (g_str_has_suffix(v, "char")) {
        if (!parse_tenths(v, strlen(v) - 4, &n) || n == 0)
            return bad(error, text,
                       "an idle gap of 0.1 to 1000 characters with at most one decimal "
                       "(e.g. idle=3.5char)");
        s->idle_tenths = (guint)n;
        s->idle_us = 0;
        return 0;
    }
    for (size_t i = 0; digits > 0 && i < G_N_ELEMENTS(units); i++) {
        char *num;
        gboolean ok;

        if (strcmp(v + digits, units[i].unit) != 0)
            continue;
        num = g_strndup(v, digits);
        ok = g_ascii_string_to_unsigned(num, 10, 1, G_MAXUINT32, &n, NULL);
        g_free(num);
        if (ok && n * units[i].us >= CRT_SPLIT_IDLE_FLOOR_US &&
            n * units[i].us <= SPLIT_IDLE_MAX_US) {
            s->idle_us = (guint)(n * units[i].us);
            s->idle_tenths = 0;
            return 0;
        }
        break;
    }
    return bad(error, text,
               "an idle gap from 1ms to 60s (a whole number with us, ms or s; timers are "
               "millisecond-granular) or in characters (e.g. idle=20ms, idle=3.5char)");
}

/* "0x7e", "0x0d0a": hex bytes. */
static gboolean parse_hex_delim(const char *v, CrtSplit *s)
{
    size_t n = strlen(v + 2);

    if (n == 0 || n % 2 || n / 2 > CRT_SPLIT_DELIM_MAX)
        return FALSE;
    for (size_t i = 0; i < n; i += 2) {
        int hi = g_ascii_xdigit_value(v[2 + i]), lo = g_ascii_xdigit_value(v[3 + i]);

        if (hi < 0 || lo < 0)
            return FALSE;
        s->delim[i / 2] = (guint8)(hi << 4 | lo);
    }
    s->delim_len = (guint)(n / 2);
    return TRUE;
}

/* One escape at *p (after the backslash): its byte, or -1. */
static int unescape(const char **p)
{
    const char *c = *p;
    int hi, lo;

    *p = c + 1;
    switch (*c) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case '0':
        return 0;
    case '\\':
        return '\\';
    case 'x':
        hi = g_ascii_xdigit_value(c[1]);
        lo = hi >= 0 ? g_ascii_xdigit_value(c[2]) : -1;
        if (lo < 0)
            return -1;
        *p = c + 3;
        return hi << 4 | lo;
    }
    return -1;
}

static int parse_delim(const char *text, CrtSplit *s, GError **error)
{
    const char *v = text + 6; /* after delim= */
    CrtSplit d = *s;
    const char *p = v;

    if ((v[0] == '0' && (v[1] == 'x' || v[1] == 'X'))) {
        if (parse_hex_delim(v, &d)) {
            *s = d;
            return 0;
        }
        return bad(error, text,
                   "a delimiter of 1 to 16 bytes in hex (e.g. 0x7e, 0x0d0a)");
    }
    d.delim_len = 0;
    while (*p) {
        int b = *p == '\\' ? (p++, unescape(&p)) : (guint8)*p++;

        if (b < 0)
            return bad(error, text,
                       "a delimiter: the escapes are \\n \\r \\t \\0 \\\\ and \\xHH");
        if (d.delim_len == CRT_SPLIT_DELIM_MAX)
            return bad(error, text, "a delimiter of at most 16 bytes");
        d.delim[d.delim_len++] = (guint8)b;
    }
    if (d.delim_len == 0)
        return bad(error, text, "a delimiter: it is empty (e.g. delim=\\n)");
    *s = d;
    return 0;
}

int crt_split_parse(const char *text, CrtSplit *out, GError **error)
{
    CrtSplit s;
    guint64 n;
    int r = 0;
    char *t;

    g_return_val_if_fail(out != NULL, -EINVAL);
    t = g_strstrip(g_strdup(text ? text : ""));
    memset(&s, 0, sizeof s);
    s.max_size = out->max_size;
    s.max_wait_ms = out->max_wait_ms;
    if (strcmp(t, "none") == 0) {
        s.mode = CRT_SPLIT_NONE;
    } else if (g_str_has_prefix(t, "idle=")) {
        s.mode = CRT_SPLIT_IDLE;
        r = parse_idle(t, &s, error);
    } else if (g_str_has_prefix(t, "delim=")) {
        s.mode = CRT_SPLIT_DELIM;
        r = parse_delim(t, &s, error);
    } else if (g_str_has_prefix(t, "length=")) {
        s.mode = CRT_SPLIT_LENGTH;
        if (g_ascii_string_to_unsigned(t + 7, 10, 1, SPLIT_LENGTH_MAX, &n, NULL))
            s.length = (guint)n;
        else
            r = bad(error, t, "a length from 1 to 1073741824 bytes");
    } else {
        r = bad(error, t,
                "a split (none, idle=DURATION, idle=Nchar, delim=BYTES or length=N)");
    }
    g_free(t);
    if (r == 0)
        *out = s;
    return r;
}

static void append_delim(GString *out, const CrtSplit *s)
{
    for (guint i = 0; i < s->delim_len; i++) {
        guint8 b = s->delim[i];

        if (b == '\n')
            g_string_append(out, "\\n");
        else if (b == '\r')
            g_string_append(out, "\\r");
        else if (b == '\t')
            g_string_append(out, "\\t");
        else if (b == '\\')
            g_string_append(out, "\\\\");
        else if (b > ' ' && b < 0x7f) /* a blank would be trimmed away */
            g_string_append_c(out, (char)b);
        else
            g_string_append_printf(out, "\\x%02x", b);
    }
}

char *crt_split_to_string(const CrtSplit *split)
{
    GString *out = g_string_new(NULL);

    g_return_val_if_fail(split != NULL, NULL);
    switch (split->mode) {
    case CRT_SPLIT_NONE:
        g_string_append(out, "none");
        break;
    case CRT_SPLIT_IDLE:
        if (split->idle_us == 0 && split->idle_tenths % 10 == 0)
            g_string_append_printf(out, "idle=%uchar", split->idle_tenths / 10);
        else if (split->idle_us == 0)
            g_string_append_printf(out, "idle=%u.%uchar", split->idle_tenths / 10,
                                   split->idle_tenths % 10);
        else if (split->idle_us % 1000000 == 0)
            g_string_append_printf(out, "idle=%us", split->idle_us / 1000000);
        else if (split->idle_us % 1000 == 0)
            g_string_append_printf(out, "idle=%ums", split->idle_us / 1000);
        else
            g_string_append_printf(out, "idle=%uus", split->idle_us);
        break;
    case CRT_SPLIT_DELIM:
        g_string_append(out, "delim=");
        append_delim(out, split);
        break;
    case CRT_SPLIT_LENGTH:
        g_string_append_printf(out, "length=%u", split->length);
        break;
    }
    return g_string_free(out, FALSE);
}
