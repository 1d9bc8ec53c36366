/* crtfs bench/fuse-min: the smallest FUSE file that answers every read from
 * memory, the baseline bench/fs measures crtfs against in the same run.
 *
 *     fuse-min [-m] MOUNTPOINT
 *
 * Mounts (foreground, low-level API) a root directory holding one file,
 * `zero`: direct_io, nonseekable, and every READ is answered with
 * fuse_reply_buf from one static zeroed buffer of the requested size (up to
 * 4 MiB).  The session runs libfuse's single-threaded loop, or with -m its
 * multi-threaded one (default settings).  Unmount with `fusermount3 -u` or
 * SIGTERM.  Nothing else: no locking, no queues, no threads of its own.
 */
#define _DEFAULT_SOURCE
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FILE_INO 2
#define MAX_READ (4u << 20)

static char zeroes[MAX_READ];

static void fill_stat(fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
    }
}

static void min_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e;

    if (parent != FUSE_ROOT_ID || strcmp(name, "zero") != 0) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    memset(&e, 0, sizeof e);
    e.ino = FILE_INO;
    e.attr_timeout = 60;
    e.entry_timeout = 60;
    fill_stat(FILE_INO, &e.attr);
    fuse_reply_entry(req, &e);
}

static void min_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;

    (void)fi;
    if (ino != FUSE_ROOT_ID && ino != FILE_INO) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fill_stat(ino, &st);
    fuse_reply_attr(req, &st, 60);
}

static void min_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino != FILE_INO) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    fi->direct_io = 1;
    fi->nonseekable = 1;
    fuse_reply_open(req, fi);
}

static void min_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino;
    (void)off;
    (void)fi;
    fuse_reply_buf(req, zeroes, size < MAX_READ ? size : MAX_READ);
}

static const struct fuse_lowlevel_ops min_ops = {
    .lookup = min_lookup,
    .getattr = min_getattr,
    .open = min_open,
    .read = min_read,
};

int main(int argc, char **argv)
{
    char *fargv[] = {argv[0], NULL};
    struct fuse_args args = FUSE_ARGS_INIT(1, fargv);
    struct fuse_session *se;
    int mt = argc == 3 && strcmp(argv[1], "-m") == 0;
    int rc = 1;

    if (argc != 2 + mt) {
        fprintf(stderr, "usage: %s [-m] MOUNTPOINT\n", argv[0]);
        return 2;
    }
    se = fuse_session_new(&args, &min_ops, sizeof min_ops, NULL);
    if (!se)
        return 1;
    if (fuse_set_signal_handlers(se) == 0) {
        if (fuse_session_mount(se, argv[1 + mt]) == 0) {
            if (mt) {
                struct fuse_loop_config *cfg = fuse_loop_cfg_create();

                rc = fuse_session_loop_mt(se, cfg) == 0 ? 0 : 1;
                fuse_loop_cfg_destroy(cfg);
            } else {
                rc = fuse_session_loop(se) == 0 ? 0 : 1;
            }
            fuse_session_unmount(se);
        }
        fuse_remove_signal_handlers(se);
    }
    fuse_session_destroy(se);
    return rc;
}
