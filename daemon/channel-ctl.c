/* crtfs - the `ctl` file's words on top of the typed control operations
 * (channel.h).  Nothing but parsing lives here. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "channel-private.h"

static int ctl_stop(CrtChannel *ch, GError **error)
{
    return crt_channel_stop(ch, FALSE, error);
}

static int ctl_stop_wait(CrtChannel *ch, GError **error)
{
    return crt_channel_stop(ch, TRUE, error);
}

/* An unknown word (a channel being removed says so first). */
static int reject_locked(CrtChannel *ch, gconstpointer cmd, GError **error)
{
    return crt_channel_failf(ch, error, EINVAL,
                             "unknown command \"%s\" (expected start, stop, stop-wait, "
                             "suspend or resume)",
                             (const char *)cmd);
}

static const struct {
    const char *word;
    int (*op)(CrtChannel *ch, GError **error);
} ctl_words[] = {
    {"start", crt_channel_start},   {"stop", ctl_stop},
    {"stop-wait", ctl_stop_wait},   {"suspend", crt_channel_suspend},
    {"resume", crt_channel_resume},
};

int crt_channel_ctl(CrtChannel *ch, const char *line, GError **error)
{
    char *cmd = g_strstrip(g_strdup(line));
    int r = -EINVAL;
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(ctl_words); i++) {
        if (strcmp(cmd, ctl_words[i].word) == 0)
            break;
    }
    if (i < G_N_ELEMENTS(ctl_words))
        r = ctl_words[i].op(ch, error);
    else
        r = crt_channel_control(ch, reject_locked, cmd, NULL, error);
    g_free(cmd);
    return r;
}
