/* crtfs - the `metrics` file (see metrics.h). */
#include "config.h"

#include <string.h>
#ifdef HAVE_MALLINFO2
#include <malloc.h>
#endif

#include "metrics.h"

/* A label value: backslash, double quote and newline escaped. */
static void append_label(GString *s, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            g_string_append(s, "\\\\");
        else if (*v == '"')
            g_string_append(s, "\\\"");
        else if (*v == '\n')
            g_string_append(s, "\\n");
        else
            g_string_append_c(s, *v);
    }
}

static void family(GString *s, const char *name, const char *type, const char *help)
{
    g_string_append_printf(s, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(GString *s, const char *name, CrtChannel *ch, const char *state,
                   guint64 value)
{
    g_string_append_printf(s, "%s{target=\"", name);
    append_label(s, crt_channel_name(ch));
    if (state)
        g_string_append_printf(s, "\",state=\"%s", state);
    g_string_append_printf(s, "\"} %" G_GUINT64_FORMAT "\n", value);
}

/* Where `name` is in st[0..n), or -1. */
static int find_stat(const CrtStat *st, guint n, const char *name)
{
    for (guint i = 0; i < n; i++) {
        if (strcmp(st[i].name, name) == 0)
            return (int)i;
    }
    return -1;
}

char *crt_metrics_text(CrtChannel *const *channels, guint n, guint removed,
                       const CrtReloadStatus *reload)
{
    static const CrtEngineState states[] = {CRT_STATE_STOPPED, CRT_STATE_STREAMING,
                                            CRT_STATE_STOPPING, CRT_STATE_SUSPENDED};
    CrtStat(*st)[CRT_STATS_MAX] = g_malloc0_n(MAX(n, 1), sizeof *st);
    guint *count = g_new0(guint, MAX(n, 1));
    GPtrArray *names = g_ptr_array_new(); /* the stat families, first seen first */
    GString *s = g_string_new(NULL);

    family(s, "crtfs_targets", "gauge", "Target directories.");
    g_string_append_printf(s, "crtfs_targets %u\n", n);
    family(s, "crtfs_removed_targets", "gauge",
           "Removed target directories still held by open files or the kernel's names.");
    g_string_append_printf(s, "crtfs_removed_targets %u\n", removed);
    /* Named as Prometheus names its own (prometheus_config_last_reload_*). */
    family(s, "crtfs_config_last_reload_successful", "gauge",
           "Whether the last configuration reload (SIGHUP) applied.");
    g_string_append_printf(s, "crtfs_config_last_reload_successful %d\n",
                           reload->ok ? 1 : 0);
    family(s, "crtfs_config_last_reload_success_timestamp_seconds", "gauge",
           "When the configuration last applied (the mount, or a reload).");
    g_string_append_printf(s, "crtfs_config_last_reload_success_timestamp_seconds %.3f\n",
                           (double)reload->success_us / G_USEC_PER_SEC);
#ifdef HAVE_MALLINFO2
    {
        struct mallinfo2 mi = mallinfo2();

        family(s, "crtfs_heap_allocated_bytes", "gauge",
               "Bytes the daemon has allocated from the C library's heap (glibc "
               "mallinfo2).");
        g_string_append_printf(s, "crtfs_heap_allocated_bytes %zu\n",
                               mi.uordblks + mi.hblkhd);
        family(s, "crtfs_heap_free_bytes", "gauge",
               "Bytes free in the heap but still held by the process (glibc mallinfo2).");
        g_string_append_printf(s, "crtfs_heap_free_bytes %zu\n", mi.fordblks);
    }
#endif
    if (n == 0)
        goto out;
    family(s, "crtfs_state", "gauge",
           "1 for the state the target is in, 0 for the others.");
    for (guint i = 0; i < n; i++) {
        CrtEngineState now = crt_channel_state(channels[i]);

        for (size_t k = 0; k < G_N_ELEMENTS(states); k++)
            sample(s, "crtfs_state", channels[i], crt_engine_state_to_string(states[k]),
                   now == states[k]);
    }
    family(s, "crtfs_present", "gauge",
           "1 when a target is set and there (a wait target may be absent).");
    for (guint i = 0; i < n; i++)
        sample(s, "crtfs_present", channels[i], NULL, crt_channel_present(channels[i]));
    for (guint i = 0; i < n; i++) {
        count[i] = crt_channel_stats(channels[i], st[i]);
        for (guint k = 0; k < count[i]; k++) {
            const CrtStat *x = &st[i][k];
            gboolean seen = FALSE;

            for (guint j = 0; j < names->len && !seen; j++)
                seen = strcmp(((const CrtStat *)g_ptr_array_index(names, j))->name,
                              x->name) == 0;
            if (!seen)
                g_ptr_array_add(names, (gpointer)x);
        }
    }
    for (guint j = 0; j < names->len; j++) {
        const CrtStat *f = g_ptr_array_index(names, j);
        char *metric = g_strdup_printf("crtfs_%s%s", f->name, f->counter ? "_total" : "");

        family(s, metric, f->counter ? "counter" : "gauge", f->help);
        for (guint i = 0; i < n; i++) {
            int k = find_stat(st[i], count[i], f->name);

            if (k >= 0)
                sample(s, metric, channels[i], NULL, st[i][k].value);
        }
        g_free(metric);
    }
out:
    g_ptr_array_free(names, TRUE);
    g_free(count);
    g_free(st);
    return g_string_free(s, FALSE);
}
