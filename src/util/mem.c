/*
 * mem.c - allocation with a failure a test can ask for (mem.h).
 */
#include "util/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_at;   /* 0: disarmed */
static atomic_int fail_every; /* after the n-th, every later one fails too */
static atomic_long calls;     /* counted only while armed */
static atomic_long failures;

/* 1 when this allocation is to fail. */
static int injected(void)
{
    long at = atomic_load_explicit(&fail_at, memory_order_relaxed);
    if (at == 0)
        return 0;
    long n = atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed) + 1;
    if (n == at || (n > at && atomic_load_explicit(&fail_every, memory_order_relaxed))) {
        atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed);
        return 1;
    }
    return 0;
}

static _Thread_local unsigned long thread_failures;

/* p, counting it on this thread when it is NULL. */
static void *counted(void *p)
{
    if (!p)
        thread_failures++;
    return p;
}

void *sl_malloc(size_t n)
{
    return counted(injected() ? NULL : malloc(n));
}

void *sl_calloc(size_t count, size_t size)
{
    return counted(injected() ? NULL : calloc(count, size));
}

void *sl_realloc(void *p, size_t n)
{
    return counted(injected() ? NULL : realloc(p, n));
}

char *sl_strdup(const char *s)
{
    return counted(injected() ? NULL : strdup(s));
}

char *sl_strndup(const char *s, size_t n)
{
    return counted(injected() ? NULL : strndup(s, n));
}

unsigned long mem_thread_failures(void)
{
    return thread_failures;
}

void mem_fail_at(long n, int every)
{
    atomic_store(&fail_at, 0);
    atomic_store(&calls, 0);
    atomic_store(&failures, 0);
    atomic_store(&fail_every, every != 0);
    atomic_store(&fail_at, n < 0 ? 0 : n);
}

long mem_calls(void)
{
    return atomic_load(&calls);
}

long mem_failures(void)
{
    return atomic_load(&failures);
}
