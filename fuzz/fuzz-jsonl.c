/* crtfs fuzzing - records.jsonl lines: crt_jsonl_append() of
 * daemon/jsonl.c.
 *
 * The input is one entry: its first 8 bytes the CLOCK_REALTIME time (any
 * value, before 1970 and beyond year 9999 too), the rest its payload.  The
 * line is read back with the strict reader the unit tests use
 * (tests/unit/jsonl-read.c).
 *
 * Promises checked: one line, valid UTF-8 with no NUL and no raw control
 * byte but its final newline; the keys in their order; the payload
 * decodes (text or base64) to exactly the input's bytes, as text exactly
 * when they are UTF-8; length, seq and status as given.
 *
 * fuzz-sources: libcrtfs_a libcrtfsd_a tests_unit_test_jsonl -tests/unit/test-jsonl.c
 */
#include "config.h"

#include <string.h>

#include "jsonl.h"

#include "../tests/unit/jsonl-read.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gint64 time_ns = 0;
    CrtJsonlEntry e = {G_MAXUINT64, 0, G_MININT64, "line:framing+3", NULL, 0};
    GString *s;
    JsonlLine l;
    char *problem;

    if (size > FUZZ_MAX_INPUT)
        return -1;
    if (size >= sizeof time_ns) {
        memcpy(&time_ns, data, sizeof time_ns);
        data += sizeof time_ns;
        size -= sizeof time_ns;
    }
    e.time_ns = time_ns;
    e.data = data;
    e.length = size;
    s = g_string_new(NULL);
    g_assert_cmpuint(crt_jsonl_append(s, &e), ==, s->len);
    g_assert_true(g_utf8_validate_len(s->str, s->len, NULL));
    for (size_t i = 0; i + 1 < s->len; i++)
        g_assert_true((unsigned char)s->str[i] >= 0x20 && s->str[i] != 0x7f);
    problem = jsonl_read_line(s->str, s->len, &l);
    if (problem)
        g_error("%s in %s", problem, s->str);
    g_assert_cmpuint(l.seq, ==, G_MAXUINT64);
    g_assert_cmpint(l.mono_ns, ==, G_MININT64);
    g_assert_cmpstr(l.status, ==, "line:framing+3");
    g_assert_cmpuint(l.length, ==, size);
    g_assert_true(l.has_payload == (size > 0));
    if (size > 0) {
        g_assert_true(l.base64 == !crt_jsonl_is_text(data, size));
        g_assert_cmpmem(l.payload->data, l.payload->len, data, size);
    }
    jsonl_line_clear(&l);
    g_string_free(s, TRUE);
    return 0;
}
