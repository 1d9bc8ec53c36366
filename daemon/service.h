/* crtfs daemon - the glue to the service manager and the system: the
 * sd_notify(3) protocol without libsystemd, logging to syslog once
 * daemonized, and handing free heap pages back.  Threads: any. */
#ifndef CRTFS_SERVICE_H
#define CRTFS_SERVICE_H

/* Tell systemd (Type=notify) a state ("READY=1", "RELOADING=1",
 * "STOPPING=1"): one datagram to $NOTIFY_SOCKET; nothing without it. */
void crt_service_notify(const char *state);

/* From now on GLib's log goes to syslog (daemon facility, with the pid),
 * messages as notice, warnings as warning. */
void crt_service_log_to_syslog(void);

/* Hand the heap's free pages back to the kernel (malloc_trim). */
void crt_service_trim_heap(void);

#endif
