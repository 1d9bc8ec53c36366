/* crtfs daemon - the glue to the service manager and the system: the
 * sd_notify(3) protocol without libsystemd and handing free heap pages
 * back (where the log goes: log.h).  Threads: any. */
#ifndef CRTFS_SERVICE_H
#define CRTFS_SERVICE_H

/* Tell systemd (Type=notify) a state ("READY=1", "RELOADING=1",
 * "STOPPING=1"): one datagram to $NOTIFY_SOCKET; nothing without it. */
void crt_service_notify(const char *state);

/* Hand the heap's free pages back to the kernel (malloc_trim). */
void crt_service_trim_heap(void);

#endif
