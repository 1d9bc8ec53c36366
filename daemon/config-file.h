/* crtfs daemon - the mount-time configuration file (`-o config=FILE`, the
 * first argument of mount -t fuse.crtfs) and the one rule for a target
 * directory's name, which its groups and mkdir share.
 *
 * The whole file is checked before the daemon mounts and forks: a typo must
 * fail the mount, not be found later in syslog.  Targets are opened after
 * the fork, by crt_fs_load_config().  Threads: pure functions. */
#ifndef CRTFS_CONFIG_FILE_H
#define CRTFS_CONFIG_FILE_H

#include <glib.h>

/* 0 when `name` may be a target directory at the mount root; else the
 * errno mkdir answers: EINVAL (empty, "." or "..", a slash), ENAMETOOLONG,
 * EEXIST (the root's own files, version, metrics and reload). */
int crt_target_name_check(const char *name);

/* Parse and check a configuration file's text (len bytes, or NUL-ended with
 * len -1): every group a valid target name whose keys load and whose target
 * spec parses.  The key file, or NULL with `error` set. */
GKeyFile *crt_config_file_parse(const char *text, gssize len, GError **error);

/* crt_config_file_parse of the file at `path` (read as data, so /dev/null
 * means no targets); NULL: the embedded default, a demo target streaming
 * numbered records from the simulator. */
GKeyFile *crt_config_file_load(const char *path, GError **error);

#endif
