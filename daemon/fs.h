/* crtfs - the FUSE filesystem (low-level API): one directory per target.
 * main.c creates it and runs the request loop. */
#ifndef CRTFS_FS_H
#define CRTFS_FS_H

#include <glib.h>

struct fuse_lowlevel_ops;
struct fuse_session;

typedef struct CrtFs CrtFs;

typedef struct {
    gboolean allow_exec;       /* exec: targets from non-root writers */
    guint max_targets;         /* mkdir refuses more (ENOSPC) */
    guint64 max_target_memory; /* buffer bytes per target (ENOMEM at start) */
} CrtFsOptions;

CrtFs *crt_fs_new(const CrtFsOptions *opts);
const struct fuse_lowlevel_ops *crt_fs_ops(void);
/* The session the filesystem serves: it tells the kernel through it when
 * a removed directory's names are gone (see dir_remove in fs.c). */
void crt_fs_set_session(CrtFs *fs, struct fuse_session *se);

/* Create the targets of a config file (GKeyFile, one group per target).
 * 0, or -errno with `error` naming the group and key. */
int crt_fs_load_config(CrtFs *fs, GKeyFile *kf, GError **error);

/* SIGHUP: apply a configuration file again, by target name.  Groups that
 * are new become directories; directories that came from a group that is
 * gone are removed; a changed group is applied to its directory (stopped
 * first and started again when its autostart started it; otherwise keys
 * that cannot change while it streams wait, and are reported).  Directories
 * made with mkdir and unchanged groups are not touched.  Returns 0 or the
 * first error (the others are logged). */
int crt_fs_reload_config(CrtFs *fs, GKeyFile *kf, GError **error);

/* The outcome of a SIGHUP reload, for the root file `reload` and the
 * metrics: ok, and what happened in one line (the first error when not
 * ok).  `file` is the configuration file read.  Any thread. */
void crt_fs_set_reload_result(CrtFs *fs, const char *file, gboolean ok, const char *text);

/* The system goes to sleep: every streaming target with purge_on_suspend=1
 * is suspended (stopped and drained); after the resume they are resumed. */
void crt_fs_sleep_before(gpointer fs);
void crt_fs_sleep_after(gpointer fs);

/* Stop every target (stop-and-wait) and answer every parked request:
 * readers see end of file.  Before the session is destroyed. */
void crt_fs_shutdown(CrtFs *fs);
/* Files the kernel still has open (after shutdown their reads end at once,
 * so clients close them soon). */
guint crt_fs_open_files(CrtFs *fs);
void crt_fs_free(CrtFs *fs);

#endif
