/* crtfs fuzzing - the `ctl` file: crt_channel_ctl() and its dispatch in
 * daemon/channel.c, on a channel without a target.
 *
 * The input is one write to `ctl`, refused before the channel sees it when
 * the filesystem would refuse it (a NUL byte; the 64 KiB cap).  Without a
 * target no engine, loop or thread is ever made, so each input runs alone
 * on a fresh channel; streaming state changes are the unit tests' business
 * (tests/unit/test-channel.c).
 *
 * Promises checked: stop and stop-wait (blanks and one newline around them
 * allowed) succeed; start, suspend and resume need a target (-ENOTCONN);
 * anything else is -EINVAL; every failure has a message, and `state` stays
 * its six lines with the message on the `error:` line.
 *
 * fuzz-sources: libcrtfs_a libcrtfsd_a
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <gio/gio.h>

#include "channel.h"
#include "fuzz.h"

/* The lines `state` always has: the state word, target, presence, mode,
 * type and error. */
#define STATE_LINES 6

static int expected_result(const char *text)
{
    char *cmd = g_strstrip(g_strdup(text));
    int r = -EINVAL;

    if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "stop-wait") == 0)
        r = 0;
    else if (strcmp(cmd, "start") == 0 || strcmp(cmd, "suspend") == 0 ||
             strcmp(cmd, "resume") == 0)
        r = -ENOTCONN;
    g_free(cmd);
    return r;
}

static void check_state(CrtChannel *ch, const GError *error)
{
    char *state = crt_channel_state_text(ch);
    char **lines = g_strsplit(state, "\n", -1);

    g_assert_true(g_str_has_suffix(state, "\n"));
    g_assert_cmpuint(g_strv_length(lines), ==, STATE_LINES + 1);
    g_assert_cmpstr(lines[0], ==, "stopped");
    g_assert_cmpstr(lines[1], ==, "target: none");
    g_assert_true(g_str_has_prefix(lines[5], "error: "));
    if (error != NULL)
        g_assert_cmpstr(lines[5] + strlen("error: "), ==, error->message);
    g_strfreev(lines);
    g_free(state);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CrtChannel *ch;
    GError *error = NULL;
    char *text;
    int r;

    /* The filesystem answers these itself (EFBIG, EINVAL). */
    if (size > FUZZ_MAX_INPUT || memchr(data, '\0', size) != NULL)
        return -1;
    text = fuzz_string(data, size);
    ch = crt_channel_new("fuzz", NULL, NULL, NULL);
    r = crt_channel_ctl(ch, text, &error);
    g_assert_cmpint(r, ==, expected_result(text));
    if (r < 0) {
        g_assert_nonnull(error);
        g_assert_cmpstr(error->message, !=, "");
    } else {
        g_assert_no_error(error);
    }
    check_state(ch, error);
    g_clear_error(&error);
    crt_channel_free(ch);
    g_free(text);
    return 0;
}
