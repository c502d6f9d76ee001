/*
 * Runs tests/vectors/context.json through the C ABI: every "cases" entry through
 * llmr_context_trim with the upper-bound counter (llmr_token_counter_upper_bound), every
 * "next_budget" entry through llmr_context_next_budget, comparing with "expect" /
 * "expect_error" as the core runner does (an expected object matches when every field it names
 * has the same value). Then a few abuse cases (NULLs, bad UTF-8, bad JSON, too large) and a
 * count with the exact o200k_base counter. Everything it allocates is freed, so that
 * AddressSanitizer and valgrind can report any leak or bad access in the library.
 *
 * Usage: context_vectors <vectors-dir>
 * Prints "[c] context vectors: N passed, M failed" and exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_resilience.h"
#include "vectors_common.h"

/* Compares `got` (owned, deleted here) with the case's expect or expect_error. */
static int judge(const cJSON *c, const char *what, LlmrResult r, cJSON *got) {
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(c, "expect");
    const cJSON *expect_error = cJSON_GetObjectItemCaseSensitive(c, "expect_error");
    int ok;
    if ((expect != NULL) == (expect_error != NULL)) {
        ok = 0;
    } else if (expect) {
        ok = r == LLMR_OK && matches(expect, got);
    } else {
        ok = r != LLMR_OK && matches(expect_error, got);
    }
    if (!ok) {
        char *text = got ? cJSON_PrintUnformatted(got) : NULL;
        printf("[c] FAIL context %s: %s: %s: %s\n", what, str_of(c, "name"), llmr_result_name(r),
               text ? text : "(nothing)");
        cJSON_free(text);
    }
    cJSON_Delete(got);
    return ok;
}

/* Runs one trimming case; returns 1 when it matched (a failure is printed). */
static int run_trim(const cJSON *c, const LlmrTokenCounter *counter) {
    char *budget = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "budget"));
    char *input = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "input"));
    char *result = NULL, *error = NULL;
    LlmrResult r = llmr_context_trim(budget, strlen(budget), input, strlen(input), counter,
                                     &result, &error);
    cJSON_free(budget);
    cJSON_free(input);
    cJSON *got = cJSON_Parse(r == LLMR_OK ? result : (error ? error : "null"));
    llmr_string_free(result);
    llmr_string_free(error);
    return judge(c, "trim", r, got);
}

/* Runs one next-budget case. */
static int run_next(const cJSON *c) {
    char *failure = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "failure"));
    char *current = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "current"));
    char *retry = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "retry"));
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(c, "request_tokens");
    char *result = NULL, *error = NULL;
    LlmrResult r = llmr_context_next_budget(
        failure, strlen(failure), current, strlen(current), cJSON_IsNumber(tokens),
        cJSON_IsNumber(tokens) ? (uint64_t)tokens->valuedouble : 0, retry, strlen(retry), &result,
        &error);
    cJSON_free(failure);
    cJSON_free(current);
    cJSON_free(retry);
    cJSON *got = NULL;
    if (r == LLMR_OK) {
        cJSON *out = cJSON_Parse(result);
        got = cJSON_CreateObject();
        cJSON_AddNumberToObject(got, "limit_tokens", (double)u64_of(out, "limit_tokens"));
        cJSON_AddNumberToObject(
            got, "context_window",
            (double)u64_of(cJSON_GetObjectItemCaseSensitive(out, "budget"), "context_window"));
        cJSON_Delete(out);
    } else {
        got = cJSON_Parse(error ? error : "null");
    }
    llmr_string_free(result);
    llmr_string_free(error);
    return judge(c, "next_budget", r, got);
}

static int abuse_passed, abuse_failed;
#define ABUSE(cond, what)                                                   \
    do {                                                                    \
        if (cond) {                                                         \
            abuse_passed++;                                                 \
        } else {                                                            \
            abuse_failed++;                                                 \
            printf("[c] FAIL context abuse: %s (line %d)\n", what, __LINE__); \
        }                                                                   \
    } while (0)

static void run_abuse(const LlmrTokenCounter *upper) {
    LlmrTokenCounter *exact = NULL;
    ABUSE(llmr_token_counter_exact(0, &exact) == LLMR_OK && exact, "exact o200k counter");
    LlmrTokenCounter *none = NULL;
    ABUSE(llmr_token_counter_exact(9, &none) == LLMR_INVALID_ARGUMENT && !none, "bad encoding");
    ABUSE(llmr_token_counter_exact(0, NULL) == LLMR_NULL_PARAMETER, "NULL out");
    uint64_t n = 99;
    ABUSE(llmr_token_counter_count_text(exact, "hello world", 11, &n) == LLMR_OK && n == 2,
          "hello world is 2 tokens");
    ABUSE(llmr_token_counter_count_text(upper, "hello world", 11, &n) == LLMR_OK && n >= 2,
          "the bound is not lower");
    ABUSE(llmr_token_counter_count_text(NULL, "x", 1, &n) == LLMR_NULL_PARAMETER && n == 0,
          "NULL counter");
    ABUSE(llmr_token_counter_count_text(exact, NULL, 3, &n) == LLMR_NULL_PARAMETER, "NULL text");
    ABUSE(llmr_token_counter_count_text(exact, NULL, 0, &n) == LLMR_OK && n == 0, "empty text");
    ABUSE(llmr_token_counter_count_text(exact, "a\xff", 2, &n) == LLMR_INVALID_UTF8, "bad UTF-8");
    size_t big_len = LLMR_LIMIT_TOKENIZE_BYTES + 1;
    char *big = malloc(big_len);
    if (big) {
        memset(big, 'a', big_len);
        ABUSE(llmr_token_counter_count_text(exact, big, big_len, &n) == LLMR_TOO_LARGE_TO_COUNT,
              "too large to count");
        free(big);
    }
    ABUSE(llmr_token_counter_count_text(exact, "x", (size_t)-1, &n) == LLMR_INPUT_TOO_LARGE,
          "negative length");
    const char *msgs = "[{\"role\":\"user\",\"content\":\"hi\"}]";
    ABUSE(llmr_token_counter_count_messages(exact, msgs, strlen(msgs), NULL, 0, &n, NULL) ==
                  LLMR_OK &&
              n > 0,
          "count messages");
    char *error = NULL;
    ABUSE(llmr_token_counter_count_messages(exact, "[", 1, NULL, 0, &n, &error) ==
                  LLMR_INVALID_CONFIG &&
              error,
          "bad messages JSON");
    llmr_string_free(error);
    error = NULL;
    char *result = NULL;
    const char *input = "{\"system\":\"s\",\"latest\":{\"role\":\"user\",\"content\":\"q\"}}";
    ABUSE(llmr_context_trim("{}", 2, input, strlen(input), NULL, &result, NULL) ==
                  LLMR_NULL_PARAMETER &&
              !result,
          "trim NULL counter");
    ABUSE(llmr_context_trim("{}", 2, input, strlen(input), exact, NULL, NULL) ==
              LLMR_NULL_PARAMETER,
          "trim NULL out");
    ABUSE(llmr_context_trim("{\"context_window\":0}", 20, input, strlen(input), exact, &result,
                            &error) == LLMR_INVALID_CONFIG &&
              error && strstr(error, "context_window"),
          "bad budget");
    llmr_string_free(error);
    error = NULL;
    ABUSE(llmr_context_trim("{}", 2, "{\"system\":\"\xff\"}", 14, exact, &result, &error) ==
                  LLMR_INVALID_CONFIG &&
              error,
          "bad UTF-8 input");
    llmr_string_free(error);
    error = NULL;
    const char *tiny = "{\"context_window\":10,\"reserved_output_tokens\":1,"
                       "\"safety_margin_tokens\":1}";
    ABUSE(llmr_context_trim(tiny, strlen(tiny), input, strlen(input), exact, &result, &error) == LLMR_DOES_NOT_FIT &&
              error && strstr(error, "\"does-not-fit\""),
          "does not fit");
    llmr_string_free(error);
    error = NULL;
    ABUSE(llmr_context_trim("{}", 2, input, strlen(input), exact, &result, &error) == LLMR_OK &&
              result && !error,
          "trim with the exact counter");
    llmr_string_free(result);
    result = NULL;
    ABUSE(llmr_context_next_budget("{\"kind\":\"timeout\",\"retryable\":true}", 35, "{}", 2, false,
                                   0, "{}", 2, &result, &error) == LLMR_CONTEXT_REJECTED &&
              !result && error && strstr(error, "not-overflow"),
          "next budget of a timeout");
    llmr_string_free(error);
    llmr_token_counter_free(exact);
    llmr_token_counter_free(NULL);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <vectors-dir>\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/context.json", argv[1]);
    char *text = read_file(path);
    cJSON *file = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(file, "cases");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(file, "next_budget");
    if (!cJSON_IsArray(cases) || cJSON_GetArraySize(cases) == 0 || !cJSON_IsArray(next) ||
        cJSON_GetArraySize(next) == 0) {
        printf("[c] FAIL cannot read the cases of %s\n", path);
        cJSON_Delete(file);
        return 1;
    }
    LlmrTokenCounter *upper = NULL;
    if (llmr_token_counter_upper_bound(&upper) != LLMR_OK) {
        printf("[c] FAIL no upper-bound counter\n");
        cJSON_Delete(file);
        return 1;
    }
    int passed = 0, failed = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        if (run_trim(c, upper)) passed++;
        else failed++;
    }
    cJSON_ArrayForEach(c, next) {
        if (run_next(c)) passed++;
        else failed++;
    }
    cJSON_Delete(file);
    run_abuse(upper);
    llmr_token_counter_free(upper);
    printf("[c] context abuse cases: %d passed, %d failed\n", abuse_passed, abuse_failed);
    printf("[c] context vectors: %d passed, %d failed\n", passed, failed);
    return failed || abuse_failed ? 1 : 0;
}
