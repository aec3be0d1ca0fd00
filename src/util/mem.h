/*
 * mem.h - the one way sluice allocates: sl_malloc, sl_calloc, sl_realloc, sl_strdup and
 * sl_strndup behave as their libc namesakes (NULL when out of memory, free() releases).
 *
 * Why a wrapper: an allocation that fails must end in a clear 5xx and nothing acknowledged
 * lost, never a crash, and that is only known when it has been tried. A test arms
 * mem_fail_at(n): the n-th allocation from then on returns NULL (and, with every set, each
 * one after it too), the way curl's `runtests -t` and Fluent Bit's flb_mem.h test theirs.
 * Disarmed (the default, and always outside tests) the cost is one relaxed atomic load.
 * Libraries allocate on their own (libuv, SQLite, libpq): this covers sluice's own calls,
 * and jansson's, which main.c (and tests/unit/test_alloc_failure.c) route here with
 * json_set_alloc_funcs(sl_malloc, free), so that mem_thread_failures() tells a parse that
 * failed for want of memory from bad JSON.
 *
 * Thread-safe: the counter is atomic; any thread may allocate while a test arms it.
 */
#ifndef SLUICE_UTIL_MEM_H
#define SLUICE_UTIL_MEM_H

#include <stddef.h>

void *sl_malloc(size_t n);
void *sl_calloc(size_t count, size_t size);
void *sl_realloc(void *p, size_t n);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);

/* Make the n-th allocation from now fail (n >= 1); with every nonzero, each one after it
 * fails too. n = 0 disarms. */
void mem_fail_at(long n, int every);
/* Allocations made since the last mem_fail_at() (armed or not) and failures injected. */
long mem_calls(void);
long mem_failures(void);
/* Allocations that returned NULL on the calling thread so far (injected or not; never
 * reset): compare before and after a call whose failure may be for want of memory. */
unsigned long mem_thread_failures(void);

#endif
