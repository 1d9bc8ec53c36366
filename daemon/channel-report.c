/* crtfs - what a target directory reports: `state` and `stats`
 * (channel.h).  Readers only: now.lock and the log's, never ctl.lock, so a
 * slow control operation does not hold up `cat state`. */
#include "config.h"

#include <string.h>

#include "channel-private.h"

/* A g_get_real_time figure as local ISO 8601 with the offset, to the
 * millisecond ("2026-12-03T12:00:01.250+00:00"). */
char *crt_channel_time_text(gint64 us)
{
    GDateTime *t = g_date_time_new_from_unix_local(us / G_USEC_PER_SEC);
    char *day = g_date_time_format(t, "%FT%T"), *zone = g_date_time_format(t, "%:z");
    char *s = g_strdup_printf("%s.%03d%s", day, (int)(us % G_USEC_PER_SEC / 1000), zone);

    g_free(day);
    g_free(zone);
    g_date_time_unref(t);
    return s;
}

/* The `keep:` line: the policy in force, and for auto why.  now.lock
 * held. */
static char *keep_text_unlocked(CrtChannel *ch)
{
    CrtKeep k = crt_channel_keep_unlocked(ch);
    char *word = crt_keep_to_string(&k), *s;

    if (ch->now.keep.mode != CRT_KEEP_AUTO)
        return word;
    s = g_strdup_printf("%s (auto: %s)", word,
                        !ch->now.target       ? "no target"
                        : ch->now.target_live ? "a live source"
                                              : "not a live source");
    g_free(word);
    return s;
}

char *crt_channel_state_text(CrtChannel *ch)
{
    CrtEngineState st = crt_channel_state(ch);
    char *s, *keep, *presence = NULL;

    gint64 when;
    char *error = crt_channel_log_error(&ch->log, &when);
    char *at = error ? crt_channel_time_text(when) : g_strdup("none");

    g_mutex_lock(&ch->now.lock);
    /* `wait` targets say whether they are there, since when, and why not;
     * the others whether their stream ended by itself. */
    crt_channel_presence_unlocked(ch, &presence);
    keep = keep_text_unlocked(ch);
    s = g_strdup_printf("%s\ntarget: %s\npresence: %s\nmode: %s\ntype: %s\nerror: %s\n"
                        "error_at: %s\nkeep: %s\n",
                        crt_engine_state_to_string(st),
                        ch->now.target_text ? ch->now.target_text : "none", presence,
                        crt_mode_to_string(ch->now.mode),
                        crt_request_type_to_string(ch->now.type), error ? error : "none",
                        at, keep);
    g_free(keep);
    g_free(at);
    g_mutex_unlock(&ch->now.lock);
    g_free(presence);
    g_free(error);
    return s;
}

guint crt_channel_stats(CrtChannel *ch, CrtStat *out)
{
    CrtEngineStats st = {0};
    CrtHubStats hs;
    CrtTargetCounters tc = {0};
    guint n = 0;

    g_mutex_lock(&ch->now.lock);
    if (ch->now.engine)
        crt_engine_get_stats(ch->now.engine, &st);
    crt_channel_add_stats(&st, &ch->now.base);
    if (ch->now.target)
        crt_target_get_counters(ch->now.target, &tc);
    g_mutex_unlock(&ch->now.lock);
    crt_hub_get_stats(ch->hub, &hs);
#define STAT(k, v, c, h) out[n++] = (CrtStat){k, (guint64)(v), c, h}
    STAT("requests_in_flight", st.requests_in_flight, FALSE,
         "Requests at the target now.");
    STAT("completed", st.completed, TRUE, "Streaming requests completed.");
    STAT("failed", st.failed, TRUE, "Completions with an error status.");
    STAT("cancelled", st.cancelled, TRUE, "Requests cancelled.");
    STAT("bytes_read", st.bytes_read, TRUE, "Bytes read from the target.");
    STAT("bytes_written", st.bytes_written, TRUE, "Bytes written to the target.");
    STAT("buffers_queued", hs.queued, FALSE, "Buffers held for readers now.");
    STAT("buffers_delivered", hs.delivered, TRUE, "Buffers read, summed over readers.");
    STAT("buffers_dropped", hs.dropped, TRUE, "Buffers dropped for a reader.");
    STAT("buffers_discarded", hs.discarded, TRUE,
         "Buffers not kept while nobody read (keep).");
    STAT("out_pool_free", st.out_pool_free, FALSE, "Free output buffers.");
    STAT("out_pool_size", st.out_pool_size, FALSE, "Output buffers in the pool.");
    STAT("readers", hs.readers, FALSE,
         "Open readers of data, records and records.jsonl.");
    STAT("readers_jsonl", hs.readers_jsonl, FALSE, "Open readers of records.jsonl.");
    STAT("jsonl_bytes", hs.jsonl_bytes, TRUE,
         "Bytes of records.jsonl handed out, summed over readers.");
    /* the numbers `records` shows */
    STAT("last_seq", hs.last_seq, FALSE, "Sequence number of the newest buffer.");
    STAT("history_entries", hs.history_entries, FALSE,
         "Entries the history holds for replays (history).");
    STAT("history_bytes", hs.history_bytes, FALSE,
         "Bytes the history holds, entries and bookkeeping (history_bytes).");
    STAT("replays", hs.replays, TRUE, "Readers opened with a replay (data@N ...).");
    STAT("slots_waiting", st.slots_waiting, FALSE, "Requests waiting for a buffer.");
    STAT("sends", st.sends, TRUE, "Single requests sent.");
    STAT("messages", tc.messages, TRUE, "Messages framed by split (one buffer each).");
    STAT("messages_cut_size", tc.messages_cut_size, TRUE,
         "Messages ended by split_max before their end.");
    STAT("messages_cut_wait", tc.messages_cut_wait, TRUE,
         "Messages ended by split_wait before their end.");
    if (tc.has_icount) {
        STAT("tty_overruns", tc.overruns, TRUE, "UART and buffer overruns.");
        STAT("tty_framing", tc.framing, TRUE, "UART framing errors.");
        STAT("tty_parity", tc.parity, TRUE, "UART parity errors.");
        STAT("tty_breaks", tc.breaks, TRUE, "Breaks received.");
    }
    if (tc.comes_and_goes) {
        STAT("target_losses", tc.losses, TRUE, "Times the target went away (wait).");
        STAT("target_returns", tc.returns, TRUE, "Times the target came back (wait).");
    }
    crt_channel_lines_stats(ch, out, &n);
#undef STAT
    g_assert(n <= CRT_STATS_MAX);
    return n;
}

char *crt_channel_stats_text(CrtChannel *ch)
{
    CrtStat st[CRT_STATS_MAX];
    guint n = crt_channel_stats(ch, st);
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < n; i++)
        g_string_append_printf(s, "%s %" G_GUINT64_FORMAT "\n", st[i].name, st[i].value);
    return g_string_free(s, FALSE);
}
