/* crtfs fuzzing - modem-line sequences: crt_line_seq_parse() on any text,
 * as one write to a `lines` file or an on_open/on_close value carries it.
 *
 * Promises checked: the answer is 0 or -EINVAL; -EINVAL comes with a
 * message that names the word ("word N \"...\": ") and leaves nothing to
 * free; a sequence that parses stays within its bounds (64 words, 10 s of
 * waits and breaks); the same answer without a GError.
 *
 * fuzz-sources: libcrtfs_a
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <gio/gio.h>

#include <crtfs/lines.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CrtLineSeq *seq = NULL;
    GError *error = NULL;
    char *text;
    int r;

    if (size > FUZZ_MAX_INPUT)
        return -1;
    text = fuzz_string(data, size);
    r = crt_line_seq_parse(text, &seq, &error);
    g_assert_true(r == 0 || r == -EINVAL);
    if (r == 0) {
        g_assert_no_error(error);
        g_assert_nonnull(seq);
        g_assert_cmpuint(crt_line_seq_words(seq), <=, CRT_LINE_SEQ_MAX_WORDS);
        g_assert_cmpuint(crt_line_seq_duration_ms(seq), <=, CRT_LINE_SEQ_MAX_MS);
        crt_line_seq_free(seq);
    } else {
        g_assert_null(seq);
        g_assert_nonnull(error);
        g_assert_true(g_str_has_prefix(error->message, "word "));
        g_clear_error(&error);
    }
    g_assert_cmpint(crt_line_seq_parse(text, &seq, NULL), ==, r);
    crt_line_seq_free(seq);
    g_free(text);
    return 0;
}
