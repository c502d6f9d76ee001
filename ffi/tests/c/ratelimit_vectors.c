/*
 * Runs every case of tests/vectors/ratelimit.json through the C ABI's rate limiter
 * (llmr_rate_limiter_*), comparing each step with its "expect" as the core runner does (an
 * expected object matches when every field it names has the same value), then a few abuse
 * cases (NULL handles, bad keys, bad configs). Everything it allocates is freed, so that
 * AddressSanitizer and valgrind can report any leak or bad access in the library.
 *
 * Usage: ratelimit_vectors <vectors-dir>
 * Prints "[c] ratelimit vectors: N passed, M failed" and exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm_resilience.h"
#include "vectors_common.h"

/* The vectors' error names for a check's typed result codes. The C ABI folds "empty" and
 * "too long" into LLMR_INVALID_KEY; the key's length tells them apart. */
static const char *error_name(LlmrResult r, size_t key_len) {
    switch (r) {
        case LLMR_INVALID_KEY: return key_len == 0 ? "empty-key" : "key-too-long";
        case LLMR_ZERO_UNITS: return "zero-units";
        case LLMR_EXCEEDS_BURST: return "exceeds-burst";
        default: return llmr_result_name(r);
    }
}

/* Runs one case; returns 1 when every step matched (a failure is printed). */
static int run_case(const cJSON *c) {
    const char *name = str_of(c, "name");
    char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "config"));
    LlmrRateLimiter *l = NULL;
    char *error = NULL;
    LlmrResult r = llmr_rate_limiter_new(config, strlen(config), &l, &error);
    cJSON_free(config);
    if (r != LLMR_OK) {
        printf("[c] FAIL ratelimit: %s: new: %s: %s\n", name, llmr_result_name(r), error ? error : "");
        llmr_string_free(error);
        return 0;
    }
    int ok = 1;
    int i = 0;
    const cJSON *step;
    cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(c, "steps")) {
        uint64_t now = u64_of(step, "now_ms");
        const char *op = str_of(step, "op");
        const char *key = str_of(step, "key");
        size_t key_len = strlen(key);
        cJSON *got = NULL;
        r = LLMR_OK;
        if (strcmp(op, "check") == 0) {
            LlmrVerdict v;
            r = llmr_rate_limiter_check(l, key, key_len, (uint32_t)u64_of(step, "units"), now, &v);
            got = cJSON_CreateObject();
            if (r != LLMR_OK) {
                cJSON_AddStringToObject(got, "error", error_name(r, key_len));
                r = LLMR_OK;
            } else if (v.allowed) {
                cJSON_AddStringToObject(got, "verdict", "allowed");
                cJSON_AddNumberToObject(got, "remaining", v.remaining);
            } else {
                cJSON_AddStringToObject(got, "verdict", "denied");
                cJSON_AddNumberToObject(got, "retry_in_ms", (double)v.retry_in_ms);
            }
        } else if (strcmp(op, "settle") == 0) {
            r = llmr_rate_limiter_settle(l, key, key_len, (uint32_t)u64_of(step, "reserved"),
                                         (uint32_t)u64_of(step, "actual"), now);
        } else if (strcmp(op, "block_until") == 0) {
            r = llmr_rate_limiter_block_until(l, key, key_len, u64_of(step, "until_ms"), now);
        } else if (strcmp(op, "remaining") == 0) {
            uint32_t n = 0;
            r = llmr_rate_limiter_remaining(l, key, key_len, now, &n);
            got = cJSON_CreateNumber(n);
        } else if (strcmp(op, "len") == 0) {
            size_t n = 0;
            r = llmr_rate_limiter_len(l, &n);
            got = cJSON_CreateNumber((double)n);
        } else if (strcmp(op, "snapshot_restore") == 0) {
            char *json = NULL;
            r = llmr_rate_limiter_snapshot(l, &json);
            if (r == LLMR_OK) {
                LlmrRateLimiter *restored = NULL;
                r = llmr_rate_limiter_restore(json, strlen(json), &restored, NULL);
                if (r == LLMR_OK) {
                    llmr_rate_limiter_free(l);
                    l = restored;
                }
            }
            llmr_string_free(json);
        } else {
            printf("[c] FAIL ratelimit: %s: step %d: unknown op %s\n", name, i, op);
            ok = 0;
            break;
        }
        if (r != LLMR_OK) {
            printf("[c] FAIL ratelimit: %s: step %d (%s): %s\n", name, i, op, llmr_result_name(r));
            cJSON_Delete(got);
            ok = 0;
            break;
        }
        const cJSON *expect = cJSON_GetObjectItemCaseSensitive(step, "expect");
        if (got && expect && !matches(expect, got)) {
            char *e = cJSON_PrintUnformatted(expect), *g = cJSON_PrintUnformatted(got);
            printf("[c] FAIL ratelimit: %s: step %d (%s): expected %s, got %s\n", name, i, op, e, g);
            cJSON_free(e);
            cJSON_free(g);
            ok = 0;
        }
        cJSON_Delete(got);
        i++;
        if (!ok) break;
    }
    llmr_rate_limiter_free(l);
    return ok;
}

static int abuse_passed, abuse_failed;
#define ABUSE(cond, what)                                                    \
    do {                                                                     \
        if (cond) {                                                          \
            abuse_passed++;                                                  \
        } else {                                                             \
            abuse_failed++;                                                  \
            printf("[c] FAIL ratelimit abuse: %s (line %d)\n", what, __LINE__); \
        }                                                                    \
    } while (0)

/* Threads that check the limiter while the main thread frees it: each call must return
 * LLMR_OK (before the free) or LLMR_INVALID_HANDLE (after), never crash, hang or read freed
 * memory (AddressSanitizer and valgrind watch). */
static LlmrRateLimiter *shared;
static atomic_int after_free_seen, other_results;

static void *hammer(void *arg) {
    (void)arg;
    /* Until the free is seen (bounded, so a bug cannot loop forever). */
    for (uint64_t i = 0; i < 100000000; i++) {
        LlmrVerdict v;
        LlmrResult r = llmr_rate_limiter_check(shared, "k", 1, 1, i, &v);
        if (r == LLMR_INVALID_HANDLE) {
            atomic_fetch_add(&after_free_seen, 1);
            break;
        }
        if (r != LLMR_OK) {
            atomic_fetch_add(&other_results, 1);
            break;
        }
    }
    return NULL;
}

static void run_abuse(void) {
    LlmrRateLimiter *l = NULL;
    char *error = (char *)"stale";
    const char *bad = "{\"limit\":0,\"burst\":0}";
    ABUSE(llmr_rate_limiter_new(bad, strlen(bad), &l, &error) == LLMR_INVALID_CONFIG &&
              l == NULL && error && strstr(error, "limit must be >= 1") && strstr(error, "burst must be >= 1"),
          "a bad config lists every problem");
    llmr_string_free(error);
    ABUSE(llmr_rate_limiter_new(NULL, 0, &l, NULL) == LLMR_NULL_PARAMETER, "NULL config");
    ABUSE(llmr_rate_limiter_new("{}", 2, NULL, NULL) == LLMR_NULL_PARAMETER, "NULL out");
    ABUSE(llmr_rate_limiter_new("{}", 2, &l, NULL) == LLMR_OK && l, "defaults");
    LlmrVerdict v = {true, 7, 7};
    ABUSE(llmr_rate_limiter_check(NULL, "k", 1, 1, 0, &v) == LLMR_NULL_PARAMETER && !v.allowed && v.remaining == 0,
          "NULL handle zeroes the verdict");
    ABUSE(llmr_rate_limiter_check(l, "\xff", 1, 1, 0, &v) == LLMR_INVALID_UTF8, "bad UTF-8 key");
    ABUSE(llmr_rate_limiter_check(l, NULL, 3, 1, 0, &v) == LLMR_NULL_PARAMETER, "NULL key with a length");
    ABUSE(llmr_rate_limiter_check(l, "k", 1, 11, 0, &v) == LLMR_EXCEEDS_BURST, "exceeds burst");
    ABUSE(llmr_rate_limiter_check(l, "k", SIZE_MAX, 1, 0, &v) == LLMR_INPUT_TOO_LARGE, "absurd key length");
    ABUSE(llmr_rate_limiter_check(l, "k", 1, 1, 0, NULL) == LLMR_NULL_PARAMETER, "NULL out");
    size_t n = 9;
    ABUSE(llmr_rate_limiter_len(l, &n) == LLMR_OK && n == 0, "failed checks store no key");
    char *json = NULL;
    ABUSE(llmr_rate_limiter_snapshot(NULL, &json) == LLMR_NULL_PARAMETER && json == NULL, "NULL snapshot");
    LlmrRateLimiter *r = NULL;
    ABUSE(llmr_rate_limiter_restore("{\"keys\":1}", 10, &r, &error) == LLMR_INVALID_CONFIG && r == NULL && error,
          "bad snapshot");
    llmr_string_free(error);
    llmr_rate_limiter_free(l);
    /* Use after free: a typed error, not a read of freed memory (the handle is a registry
     * token); freeing twice does nothing. */
    ABUSE(llmr_rate_limiter_check(l, "k", 1, 1, 0, &v) == LLMR_INVALID_HANDLE && !v.allowed,
          "check after free");
    ABUSE(llmr_rate_limiter_len(l, &n) == LLMR_INVALID_HANDLE && n == 0, "len after free");
    ABUSE(llmr_rate_limiter_snapshot(l, &json) == LLMR_INVALID_HANDLE && json == NULL, "snapshot after free");
    ABUSE(strcmp(llmr_result_name(LLMR_INVALID_HANDLE), "invalid-handle") == 0, "the code's name");
    llmr_rate_limiter_free(l);
    llmr_rate_limiter_free(NULL);
    llmr_string_free(NULL);

    /* A free racing with calls on other threads. */
    ABUSE(llmr_rate_limiter_new("{\"limit\":1000000}", 17, &shared, NULL) == LLMR_OK, "shared limiter");
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) pthread_create(&threads[i], NULL, hammer, NULL);
    struct timespec pause = {0, 2000000};
    nanosleep(&pause, NULL);
    llmr_rate_limiter_free(shared);
    for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
    ABUSE(atomic_load(&other_results) == 0, "racing calls return OK or INVALID_HANDLE only");
    ABUSE(atomic_load(&after_free_seen) == 4, "every racing thread sees INVALID_HANDLE after the free");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <vectors-dir>\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/ratelimit.json", argv[1]);
    char *text = read_file(path);
    cJSON *file = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(file, "cases");
    if (!cJSON_IsArray(cases) || cJSON_GetArraySize(cases) == 0) {
        printf("[c] FAIL cannot read the cases of %s\n", path);
        cJSON_Delete(file);
        return 1;
    }
    int passed = 0, failed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        if (run_case(c)) passed++;
        else failed++;
    }
    cJSON_Delete(file);
    run_abuse();
    printf("[c] ratelimit abuse cases: %d passed, %d failed\n", abuse_passed, abuse_failed);
    printf("[c] ratelimit vectors: %d passed, %d failed\n", passed, failed);
    return failed || abuse_failed ? 1 : 0;
}
