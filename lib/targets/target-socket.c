/* crtfs - socket targets: `unix:PATH` (or `unix:@NAME`, Linux's abstract
 * namespace) and `tcp:HOST:PORT`, both byte streams.
 *
 * Connecting happens on the caller's thread (opening may block by
 * contract); once connected the descriptor is non-blocking and driven by
 * the shared fd driver like any other.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "target-private.h"

/* A peer that neither accepts nor refuses within this time is reported as
 * unreachable rather than left to the kernel's two-minute SYN timeout. */
#define TCP_CONNECT_TIMEOUT_MS 10000

typedef struct {
    int fd;
} SocketState;

static int socket_attach(CrtTarget *t, int fd, const char *name, GError **error)
{
    int r = crt_fd_set_nonblock(fd);

    if (r < 0) {
        close(fd);
        return crt_set_error(error, -r, "cannot set up the connection to %s: %s", name,
                             g_strerror(-r));
    }
    SocketState *ss = g_new0(SocketState, 1);
    ss->fd = fd;
    t->impl = ss;
    crt_fd_attach(t, fd, fd);
    return 0;
}

static void socket_destroy(CrtTarget *t)
{
    SocketState *ss = t->impl;

    crt_fd_detach(t);
    if (ss != NULL) {
        close(ss->fd);
        g_free(ss);
    }
    t->impl = NULL;
}

/* ---- unix ------------------------------------------------------------- */

/* Fill `sa` for PATH, or for @NAME in the abstract namespace (no file, no
 * terminating NUL in the address). */
static int unix_address(const char *path, struct sockaddr_un *sa, socklen_t *len,
                        GError **error)
{
    size_t n = strlen(path);

    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (n > sizeof sa->sun_path - 1)
        return crt_set_error(error, ENAMETOOLONG,
                             "cannot connect to unix:%s: socket paths are limited to %zu "
                             "bytes",
                             path, sizeof sa->sun_path - 1);
    memcpy(sa->sun_path, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    if (path[0] == '@') {
        sa->sun_path[0] = '\0';
        *len -= 1;
    }
    return 0;
}

static int unix_open(CrtTarget *t, const CrtTargetSpec *spec, const CrtTargetCreds *creds,
                     GError **error)
{
    struct sockaddr_un sa;
    socklen_t len = 0;
    int r = unix_address(spec->path, &sa, &len, error);

    if (r < 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int err = errno;
        return crt_set_error(error, err, "cannot create a socket for unix:%s: %s",
                             spec->path, g_strerror(err));
    }
    /* A blocking connect: a local listener answers at once, or its backlog
     * is full and waiting is the right thing. */
    while ((r = connect(fd, (struct sockaddr *)&sa, len)) < 0 && errno == EINTR)
        ;
    if (r < 0) {
        int err = errno;
        close(fd);
        return crt_set_error(error, err, "cannot connect to unix:%s: %s", spec->path,
                             g_strerror(err));
    }
    return socket_attach(t, fd, spec->path, error);
}

/* ---- tcp -------------------------------------------------------------- */

/* Connect a non-blocking socket, waiting at most `timeout_ms`. */
static int connect_with_timeout(int fd, const struct sockaddr *sa, socklen_t len,
                                int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t errlen = sizeof err;

    if (connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -errno;
    for (;;) {
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        int n = poll(&pfd, 1, (int)MAX(left, 0));

        if (n > 0)
            break;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
        return -errno;
    return -err;
}

static int tcp_connect_one(const struct addrinfo *ai, int *out)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    int one = 1;

    if (fd < 0)
        return -errno;
    int r = connect_with_timeout(fd, ai->ai_addr, ai->ai_addrlen, TCP_CONNECT_TIMEOUT_MS);
    if (r < 0) {
        close(fd);
        return r;
    }
    /* Requests are records: send each as soon as it is written. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *out = fd;
    return 0;
}

/* Name resolution failures become EHOSTUNREACH: "no route to host" is what
 * a script can act on, where ENOENT would read as a missing file and EAGAIN
 * as "retry at once". */
static int resolve_error(int gai, const char *name, GError **error)
{
    int err = EHOSTUNREACH;

    if (gai == EAI_SYSTEM)
        err = errno ? errno : EHOSTUNREACH;
    else if (gai == EAI_MEMORY)
        err = ENOMEM;
    return crt_set_error(error, err, "cannot resolve %s: %s", name,
                         gai == EAI_SYSTEM ? g_strerror(err) : gai_strerror(gai));
}

char *crt_tcp_name(const char *host, guint16 port)
{
    /* IPv6 literals go back in brackets so that HOST:PORT stays readable. */
    return strchr(host, ':') ? g_strdup_printf("[%s]:%u", host, port)
                             : g_strdup_printf("%s:%u", host, port);
}

int crt_tcp_connect(const char *host, guint16 port, int *out, GError **error)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    char service[8];
    int fd = -1, r = -EHOSTUNREACH;

    *out = -1;
    g_snprintf(service, sizeof service, "%u", port);
    hints.ai_flags = AI_NUMERICSERV;
    int gai = getaddrinfo(host, service, &hints, &list);
    if (gai != 0)
        return resolve_error(gai, host, error);
    /* Every address the name has, in the resolver's order of preference; the
     * last failure is the one reported. */
    for (const struct addrinfo *ai = list; ai != NULL && fd < 0; ai = ai->ai_next)
        r = tcp_connect_one(ai, &fd);
    freeaddrinfo(list);
    if (fd < 0) {
        g_autofree char *name = crt_tcp_name(host, port);
        return crt_set_error(error, -r, "cannot connect to %s: %s", name, g_strerror(-r));
    }
    *out = fd;
    return 0;
}

static int tcp_open(CrtTarget *t, const CrtTargetSpec *spec, const CrtTargetCreds *creds,
                    GError **error)
{
    g_autofree char *name = crt_tcp_name(spec->host, spec->port);
    int fd;
    int r = crt_tcp_connect(spec->host, spec->port, &fd, error);

    return r < 0 ? r : socket_attach(t, fd, name, error);
}

const CrtTargetOps crt_target_unix_ops = {
    .name = "unix",
    .open = unix_open,
    .submit = crt_fd_submit,
    .cancel = crt_fd_cancel,
    .close = crt_fd_close,
    .kick = crt_fd_kick,
    .destroy = socket_destroy,
};

const CrtTargetOps crt_target_tcp_ops = {
    .name = "tcp",
    .open = tcp_open,
    .submit = crt_fd_submit,
    .cancel = crt_fd_cancel,
    .close = crt_fd_close,
    .kick = crt_fd_kick,
    .destroy = socket_destroy,
};
