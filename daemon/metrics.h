/* crtfs - the mount root's `metrics` file: every target's `stats` figures,
 * its state and presence in the Prometheus text exposition format (0.0.4),
 * so the node_exporter textfile collector or a scraper can read it as is.
 * No FUSE here. */
#ifndef CRTFS_METRICS_H
#define CRTFS_METRICS_H

#include "channel.h"

/* The text for these channels (their names are the `target` labels) and
 * `removed` directories that are gone from the tree but still held by open
 * files or the kernel.  Newly allocated. */
/* The last SIGHUP reload: whether it applied, and when (g_get_real_time;
 * 0: none since the mount, which counts as a success at the mount time). */
typedef struct {
    gboolean ok;
    gint64 time_us;
    gint64 success_us;
} CrtReloadStatus;

char *crt_metrics_text(CrtChannel *const *channels, guint n, guint removed,
                       const CrtReloadStatus *reload);

#endif
