/* crtfs - suspend and resume with the system (logind's PrepareForSleep).
 *
 * When the system bus is there, crtfs holds a "delay" sleep inhibitor lock
 * of logind.  Before the system sleeps (PrepareForSleep true) `before` runs
 * and then the lock is released; after the resume (PrepareForSleep false)
 * `after` runs and a new lock is taken.  Without a system bus, or without
 * logind on it, nothing happens.  The callbacks run on a thread of this
 * module.  No FUSE here. */
#ifndef CRTFS_LOGIND_H
#define CRTFS_LOGIND_H

#include <glib.h>

typedef struct CrtSleepWatch CrtSleepWatch;
typedef void (*CrtSleepFn)(gpointer data);

/* NULL when there is no system bus (logged at debug). */
CrtSleepWatch *crt_sleep_watch_new(CrtSleepFn before, CrtSleepFn after, gpointer data);
void crt_sleep_watch_free(CrtSleepWatch *w);

#endif
