/*
 * Runs every case of tests/vectors/breaker.json through the C ABI's circuit breaker
 * (llmr_breaker_* and llmr_breaker_set_*), comparing each step with its "expect" as the core
 * runner does (an expected object matches when every field it names has the same value),
 * then a few abuse cases (NULL handles, bad keys, bad configs and outcomes). Everything it
 * allocates is freed, so that AddressSanitizer and valgrind can report any leak or bad access
 * in the library.
 *
 * Usage: breaker_vectors <vectors-dir>
 * Prints "[c] breaker vectors: N passed, M failed" and exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_resilience.h"
#include "vectors_common.h"

static const char *state_name(LlmrBreakerState s) {
    switch (s) {
        case LLMR_BREAKER_STATE_CLOSED: return "closed";
        case LLMR_BREAKER_STATE_OPEN: return "open";
        case LLMR_BREAKER_STATE_HALF_OPEN: return "half-open";
        case LLMR_BREAKER_STATE_FORCED_OPEN: return "forced-open";
        case LLMR_BREAKER_STATE_DISABLED: return "disabled";
    }
    return "?";
}

/* The LlmrErrorKind value of a kebab-case name, through llmr_error_kind_name; -1 if none. */
static int kind_of(const char *name) {
    for (uint32_t k = 0; k < 64; k++) {
        const char *n = llmr_error_kind_name(k);
        if (n == NULL) return -1;
        if (strcmp(n, name) == 0) return (int)k;
    }
    return -1;
}

static cJSON *transition_json(bool has, LlmrBreakerState from, LlmrBreakerState to) {
    if (!has) return cJSON_CreateNull();
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "from", state_name(from));
    cJSON_AddStringToObject(t, "to", state_name(to));
    return t;
}

static cJSON *admission_json(const LlmrAdmission *a) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "admitted", a->admitted);
    if (a->admitted) {
        cJSON_AddBoolToObject(o, "probe", a->permit.probe);
    } else {
        cJSON_AddStringToObject(o, "state", state_name(a->state));
        if (a->has_retry_in_ms) {
            cJSON_AddNumberToObject(o, "retry_in_ms", (double)a->retry_in_ms);
        } else {
            cJSON_AddNullToObject(o, "retry_in_ms");
        }
    }
    return o;
}

static cJSON *counts_json(const LlmrCounts *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "state", state_name(c->state));
    cJSON_AddNumberToObject(o, "window_calls", (double)c->window_calls);
    cJSON_AddNumberToObject(o, "window_failures", (double)c->window_failures);
    cJSON_AddNumberToObject(o, "window_slow", (double)c->window_slow);
    cJSON_AddNumberToObject(o, "consecutive_failures", c->consecutive_failures);
    cJSON_AddNumberToObject(o, "probes_in_flight", c->probes_in_flight);
    cJSON_AddNumberToObject(o, "probe_successes", c->probe_successes);
    cJSON_AddNumberToObject(o, "times_opened", (double)c->times_opened);
    cJSON_AddNumberToObject(o, "rejected", (double)c->rejected);
    cJSON_AddNumberToObject(o, "generation", (double)c->generation);
    return o;
}

/* Named permits of one case. */
#define MAX_PERMITS 64
struct permits {
    char *names[MAX_PERMITS];
    LlmrPermit permits[MAX_PERMITS];
    size_t len;
};

static void permits_put(struct permits *ps, const char *name, LlmrPermit p) {
    for (size_t i = 0; i < ps->len; i++) {
        if (strcmp(ps->names[i], name) == 0) {
            ps->permits[i] = p;
            return;
        }
    }
    if (ps->len < MAX_PERMITS) {
        ps->names[ps->len] = strdup(name);
        ps->permits[ps->len++] = p;
    }
}

static const LlmrPermit *permits_get(const struct permits *ps, const char *name) {
    for (size_t i = 0; i < ps->len; i++) {
        if (strcmp(ps->names[i], name) == 0) return &ps->permits[i];
    }
    return NULL;
}

static void permits_free(struct permits *ps) {
    for (size_t i = 0; i < ps->len; i++) free(ps->names[i]);
    ps->len = 0;
}

/* A failure message for the case, printed by the caller. */
static char failure[1024];

#define FAIL(...)                                             \
    do {                                                      \
        snprintf(failure, sizeof failure, __VA_ARGS__);       \
        goto done;                                            \
    } while (0)

/* Runs one case; returns 1 when every step matches. */
static int run_case(const cJSON *c) {
    int ok = 0;
    LlmrBreaker *b = NULL;
    LlmrBreakerSet *set = NULL;
    struct permits ps = {0};
    char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "config"));
    const cJSON *max_keys = cJSON_GetObjectItemCaseSensitive(c, "max_keys");
    char *error = NULL;
    LlmrResult r;
    if (!config) FAIL("no config");
    if (cJSON_IsNumber(max_keys)) {
        r = llmr_breaker_set_new(config, strlen(config), (size_t)max_keys->valuedouble, &set, &error);
    } else {
        r = llmr_breaker_new(config, strlen(config), &b, &error);
    }
    if (r != LLMR_OK) FAIL("new: %s: %s", llmr_result_name(r), error ? error : "");

    int i = 0;
    const cJSON *step;
    cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(c, "steps")) {
        uint64_t now = u64_of(step, "now_ms");
        const char *op = str_of(step, "op");
        const char *key = str_of(step, "key");
        cJSON *got = NULL;
        if (strcmp(op, "acquire") == 0) {
            LlmrAdmission a;
            r = set ? llmr_breaker_set_acquire(set, key, strlen(key), now, &a)
                    : llmr_breaker_acquire(b, now, &a);
            if (r != LLMR_OK) FAIL("step %d: acquire: %s", i, llmr_result_name(r));
            const char *name = str_of(step, "permit");
            if (a.admitted && *name) permits_put(&ps, name, a.permit);
            got = admission_json(&a);
        } else if (strcmp(op, "record") == 0) {
            const LlmrPermit *p = permits_get(&ps, str_of(step, "permit"));
            if (!p) FAIL("step %d: no permit %s", i, str_of(step, "permit"));
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(step, "outcome");
            const char *what = str_of(o, "outcome");
            uint32_t outcome = strcmp(what, "success") == 0   ? LLMR_OUTCOME_SUCCESS
                               : strcmp(what, "failure") == 0 ? LLMR_OUTCOME_FAILURE
                                                              : LLMR_OUTCOME_IGNORED;
            int kind = outcome == LLMR_OUTCOME_FAILURE ? kind_of(str_of(o, "kind")) : 0;
            if (kind < 0) FAIL("step %d: unknown kind %s", i, str_of(o, "kind"));
            const cJSON *hint = cJSON_GetObjectItemCaseSensitive(o, "retry_after_ms");
            bool has_hint = cJSON_IsNumber(hint);
            LlmrRecorded rec;
            r = set ? llmr_breaker_set_record(set, key, strlen(key), p, outcome, (uint32_t)kind,
                                              has_hint, u64_of(o, "retry_after_ms"), now, &rec)
                    : llmr_breaker_record(b, p, outcome, (uint32_t)kind, has_hint,
                                          u64_of(o, "retry_after_ms"), now, &rec);
            if (r != LLMR_OK) FAIL("step %d: record: %s", i, llmr_result_name(r));
            got = cJSON_CreateObject();
            cJSON_AddStringToObject(got, "recorded", rec.stale ? "stale" : "counted");
            cJSON_AddItemToObject(got, "transition", transition_json(rec.has_transition, rec.from, rec.to));
        } else if (strcmp(op, "state") == 0) {
            LlmrBreakerState s;
            if (!b) FAIL("step %d: state needs a single breaker", i);
            r = llmr_breaker_state(b, now, &s);
            if (r != LLMR_OK) FAIL("step %d: state: %s", i, llmr_result_name(r));
            got = cJSON_CreateString(state_name(s));
        } else if (strcmp(op, "counts") == 0) {
            LlmrCounts counts;
            if (!b) FAIL("step %d: counts needs a single breaker", i);
            r = llmr_breaker_counts(b, now, &counts);
            if (r != LLMR_OK) FAIL("step %d: counts: %s", i, llmr_result_name(r));
            got = counts_json(&counts);
        } else if (strcmp(op, "force_open") == 0 || strcmp(op, "disable") == 0 ||
                   strcmp(op, "reset") == 0) {
            LlmrTransition t;
            if (!b) FAIL("step %d: switches need a single breaker", i);
            r = op[0] == 'f' ? llmr_breaker_force_open(b, now, &t)
                : op[0] == 'd' ? llmr_breaker_disable(b, now, &t)
                               : llmr_breaker_reset(b, now, &t);
            if (r != LLMR_OK) FAIL("step %d: %s: %s", i, op, llmr_result_name(r));
            got = transition_json(t.has_transition, t.from, t.to);
        } else if (strcmp(op, "snapshot_restore") == 0) {
            char *snap = NULL;
            if (b) {
                r = llmr_breaker_snapshot(b, &snap);
                if (r != LLMR_OK) FAIL("step %d: snapshot: %s", i, llmr_result_name(r));
                llmr_breaker_free(b);
                b = NULL;
                r = llmr_breaker_restore(snap, strlen(snap), &b, &error);
            } else {
                r = llmr_breaker_set_snapshot(set, &snap);
                if (r != LLMR_OK) FAIL("step %d: snapshot: %s", i, llmr_result_name(r));
                llmr_breaker_set_free(set);
                set = NULL;
                r = llmr_breaker_set_restore(snap, strlen(snap), &set, &error);
            }
            llmr_string_free(snap);
            if (r != LLMR_OK) FAIL("step %d: restore: %s: %s", i, llmr_result_name(r), error ? error : "");
            i++;
            continue;
        } else if (strcmp(op, "keys") == 0) {
            char *keys = NULL;
            if (!set) FAIL("step %d: keys needs a set", i);
            r = llmr_breaker_set_keys(set, &keys);
            if (r != LLMR_OK) FAIL("step %d: keys: %s", i, llmr_result_name(r));
            got = cJSON_Parse(keys);
            llmr_string_free(keys);
        } else {
            FAIL("step %d: unknown op %s", i, op);
        }
        const cJSON *expect = cJSON_GetObjectItemCaseSensitive(step, "expect");
        int same = matches(expect, got);
        if (!same) {
            char *e = cJSON_PrintUnformatted(expect);
            char *g = cJSON_PrintUnformatted(got);
            snprintf(failure, sizeof failure, "step %d (%s at %" PRIu64 " ms): expected %s, got %s",
                     i, op, now, e ? e : "?", g ? g : "?");
            free(e);
            free(g);
        }
        cJSON_Delete(got);
        if (!same) goto done;
        i++;
    }
    ok = 1;
done:
    llmr_string_free(error);
    llmr_breaker_free(b);
    llmr_breaker_set_free(set);
    permits_free(&ps);
    free(config);
    return ok;
}

static int checks;

#define CHECK(cond, ...)                                     \
    do {                                                     \
        checks++;                                            \
        if (!(cond)) {                                       \
            printf("[c] FAIL abuse: " __VA_ARGS__);          \
            printf("\n");                                    \
            failures++;                                      \
        }                                                    \
    } while (0)

/* Misuse the library must answer with an error, not a crash or a leak. */
static int abuse(void) {
    int failures = 0;
    LlmrBreaker *b = NULL;
    LlmrBreakerSet *set = NULL;
    char *error = NULL;
    LlmrAdmission a;
    LlmrRecorded rec;
    LlmrPermit permit = {0};

    CHECK(llmr_breaker_acquire(NULL, 0, &a) == LLMR_NULL_PARAMETER && !a.admitted, "NULL breaker");
    CHECK(llmr_breaker_new(NULL, 0, &b, &error) == LLMR_NULL_PARAMETER && b == NULL && error == NULL,
          "NULL config");
    const char *bad = "{\"half_open_probes\": 0, \"open_duration\": {\"base_ms\": 0}, \"nope\": 1}";
    CHECK(llmr_breaker_new(bad, strlen(bad), &b, &error) == LLMR_INVALID_CONFIG && b == NULL &&
              error != NULL && strstr(error, "nope") != NULL,
          "unknown field: %s", error ? error : "(no message)");
    llmr_string_free(error);
    error = NULL;
    bad = "{\"half_open_probes\": 0, \"open_duration\": {\"base_ms\": 0}}";
    CHECK(llmr_breaker_new(bad, strlen(bad), &b, &error) == LLMR_INVALID_CONFIG && error != NULL &&
              strstr(error, "half_open_probes") && strstr(error, "base_ms"),
          "every problem listed: %s", error ? error : "(no message)");
    llmr_string_free(error);
    error = NULL;
    const char *not_utf8 = "{\"x\": \"\xff\"}";
    CHECK(llmr_breaker_new(not_utf8, strlen(not_utf8), &b, NULL) == LLMR_INVALID_CONFIG, "bad UTF-8 config");

    CHECK(llmr_breaker_new("{}", 2, &b, NULL) == LLMR_OK && b != NULL, "default config");
    CHECK(llmr_breaker_record(b, &permit, 3, 0, false, 0, 0, &rec) == LLMR_INVALID_ARGUMENT,
          "outcome out of range");
    CHECK(llmr_breaker_record(b, &permit, LLMR_OUTCOME_FAILURE, 13, false, 0, 0, &rec) ==
              LLMR_INVALID_ARGUMENT,
          "kind out of range");
    CHECK(llmr_breaker_record(b, NULL, LLMR_OUTCOME_SUCCESS, 0, false, 0, 0, &rec) == LLMR_NULL_PARAMETER,
          "NULL permit");
    LlmrBreaker *restored = NULL;
    CHECK(llmr_breaker_restore("{", 1, &restored, NULL) == LLMR_INVALID_CONFIG && restored == NULL,
          "corrupt snapshot");
    llmr_breaker_free(b);
    /* Use after free: handles are looked up in the library's registry, so a freed one is a
     * typed error (before: a read of freed memory, which hung on the freed mutex). */
    LlmrBreakerState st = LLMR_BREAKER_STATE_OPEN;
    CHECK(llmr_breaker_acquire(b, 0, &a) == LLMR_INVALID_HANDLE && !a.admitted, "acquire after free");
    CHECK(llmr_breaker_state(b, 0, &st) == LLMR_INVALID_HANDLE, "state after free");
    char *snap = NULL;
    CHECK(llmr_breaker_snapshot(b, &snap) == LLMR_INVALID_HANDLE && snap == NULL, "snapshot after free");
    llmr_breaker_free(b); /* a double free does nothing */

    CHECK(llmr_breaker_set_new("{}", 2, 0, &set, &error) == LLMR_INVALID_CONFIG && error &&
              strstr(error, "max_keys"),
          "max_keys 0");
    llmr_string_free(error);
    error = NULL;
    CHECK(llmr_breaker_set_new("{}", 2, 4, &set, NULL) == LLMR_OK, "set");
    CHECK(llmr_breaker_set_acquire(set, "", 0, 0, &a) == LLMR_INVALID_KEY, "empty key");
    CHECK(llmr_breaker_set_acquire(set, "a\xff", 2, 0, &a) == LLMR_INVALID_UTF8, "bad UTF-8 key");
    char long_key[300];
    memset(long_key, 'k', sizeof long_key);
    CHECK(llmr_breaker_set_acquire(set, long_key, sizeof long_key, 0, &a) == LLMR_INVALID_KEY, "long key");
    CHECK(llmr_breaker_set_acquire(set, NULL, 3, 0, &a) == LLMR_NULL_PARAMETER, "NULL key");
    llmr_breaker_set_free(set);
    CHECK(llmr_breaker_set_acquire(set, "m", 1, 0, &a) == LLMR_INVALID_HANDLE, "set acquire after free");
    llmr_breaker_set_free(set);
    llmr_breaker_set_free(NULL);
    llmr_breaker_free(NULL);
    llmr_string_free(NULL);
    return failures;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <vectors-dir>\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/breaker.json", argv[1]);
    char *text = read_file(path);
    if (!text) {
        fprintf(stderr, "[c] cannot read %s\n", path);
        return 2;
    }
    cJSON *file = cJSON_Parse(text);
    free(text);
    if (!file) {
        fprintf(stderr, "[c] %s is not JSON\n", path);
        return 2;
    }
    int passed = 0, failed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(file, "cases")) {
        failure[0] = '\0';
        if (run_case(c)) {
            passed++;
        } else {
            failed++;
            printf("[c] FAIL %s: %s\n", str_of(c, "name"), failure);
        }
    }
    cJSON_Delete(file);
    int abuse_failures = abuse();
    printf("[c] breaker vectors: %d passed, %d failed\n", passed, failed);
    printf("[c] breaker abuse cases: %d passed, %d failed\n", checks - abuse_failures, abuse_failures);
    return (failed || abuse_failures || passed == 0) ? 1 : 0;
}
