/* crtfs - the filesystem's internals, shared by fs.c (the tree: lookup,
 * attributes, directories) and fs-io.c (open files: reads, writes, parked
 * requests, poll).  These two files are the only ones that include
 * fuse_lowlevel.h; the channel below them knows nothing of FUSE. */
#ifndef CRTFS_FS_PRIVATE_H
#define CRTFS_FS_PRIVATE_H

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include "channel.h"
#include "metrics.h"
#include "fs.h"

typedef enum {
    N_ROOT = 0,
    N_VERSION,
    N_METRICS,
    N_RELOAD,     /* the root's `reload`: the last SIGHUP's outcome */
    N_DIR,        /* a target directory */
    N_CONFIG_DIR, /* its config/ */
    N_CTL,
    N_STATE,
    N_TARGET,
    N_DATA,
    N_RECORDS,
    N_RECORDS_JSONL, /* records.jsonl */
    N_INPUT,
    N_SEND,
    N_STATS,
    N_LINES,  /* the modem lines: read them, write a sequence */
    N_CONFIG, /* one config/KEY file */
} NodeKind;

/* The stream files: a hub reader each, read-only, a replay suffix allowed
 * (`data@5`). */
static inline gboolean crt_fs_stream_kind(NodeKind kind)
{
    return kind == N_DATA || kind == N_RECORDS || kind == N_RECORDS_JSONL;
}

typedef struct Dir Dir;
typedef struct Node Node;
typedef struct OpenFile OpenFile;

struct Node {
    fuse_ino_t ino;
    NodeKind kind;
    const char *name; /* static: a file name or a config key */
    Dir *dir;         /* NULL for the root and version */
    mode_t mode;      /* fs lock: S_IFxxx | permissions, kept across chmod */
    uid_t uid;        /* fs lock */
    gid_t gid;        /* fs lock */
    guint64 nlookup;  /* fs lock: the kernel's references */
    gboolean removed; /* fs lock: its directory is gone */
    struct timespec ctime;
    /* A replay name (`data@5`, fs.c): looked up, never listed.  It shows
     * and changes its stream file's attributes (`base`), owns its name. */
    Node *base;
    char *owned_name;
    CrtReplaySpec replay;
    gint opens; /* atomic: open files on it (a replay node goes only unused) */
};

/* A target directory.  The fs lock guards `nodes`, `removed` and `refs`;
 * `wait_lock` guards the open files' parked requests and poll handles (the
 * lock order: README, "Threads and locks"). */
struct Dir {
    char *name;
    CrtChannel *ch;
    Node *node;       /* the directory */
    Node *config;     /* its config/ */
    GPtrArray *files; /* Node * of its files, config/ and config/KEY */
    guint refs;       /* the tree, every node, every open file */
    gboolean removed;
    GMutex wait_lock;
    GList *opens; /* OpenFile that may wait (wait_lock) */
    /* Made from a configuration file group (reload compares, removes):
     * the group's keys as written, and whether its autostart started it.
     * Only the thread that loads configurations touches these. */
    char *group_text;
    gboolean config_started;
    gboolean sleep_suspended; /* suspended for a system sleep (logind thread) */
};

struct OpenFile {
    Node *node;
    Dir *dir;   /* referenced until the last of `refs` goes */
    CrtFs *fs;  /* for that reference; NULL once the directory is gone */
    GList link; /* in dir->opens */
    char *text; /* snapshot of a generated file */
    size_t text_len;
    CrtHubReader *reader; /* data, records, records.jsonl */
    CrtSendSession *send; /* send */
    gint refs;            /* atomic: the open, plus each read under way */
    /* One read at a time: the reply leaves before the next read may reuse
     * what it was answered from (after wait_lock in the lock order). */
    GMutex read_lock;
    char *buf; /* send: reused, no allocation per read */
    size_t buf_size;
    /* wait_lock: */
    fuse_req_t read_req; /* a parked read */
    size_t read_size;
    off_t read_off;
    fuse_req_t write_req; /* a parked input write */
    GBytes *write_data;
    struct fuse_pollhandle *ph;
    fuse_req_t lines_req;       /* a `lines` write under way on a worker */
    GCancellable *lines_cancel; /* what its interrupt cancels */
};

struct CrtFs {
    GMutex lock;       /* the tree */
    GHashTable *nodes; /* fuse_ino_t -> Node */
    GHashTable *dirs;  /* name -> Dir */
    fuse_ino_t next_ino;
    Node *root, *version, *metrics, *reload;
    /* The last reload (fs lock): for `reload` and the metrics. */
    CrtReloadStatus reload_status;
    char *reload_file, *reload_text;
    CrtFsOptions opts;
    gboolean shutting_down;
    gint open_files;  /* atomic: files the kernel has open */
    guint dirs_alive; /* fs lock: Dir structures, removed ones included */
    /* Tells the kernel a removed directory's names are gone (fs.c). */
    struct fuse_session *se;
    GThreadPool *unlinker;
    /* Runs `lines` writes (sequences take up to 10 s: never on a FUSE
     * thread); each job replies to its request (fs-io.c).  fs lock: jobs
     * are pushed under it, and it goes (NULL) at shutdown, after which
     * `lines` writes fail at once. */
    GThreadPool *lines_pool;
};

/* fs.c */
/* The root file `reload` (newly allocated). */
char *crt_fs_reload_text(CrtFs *fs);
/* A copy of the last reload's status. */
void crt_fs_reload_status(CrtFs *fs, CrtReloadStatus *out);
Node *crt_fs_node(CrtFs *fs, fuse_ino_t ino); /* NULL if unknown */
void crt_fs_dir_ref(CrtFs *fs, Dir *d);
/* Every target directory now, each with a reference (crt_fs_dir_unref). */
GPtrArray *crt_fs_dirs_ref(CrtFs *fs);
void crt_fs_dir_unref(CrtFs *fs, Dir *d);
/* Removed directories still held by open files or the kernel's names. */
guint crt_fs_removed_held(CrtFs *fs);
/* Setting `spec` on `d` failed with EBUSY: when another directory of this
 * mount holds the file, say which (crt_channel_explain_busy).  Returns r. */
int crt_fs_explain_busy(CrtFs *fs, Dir *d, const char *spec, int r, GError **error);
/* Reply an errno with a reason in the channel's state (and the log). */
void crt_fs_reply_error(fuse_req_t req, Dir *d, int err, GError *error);

/* fs-io.c: the operations on open files, for the one ops table (fs.c). */
void crt_fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void crt_fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi);
void crt_fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                     off_t off, struct fuse_file_info *fi);
void crt_fs_op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                    struct fuse_pollhandle *ph);
void crt_fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void crt_fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* A lines_pool job (fs-io.c): runs one `lines` write and replies. */
void crt_fs_lines_job(gpointer job, gpointer fs);
/* The channel's notify: try every parked request of `d`. */
void crt_fs_dir_wake(Dir *d);
/* End every parked request of `d` (rmdir, unmount). */
void crt_fs_dir_flush(Dir *d);
/* Take an open file out of its directory and free it (release, and at the
 * end for files the kernel never released). */
void crt_fs_open_file_free(OpenFile *of);

#endif
