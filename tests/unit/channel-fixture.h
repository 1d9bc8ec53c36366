/* crtfs tests - one target directory without FUSE, as the channel test
 * programs (test-channel*.c) drive it: a channel with a counted notify
 * callback, its ctl/target/config calls that must work or must fail, and
 * readers of its `state`, `stats` and `records` text.
 *
 * The channel runs on the default loop and opens targets as the daemon
 * (NULL credentials); every target here is the simulator.
 */
#ifndef CRTFS_CHANNEL_FIXTURE_H
#define CRTFS_CHANNEL_FIXTURE_H

#include <crtfs/crtfs.h>

#include "channel.h"
#include "channel-private.h"
#include "testutil.h"

G_BEGIN_DECLS

/* ---- a channel and its notify callback ------------------------------------- */

typedef struct {
    CrtChannel *ch;
    TuCounter notified;
} Chan;

/* A channel named "test" without a target, its notify calls counted. */
void chan_open(Chan *c);
void chan_close(Chan *c);
/* The command succeeds, without a GError. */
void ctl_ok(Chan *c, const char *line);
/* The command fails with `err`, with a GError and an error line. */
void ctl_fails(Chan *c, const char *line, int err);
/* Setting the target (as the daemon, NULL credentials) succeeds. */
void target_ok(Chan *c, const char *spec);
/* Setting `key` of config/ to `value` succeeds. */
void config_ok(Chan *c, const char *key, const char *value);
/* config/`key` reads back as `shown`. */
void assert_config(Chan *c, const char *key, const char *shown);
/* The value of the `key: value` line of `state`, or NULL. */
char *state_line(Chan *c, const char *key);
/* The first line of `state`. */
char *state_word(Chan *c);

#define ASSERT_STATE(c, word)                                                            \
    do {                                                                                 \
        char *state_word_ = state_word(c);                                               \
        g_assert_cmpstr(state_word_, ==, (word));                                        \
        g_free(state_word_);                                                             \
    } while (0)

/* The first line of `state` is `word` (for TU_WAIT_FOR). */
gboolean state_is(Chan *c, const char *word);

/* The `error:` line contains `needle`. */
#define ASSERT_ERROR_LINE(c, needle)                                                     \
    do {                                                                                 \
        char *error_line_ = state_line((c), "error");                                    \
        g_assert_nonnull(error_line_);                                                   \
        if (!strstr(error_line_, (needle)))                                              \
            g_assert_cmpstr(error_line_, ==, (needle));                                  \
        g_free(error_line_);                                                             \
    } while (0)

/* The number on the `key value` line of `stats`; fails if it is missing. */
guint64 stat_of(Chan *c, const char *key);

/* ---- records of the channel's hub ------------------------------------------ */

typedef struct {
    guint64 seq;
    char status[32];
    size_t length;
} Rec;

/* Read the channel's `records` until `want` records came (or the stream
 * ended); each header is checked, each payload skipped. */
GArray *read_records(Chan *c, CrtHubReader *r, guint want);
const Rec *rec_at(GArray *recs, guint i);

G_END_DECLS

#endif
