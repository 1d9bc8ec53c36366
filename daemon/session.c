/* crtfs daemon - the FUSE session's request threads (see session.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "session.h"

#define WORKERS 8

typedef struct {
    CrtSession *session;
    int index;
} Worker;

struct CrtSession {
    struct fuse_session *se;
    int exit_fd;             /* readable once the kernel ended the session */
    gint exiting;            /* atomic: the request threads should return */
    gint ended;              /* atomic: the kernel ended the session */
    gint running;            /* atomic: request threads not returned yet */
    pthread_t tids[WORKERS]; /* atomic: each set by its thread; 0 until then */
    GThread *threads[WORKERS];
    Worker workers[WORKERS];
};

static void signal_exit(CrtSession *s)
{
    uint64_t one = 1;

    while (write(s->exit_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static gpointer worker(gpointer data)
{
    Worker *w = data;
    CrtSession *s = w->session;
    struct fuse_buf buf = {0};

    __atomic_store_n(&s->tids[w->index], pthread_self(), __ATOMIC_RELEASE);
    while (!g_atomic_int_get(&s->exiting)) {
        int r = fuse_session_receive_buf(s->se, &buf);

        if (r == -EINTR || r == -EAGAIN)
            continue;
        if (r <= 0) { /* unmounted */
            g_atomic_int_set(&s->ended, 1);
            signal_exit(s);
            break;
        }
        fuse_session_process_buf(s->se, &buf);
    }
    free(buf.mem);
    g_atomic_int_dec_and_test(&s->running);
    return NULL;
}

static void wake_handler(int sig)
{
    /* Only here to interrupt a blocked read (no SA_RESTART). */
}

CrtSession *crt_session_start(struct fuse_session *se)
{
    CrtSession *s = g_new0(CrtSession, 1);
    struct sigaction sa = {.sa_handler = wake_handler};

    s->se = se;
    s->exit_fd = eventfd(0, EFD_CLOEXEC);
    if (s->exit_fd < 0) {
        g_free(s);
        return NULL;
    }
    /* `running` counts the threads from before they start, so stopping
     * cannot miss one that has not reached its loop yet. */
    s->running = WORKERS;
    sigaction(SIGUSR1, &sa, NULL);
    for (int i = 0; i < WORKERS; i++) {
        s->workers[i] = (Worker){s, i};
        s->threads[i] = g_thread_new("crtfs-fuse", worker, &s->workers[i]);
    }
    return s;
}

int crt_session_exit_fd(CrtSession *s)
{
    return s->exit_fd;
}

gboolean crt_session_ended(CrtSession *s)
{
    return g_atomic_int_get(&s->ended);
}

void crt_session_stop(CrtSession *s)
{
    g_atomic_int_set(&s->exiting, 1);
    /* Interrupt every read until each thread has returned. */
    while (g_atomic_int_get(&s->running) > 0) {
        for (int i = 0; i < WORKERS; i++) {
            pthread_t tid = __atomic_load_n(&s->tids[i], __ATOMIC_ACQUIRE);

            if (tid)
                pthread_kill(tid, SIGUSR1);
        }
        g_usleep(10 * 1000);
    }
    for (int i = 0; i < WORKERS; i++)
        g_thread_join(s->threads[i]);
    close(s->exit_fd);
    g_free(s);
}
