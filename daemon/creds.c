/* crtfs - open a target with the credentials of the process that wrote its
 * spec (DESIGN section 4): a process must never reach through crtfs a target
 * it could not open itself.
 *
 * The file-system uid, gid and supplementary groups are switched on the
 * calling thread only, with the raw system calls (glibc's wrappers would
 * apply setgroups to every thread of the daemon), around crt_target_open():
 * the kernel then checks open(2) and connect(2) on a unix socket against
 * the writer, exactly as if it had opened the target itself.  An exec:
 * command is opened with crt_target_open_as(), so that it runs as the
 * writer too.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "channel-private.h"

#define MAX_GROUPS 256

typedef struct {
    uid_t fsuid;
    gid_t fsgid;
    gid_t groups[MAX_GROUPS];
    int ngroups;
} SavedCreds;

static int become(const CrtCreds *c, SavedCreds *saved)
{
    int n = MIN(c->ngroups, MAX_GROUPS);

    saved->ngroups = (int)syscall(SYS_getgroups, MAX_GROUPS, saved->groups);
    if (saved->ngroups < 0)
        return -errno;
    if (syscall(SYS_setgroups, (size_t)n, c->groups) < 0)
        return -errno;
    saved->fsgid = (gid_t)syscall(SYS_setfsgid, c->gid);
    saved->fsuid = (uid_t)syscall(SYS_setfsuid, c->uid);
    return 0;
}

static void restore(const SavedCreds *saved)
{
    syscall(SYS_setfsuid, saved->fsuid);
    syscall(SYS_setfsgid, saved->fsgid);
    syscall(SYS_setgroups, (size_t)saved->ngroups, saved->groups);
}

/* An exec: command of a non-root writer runs as that writer, not as the
 * daemon: the library runs it as the credentials it is opened for. */
static int open_exec_as(const CrtTargetSpec *spec, const CrtCreds *c, CrtTarget **out,
                        GError **error)
{
    const CrtTargetCreds as = {c->uid, c->gid, c->groups, c->ngroups};

    return crt_target_open_as(spec, NULL, &as, out, error);
}

/* A `wait` target opens again and again, on pool threads: each time as the
 * writer, with a copy of its credentials the target keeps. */
typedef struct {
    uid_t uid;
    gid_t gid;
    int ngroups;
    gid_t groups[];
} KeptCreds;

static int open_as_kept(const CrtTargetSpec *spec, CrtLoop *loop, CrtTarget **out,
                        GError **error, gpointer data)
{
    const KeptCreds *k = data;
    CrtCreds c = {k->uid, k->gid, k->groups, k->ngroups};
    SavedCreds saved;
    int r;

    if (k->uid == geteuid())
        return crt_target_open(spec, loop, out, error);
    r = become(&c, &saved);
    if (r < 0)
        return crt_set_error(error, -r, "cannot take the writer's credentials: %s",
                             g_strerror(-r));
    r = crt_target_open(spec, loop, out, error);
    restore(&saved);
    return r;
}

static int open_waiting(const CrtTargetSpec *spec, const CrtCreds *creds, CrtTarget **out,
                        GError **error)
{
    int n = creds ? MIN(creds->ngroups, MAX_GROUPS) : 0;
    KeptCreds *k = g_malloc0(sizeof *k + (size_t)n * sizeof(gid_t));

    k->uid = creds ? creds->uid : geteuid();
    k->gid = creds ? creds->gid : getegid();
    k->ngroups = n;
    if (n)
        memcpy(k->groups, creds->groups, (size_t)n * sizeof(gid_t));
    return crt_target_open_full(spec, NULL, open_as_kept, k, g_free, out, error);
}

int crt_creds_open_target(const CrtTargetSpec *spec, const CrtCreds *creds,
                          const CrtChannelPolicy *policy, CrtTarget **out, GError **error)
{
    SavedCreds saved;
    int r;

    if (spec->wait)
        return open_waiting(spec, creds, out, error);
    if (!creds || creds->uid == geteuid())
        return crt_target_open(spec, NULL, out, error);
    if (spec->kind == CRT_TARGET_EXEC && !policy->allow_exec_for_users)
        return crt_set_error(error, EACCES,
                             "exec: targets may only be set by root (the mount option "
                             "allow_exec lets other users run commands)");
    r = become(creds, &saved);
    if (r < 0)
        return crt_set_error(error, -r, "cannot take the writer's credentials: %s",
                             g_strerror(-r));
    if (spec->kind == CRT_TARGET_EXEC)
        r = open_exec_as(spec, creds, out, error);
    else
        r = crt_target_open(spec, NULL, out, error);
    restore(&saved);
    return r;
}
