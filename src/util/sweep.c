/*
 * sweep.c - see sweep.h.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/sweep.h"

int dir_sweep(const char *dir, const char *suffix, int64_t before_ms)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int removed = 0;
    size_t sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        char path[PATH_MAX];
        struct stat sb;
        if (n <= sl || strcmp(e->d_name + n - sl, suffix) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
            (int64_t)sb.st_mtime * 1000 < before_ms && unlink(path) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}
