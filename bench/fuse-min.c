/* crtfs bench/fuse-min: the smallest FUSE file that answers every read from
 * memory, the baseline bench/fs measures crtfs against in the same run.
 *
 *     fuse-min [-m|-c] [-f] MOUNTPOINT
 *
 * Mounts (foreground, low-level API) a root directory holding two files,
 * direct_io and nonseekable, whose every READ is answered with
 * fuse_reply_buf from one static zeroed buffer: `zero` of the requested
 * size (up to 4 MiB), `small` of at most 64 bytes whatever the size asked
 * (what a file of 64-byte records in record framing answers to a dd
 * bs=128k, which costs the kernel more per read than a 64-byte read:
 * it pins the reader's whole buffer).  The session runs libfuse's
 * single-threaded loop, or with -m its multi-threaded one (default
 * settings), or with -c the multi-threaded one with clone_fd (each thread
 * reads requests from a descriptor of its own, FUSE_DEV_IOC_CLONE).  The
 * buffer is never written, so every page of it is the kernel's shared zero
 * page (one 4 KiB page in cache for every copy); -f writes it once at
 * start, so replies come from memory of its own, as any file's data would.
 * Unmount with `fusermount3 -u` or SIGTERM.  Nothing else: no locking, no
 * queues, no threads of its own.
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
#define SMALL_INO 3
#define MAX_READ (4u << 20)
#define SMALL_READ 64u

static char zeroes[MAX_READ];

static void fill_stat(fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else { /* either file */
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
    }
}

static void min_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e;

    if (parent != FUSE_ROOT_ID ||
        (strcmp(name, "zero") != 0 && strcmp(name, "small") != 0)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    memset(&e, 0, sizeof e);
    e.ino = strcmp(name, "zero") == 0 ? FILE_INO : SMALL_INO;
    e.attr_timeout = 60;
    e.entry_timeout = 60;
    fill_stat(e.ino, &e.attr);
    fuse_reply_entry(req, &e);
}

static void min_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;

    (void)fi;
    if (ino != FUSE_ROOT_ID && ino != FILE_INO && ino != SMALL_INO) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    fill_stat(ino, &st);
    fuse_reply_attr(req, &st, 60);
}

static void min_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (ino != FILE_INO && ino != SMALL_INO) {
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
    size_t max = ino == SMALL_INO ? SMALL_READ : MAX_READ;

    (void)off;
    (void)fi;
    fuse_reply_buf(req, zeroes, size < max ? size : max);
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
    int mt = 0, clone = 0, fill = 0, i, rc = 1;

    for (i = 1; i < argc - 1; i++) {
        if (strcmp(argv[i], "-m") == 0)
            mt = 1;
        else if (strcmp(argv[i], "-c") == 0)
            mt = clone = 1;
        else if (strcmp(argv[i], "-f") == 0)
            fill = 1;
        else
            break;
    }
    if (i != argc - 1 || argv[i][0] == '-') {
        fprintf(stderr, "usage: %s [-m|-c] [-f] MOUNTPOINT\n", argv[0]);
        return 2;
    }
    if (fill) {
        /* One write per page makes each a page of our own (volatile: a
         * store of zero must not be optimised out). */
        for (size_t k = 0; k < MAX_READ; k += 4096)
            ((volatile char *)zeroes)[k] = 0;
    }
    se = fuse_session_new(&args, &min_ops, sizeof min_ops, NULL);
    if (!se)
        return 1;
    if (fuse_set_signal_handlers(se) == 0) {
        if (fuse_session_mount(se, argv[i]) == 0) {
            if (mt) {
                struct fuse_loop_config *cfg = fuse_loop_cfg_create();

                fuse_loop_cfg_set_clone_fd(cfg, clone);
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
