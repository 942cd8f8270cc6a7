/* Logging to stderr with a level filter, and the error-buffer helper. Thread-safe: each line
 * is formatted into a local buffer and written with one fputs. */
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static sglc_log_level g_level = SGLC_LOG_INFO;

void sglc_log_set_level(sglc_log_level level) {
    g_level = level;
}
sglc_log_level sglc_log_get_level(void) {
    return g_level;
}

void sglc_log(sglc_log_level level, const char *fmt, ...) {
    if (level < g_level) return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "[%Y-%m-%d %H:%M:%S] ", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = 0;
    while (line[len])
        len++;
    if (len == 0 || line[len - 1] != '\n') {
        line[len] = '\n';
        line[len + 1] = 0;
    }
    fputs(line, stderr);
}

int sglc_err_set(sglc_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *sglc_status_str(int code) {
    switch (code) {
    case SGLC_OK: return "ok";
    case SGLC_ERR_IO: return "i/o error";
    case SGLC_ERR_FORMAT: return "bad format";
    case SGLC_ERR_UNSUPPORTED: return "unsupported";
    case SGLC_ERR_NOMEM: return "out of memory";
    case SGLC_ERR_ARG: return "bad argument";
    case SGLC_ERR_RANGE: return "out of range";
    default: return "unknown error";
    }
}

void sglc_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "sglc: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

/* One bar per label, redrawn in place with \r; only on a terminal and at info level or below,
 * so logs, pipes and tests never see it. Completion ends the line. */
void sglc_progress(const char *label, long done, long total) {
    static int tty = -1;
    if (tty < 0) tty = isatty(fileno(stderr));
    if (!tty || sglc_log_get_level() > SGLC_LOG_INFO || total <= 0) return;
    if (done > total) done = total;
    enum { W = 30 };
    int fill = (int)(W * done / total);
    char bar[W + 1];
    for (int i = 0; i < W; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[W] = 0;
    fprintf(stderr, "\r%s [%s] %3d%% (%ld/%ld)%s", label, bar, (int)(100 * done / total), done,
            total, done == total ? "\n" : "");
    fflush(stderr);
}
