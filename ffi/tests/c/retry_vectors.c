/*
 * Runs every case of tests/vectors/retry.json through the C ABI's retry policy, budget and
 * calls (llmr_retry_*), comparing each step with its "expect" as the core runner does (an
 * expected object matches when every field it names has the same value; "after_ms_between":
 * [lo, hi] accepts any jittered delay inside), then a few abuse cases. Everything it
 * allocates is freed, so that AddressSanitizer and valgrind can report any leak or bad access.
 *
 * Usage: retry_vectors <vectors-dir>
 * Prints "[c] retry vectors: N passed, M failed" and exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_resilience.h"
#include "vectors_common.h"

#define MAX_CALLS 16

/* Reads a non-negative number; returns 0 when the field is absent or null. */
static int opt_u64(const cJSON *obj, const char *field, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0) return 0;
    *out = (uint64_t)v->valuedouble;
    return 1;
}

/* The LlmrErrorKind whose name is `name`, or UINT32_MAX (rejected by the ABI) if none. */
static uint32_t kind_of(const char *name) {
    for (uint32_t k = 0; k <= LLMR_ERROR_KIND_UNKNOWN; k++) {
        if (strcmp(llmr_error_kind_name(k), name) == 0) return k;
    }
    return UINT32_MAX;
}

/* The decision as the vectors write it. */
static cJSON *decision_json(const LlmrDecision *d) {
    cJSON *got = cJSON_CreateObject();
    cJSON_AddStringToObject(got, "decision", llmr_retry_action_name(d->action));
    if (d->action == LLMR_RETRY_ACTION_SHRINK_CONTEXT) {
        cJSON_AddNumberToObject(got, "target_tokens", (double)d->target_tokens);
    }
    if (d->action != LLMR_RETRY_ACTION_GIVE_UP) {
        cJSON_AddNumberToObject(got, "after_ms", (double)d->after_ms);
        cJSON_AddNumberToObject(got, "attempt", d->attempt);
        return got;
    }
    cJSON *reason = cJSON_AddObjectToObject(got, "reason");
    cJSON_AddStringToObject(reason, "reason", llmr_give_up_reason_name(d->reason));
    switch (d->reason) {
        case LLMR_GIVE_UP_REASON_PERMANENT:
            cJSON_AddStringToObject(reason, "kind", llmr_error_kind_name(d->kind));
            break;
        case LLMR_GIVE_UP_REASON_ATTEMPTS_EXHAUSTED:
            cJSON_AddStringToObject(reason, "kind", llmr_error_kind_name(d->kind));
            cJSON_AddNumberToObject(reason, "retries", d->retries);
            break;
        case LLMR_GIVE_UP_REASON_WAIT_TOO_LONG:
            cJSON_AddNumberToObject(reason, "wait_ms", (double)d->wait_ms);
            cJSON_AddNumberToObject(reason, "ceiling_ms", (double)d->ceiling_ms);
            break;
        case LLMR_GIVE_UP_REASON_DEADLINE:
            cJSON_AddNumberToObject(reason, "retry_at_ms", (double)d->retry_at_ms);
            cJSON_AddNumberToObject(reason, "deadline_at_ms", (double)d->deadline_at_ms);
            break;
        default:
            break;
    }
    return got;
}

struct named_call {
    char name[64];
    LlmrRetryCall *call;
};

static LlmrResult make(const cJSON *c, const char *field, int budget, void **out) {
    char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, field));
    char *error = NULL;
    LlmrResult r = budget ? llmr_retry_budget_new(config, strlen(config), (LlmrRetryBudget **)out, &error)
                          : llmr_retry_policy_new(config, strlen(config), (LlmrRetryPolicy **)out, &error);
    if (r != LLMR_OK) printf("[c] FAIL retry: %s: %s: %s\n", field, llmr_result_name(r), error ? error : "");
    llmr_string_free(error);
    cJSON_free(config);
    return r;
}

/* Runs one case; returns 1 when every step matched (a failure is printed). */
static int run_case(const cJSON *c) {
    const char *name = str_of(c, "name");
    LlmrRetryPolicy *policy = NULL;
    LlmrRetryBudget *budget = NULL;
    struct named_call calls[MAX_CALLS];
    int ncalls = 0;
    int ok = make(c, "config", 0, (void **)&policy) == LLMR_OK && make(c, "budget", 1, (void **)&budget) == LLMR_OK;
    int i = 0;
    const cJSON *step;
    const cJSON *steps = ok ? cJSON_GetObjectItemCaseSensitive(c, "steps") : NULL;
    cJSON_ArrayForEach(step, steps) {
        uint64_t now = 0, seed = 0;
        opt_u64(step, "now_ms", &now);
        const char *op = str_of(step, "op");
        const char *call_name = str_of(step, "call");
        cJSON *got = NULL;
        LlmrResult r = LLMR_OK;
        if (strcmp(op, "start_call") == 0) {
            if (ncalls == MAX_CALLS) {
                printf("[c] FAIL retry: %s: more than %d calls\n", name, MAX_CALLS);
                ok = 0;
                break;
            }
            opt_u64(step, "seed", &seed);
            snprintf(calls[ncalls].name, sizeof calls[ncalls].name, "%s", call_name);
            r = llmr_retry_start_call(policy, now, seed, budget, &calls[ncalls].call);
            if (r == LLMR_OK) ncalls++;
        } else if (strcmp(op, "deposit") == 0) {
            r = llmr_retry_budget_deposit(budget, now);
        } else if (strcmp(op, "budget_available") == 0) {
            uint64_t n = 0;
            r = llmr_retry_budget_available(budget, now, &n);
            got = cJSON_CreateNumber((double)n);
        } else if (strcmp(op, "decide") == 0) {
            LlmrRetryCall *call = NULL;
            for (int k = ncalls - 1; k >= 0 && !call; k--) {
                if (strcmp(calls[k].name, call_name) == 0) call = calls[k].call;
            }
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(step, "failure");
            LlmrFailure failure = {0};
            failure.kind = kind_of(str_of(f, "kind"));
            failure.retryable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "retryable"));
            failure.has_retry_after_ms = opt_u64(f, "retry_after_ms", &failure.retry_after_ms);
            failure.has_limit_tokens = opt_u64(f, "limit_tokens", &failure.limit_tokens);
            failure.has_requested_tokens = opt_u64(f, "requested_tokens", &failure.requested_tokens);
            uint64_t tokens = 0;
            bool has_tokens = opt_u64(step, "request_tokens", &tokens);
            LlmrDecision d;
            r = llmr_retry_decide(policy, call, &failure, now, has_tokens, tokens, budget, &d);
            if (r == LLMR_OK) {
                got = decision_json(&d);
                const cJSON *between = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(step, "expect"), "after_ms_between");
                if (cJSON_GetArraySize(between) == 2 && d.action != LLMR_RETRY_ACTION_GIVE_UP) {
                    double lo = cJSON_GetArrayItem(between, 0)->valuedouble;
                    double hi = cJSON_GetArrayItem(between, 1)->valuedouble;
                    double after = (double)d.after_ms;
                    cJSON_AddItemToObject(got, "after_ms_between",
                                          lo <= after && after <= hi ? cJSON_Duplicate(between, 1)
                                                                     : cJSON_CreateNumber(after));
                }
            }
        } else {
            printf("[c] FAIL retry: %s: step %d: unknown op %s\n", name, i, op);
            ok = 0;
            break;
        }
        if (r != LLMR_OK) {
            printf("[c] FAIL retry: %s: step %d (%s): %s\n", name, i, op, llmr_result_name(r));
            cJSON_Delete(got);
            ok = 0;
            break;
        }
        const cJSON *expect = cJSON_GetObjectItemCaseSensitive(step, "expect");
        if (got && expect && !matches(expect, got)) {
            char *e = cJSON_PrintUnformatted(expect), *g = cJSON_PrintUnformatted(got);
            printf("[c] FAIL retry: %s: step %d (%s): expected %s, got %s\n", name, i, op, e, g);
            cJSON_free(e);
            cJSON_free(g);
            ok = 0;
        }
        cJSON_Delete(got);
        i++;
        if (!ok) break;
    }
    for (int k = 0; k < ncalls; k++) llmr_retry_call_free(calls[k].call);
    llmr_retry_budget_free(budget);
    llmr_retry_policy_free(policy);
    return ok;
}

static int abuse_passed, abuse_failed;
#define ABUSE(cond, what)                                                    \
    do {                                                                     \
        if (cond) {                                                          \
            abuse_passed++;                                                  \
        } else {                                                             \
            abuse_failed++;                                                  \
            printf("[c] FAIL retry abuse: %s (line %d)\n", what, __LINE__);  \
        }                                                                    \
    } while (0)

static void run_abuse(void) {
    LlmrRetryPolicy *p = NULL;
    LlmrRetryBudget *b = NULL;
    LlmrRetryCall *c = NULL;
    char *error = NULL;
    const char *bad = "{\"base_delay_ms\":0,\"shrink_percent\":100}";
    ABUSE(llmr_retry_policy_new(bad, strlen(bad), &p, &error) == LLMR_INVALID_CONFIG && p == NULL && error &&
              strstr(error, "base_delay_ms") && strstr(error, "shrink_percent"),
          "a bad policy lists every problem");
    llmr_string_free(error);
    ABUSE(llmr_retry_budget_new("{\"window_ms\":1}", 15, &b, &error) == LLMR_INVALID_CONFIG && b == NULL && error,
          "a bad budget is rejected");
    llmr_string_free(error);
    ABUSE(llmr_retry_policy_new("{}", 2, &p, NULL) == LLMR_OK && p, "default policy");
    ABUSE(llmr_retry_budget_new("{}", 2, &b, NULL) == LLMR_OK && b, "default budget");
    ABUSE(llmr_retry_start_call(NULL, 0, 1, b, &c) == LLMR_NULL_PARAMETER && c == NULL, "NULL policy");
    ABUSE(llmr_retry_start_call(p, 0, 1, NULL, &c) == LLMR_OK && c, "a call without a budget");
    LlmrFailure f = {.kind = LLMR_ERROR_KIND_TIMEOUT, .retryable = true};
    LlmrDecision d;
    ABUSE(llmr_retry_decide(p, c, NULL, 0, false, 0, b, &d) == LLMR_NULL_PARAMETER, "NULL failure");
    ABUSE(llmr_retry_decide(p, NULL, &f, 0, false, 0, b, &d) == LLMR_NULL_PARAMETER, "NULL call");
    f.kind = 13;
    ABUSE(llmr_retry_decide(p, c, &f, 0, false, 0, b, &d) == LLMR_INVALID_ARGUMENT && d.attempt == 0,
          "a kind outside the enum");
    f.kind = LLMR_ERROR_KIND_TIMEOUT;
    ABUSE(llmr_retry_decide(p, c, &f, 0, false, 0, NULL, &d) == LLMR_OK && d.action == LLMR_RETRY_ACTION_RETRY &&
              d.attempt == 2,
          "a retry without a budget");
    uint64_t n = 0;
    ABUSE(llmr_retry_budget_available(b, 0, &n) == LLMR_OK && n == 100, "no deposit, no withdrawal");
    ABUSE(strcmp(llmr_give_up_reason_name(99), "invalid-reason") == 0, "reason name out of range");
    llmr_retry_call_free(c);
    llmr_retry_call_free(NULL);
    llmr_retry_budget_free(b);
    llmr_retry_budget_free(NULL);
    llmr_retry_policy_free(p);
    llmr_retry_policy_free(NULL);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <vectors-dir>\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/retry.json", argv[1]);
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
    printf("[c] retry abuse cases: %d passed, %d failed\n", abuse_passed, abuse_failed);
    printf("[c] retry vectors: %d passed, %d failed\n", passed, failed);
    return failed || abuse_failed ? 1 : 0;
}
