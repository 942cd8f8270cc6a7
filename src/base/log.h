/* Logging and error reporting.
 *
 * Two kinds of failure (STYLE.md rule 3): broken invariants abort through SGLC_ASSERT, on in
 * release builds too; everything input or the environment can cause is returned as a status
 * code with a human-readable message written into a caller-provided buffer (sglc_err). */
#ifndef SGLC_BASE_LOG_H
#define SGLC_BASE_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
    SGLC_LOG_DEBUG,
    SGLC_LOG_INFO,
    SGLC_LOG_WARN,
    SGLC_LOG_ERROR,
    SGLC_LOG_COUNT
} sglc_log_level;

/* Status codes: 0 is success, negatives are failures. */
typedef enum {
    SGLC_OK = 0,
    SGLC_ERR_IO = -1,     /* file missing, unreadable, mmap failed */
    SGLC_ERR_FORMAT = -2, /* file content violates its format */
    SGLC_ERR_UNSUPPORTED = -3,
    SGLC_ERR_NOMEM = -4,
    SGLC_ERR_ARG = -5,   /* bad argument from a user */
    SGLC_ERR_RANGE = -6, /* a size or index out of range */
} sglc_status;

/* A message buffer that travels with a status code. */
typedef struct {
    char msg[512];
} sglc_err;

void sglc_log_set_level(sglc_log_level level);
sglc_log_level sglc_log_get_level(void);
void sglc_log(sglc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes a message into err (may be NULL) and returns code, so callers can
 * `return sglc_err_set(err, SGLC_ERR_FORMAT, "...", ...);`. */
int sglc_err_set(sglc_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char *sglc_status_str(int code);

/* A progress bar on stderr for long work ("Loading weights [####....] 45% (12/30)"), drawn only
 * when stderr is a terminal and the log level is info or below; done == total ends the line. */
void sglc_progress(const char *label, long done, long total);

void sglc_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#define SGLC_ASSERT(x)                                                                             \
    do {                                                                                           \
        if (!(x)) sglc_assert_fail(#x, __FILE__, __LINE__);                                        \
    } while (0)

#define SGLC_LOG_INFO(...) sglc_log(SGLC_LOG_INFO, __VA_ARGS__)
#define SGLC_LOG_WARN(...) sglc_log(SGLC_LOG_WARN, __VA_ARGS__)
#define SGLC_LOG_DEBUG(...) sglc_log(SGLC_LOG_DEBUG, __VA_ARGS__)

#endif
