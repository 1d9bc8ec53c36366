/* crtfs tests - a strict reader of records.jsonl lines as crtfs writes
 * them (daemon/jsonl.h): the keys in their order, nothing else on the
 * line, every escape one the encoder makes.  Shared by test-jsonl and the
 * fuzz harness fuzz/fuzz-jsonl.c; general parsers (jq, Python's json) are
 * the mounted test's.
 */
#ifndef CRTFS_JSONL_READ_H
#define CRTFS_JSONL_READ_H

#include <glib.h>

typedef struct {
    guint64 seq;
    char time[40]; /* as written */
    gint64 mono_ns;
    char status[64];
    size_t length;
    gboolean has_payload; /* a text or base64 key */
    gboolean base64;
    GByteArray *payload; /* the bytes decoded, NULL without a payload key */
} JsonlLine;

/* Take the line `len` bytes at `s` (its newline included) apart into *out;
 * NULL, or what is wrong (newly allocated; *out then holds nothing). */
char *jsonl_read_line(const char *s, size_t len, JsonlLine *out);
void jsonl_line_clear(JsonlLine *l);

#endif
