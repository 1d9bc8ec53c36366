/* crtfs daemon - service manager and system glue (see service.h). */
#include "config.h"

#include <errno.h>
#ifdef HAVE_MALLOC_TRIM
#include <malloc.h>
#endif
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>

#include "service.h"

void crt_service_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = path ? strlen(path) : 0;
    int fd;

    if (len == 0 || len >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@'))
        return;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        g_debug("sd_notify: %s", g_strerror(errno));
    close(fd);
}

/* Buffers of many sizes come and go with targets and configurations, spread
 * over the C library's per-thread arenas; what is freed in the middle of an
 * arena stays resident otherwise, and the daemon's RSS would creep up for
 * hours while the memory it uses stays the same. */
void crt_service_trim_heap(void)
{
#ifdef HAVE_MALLOC_TRIM
    malloc_trim(0);
#endif
}
