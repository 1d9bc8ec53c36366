/* crtfs - one entry of a target's stream as a line of JSON, for
 * `records.jsonl` (log shippers: Vector, Fluent Bit, Promtail, jq).
 *
 *   {"seq":17,"time":"2026-12-03T17:40:01.123456789Z","mono_ns":123456789012,
 *    "status":"ok","length":5,"text":"hello"}
 *
 * Keys always in this order.  `text` holds the payload when it is valid
 * UTF-8 (NUL bytes included), JSON-escaped; otherwise `base64` holds it
 * (RFC 4648, padded).  Entries of length 0 (errors, losses and returns of
 * `wait` targets, line events) have neither key.
 *
 * Pure functions: no lock, no allocation but the GString's, any thread.
 */
#ifndef CRTFS_JSONL_H
#define CRTFS_JSONL_H

#include <glib.h>

typedef struct {
    guint64 seq;
    gint64 time_ns;     /* CLOCK_REALTIME */
    gint64 mono_ns;     /* CLOCK_MONOTONIC */
    const char *status; /* the `records` STATUS word: "ok", "EIO", "line:cts=1" */
    const void *data;   /* `length` bytes, the caller's */
    size_t length;
} CrtJsonlEntry;

/* Whether `length` bytes at `data` go out as `text`: valid UTF-8, where NUL
 * bytes count as the character U+0000 they are (g_utf8_validate stops at
 * them). */
gboolean crt_jsonl_is_text(const void *data, size_t length);

/* Append `s` to `out` as the inside of a JSON string: '"' and '\\'
 * escaped, \b \f \n \r \t as such, the other bytes below 0x20 and 0x7f as
 * \u00XX, every other byte as it is (the caller has validated UTF-8). */
void crt_jsonl_escape(GString *out, const char *s, size_t length);

/* Append the RFC 3339 UTC form of a CLOCK_REALTIME time with nine digits
 * of nanoseconds ("2026-12-03T17:40:01.123456789Z"). */
void crt_jsonl_time(GString *out, gint64 time_ns);

/* Append one entry's line, newline included, to `out`.  Returns the bytes
 * appended. */
size_t crt_jsonl_append(GString *out, const CrtJsonlEntry *e);

#endif
