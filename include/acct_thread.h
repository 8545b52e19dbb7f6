/* acct_thread.h: the account store's own thread. Once the proxy runs, every read and write of
 * the SQLite store happens there: the check every second for changes made by the command line
 * (or a replaced file), and the HTTP API's writes (query history, named queries). SQLite may
 * wait on a lock held by another program (up to its busy timeout) or on the disk; the main
 * loop, which accepts every MySQL client, must not wait with it. */
#ifndef ENVPROXY_ACCT_THREAD_H
#define ENVPROXY_ACCT_THREAD_H

#include <stdbool.h>

#include "accounts.h"

struct proxy;

/* A piece of work for the store. run() is called on the store's thread with the store;
 * done() afterwards on the main loop, with deliver false when the proxy is stopping and
 * the job's answer must not go anywhere (the job is freed either way, by done). A run that
 * changed the store sets changed: the accounts are read again before done() runs. */
typedef struct acct_job {
    struct acct_job *next;
    void (*run)(struct acct_job *j, acct_store *s);
    void (*done)(struct acct_job *j, bool deliver);
    bool changed;
} acct_job;

/* Starts the thread (the store is open and read once). 0, or -1 when it could not start. */
int acct_thread_start(struct proxy *p);
/* Queues j; its run() follows every job queued before it. */
void acct_thread_submit(struct proxy *p, acct_job *j);
/* Reads the whole store again soon (SIGHUP), on the thread. */
void acct_thread_reload(struct proxy *p);
/* Stops the thread after the job it is running; jobs not yet run or delivered get
 * done(j, false). Called on the main loop's thread. */
void acct_thread_stop(struct proxy *p);

#endif
