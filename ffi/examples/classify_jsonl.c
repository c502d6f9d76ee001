/*
 * classify_jsonl: classify failed LLM API calls from JSON lines, through the C ABI.
 *
 * Reads lines {"status":…, "headers":{…}, "body":"…", "transport":"…", "wall_clock_ms":…}
 * (every field optional) from stdin and prints one classification JSON object per line, with
 * the same fields as `llmr classify --jsonl`. A malformed line prints {"error":…,"line":N}.
 * Used by scripts/demo.py to show that C gets the same answers as every other surface.
 *
 * Build (from the repository root, after `cargo build --release -p llm-resilience-ffi`):
 *   cc -I ffi/include ffi/examples/classify_jsonl.c target/release/libllm_resilience_ffi.a \
 *      $(pkg-config --cflags --libs libcjson) -ldl -lpthread -lm -o classify_jsonl
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_resilience.h"

/* Adds `value` to `obj` as a JSON string, or null when absent. */
static void add_string(cJSON *obj, const char *name, const char *value) {
  if (value != NULL) {
    cJSON_AddStringToObject(obj, name, value);
  } else {
    cJSON_AddNullToObject(obj, name);
  }
}

/* Adds an optional unsigned number (exact up to 2^53, far above any real value here). */
static void add_number(cJSON *obj, const char *name, bool present, uint64_t value) {
  if (present) {
    cJSON_AddNumberToObject(obj, name, (double)value);
  } else {
    cJSON_AddNullToObject(obj, name);
  }
}

static void print_error(const char *message, unsigned long line_no) {
  cJSON *out = cJSON_CreateObject();
  cJSON_AddStringToObject(out, "error", message);
  cJSON_AddNumberToObject(out, "line", (double)line_no);
  char *text = cJSON_PrintUnformatted(out);
  puts(text);
  cJSON_free(text);
  cJSON_Delete(out);
}

/* Classifies one parsed line; returns 0 on success. */
static int classify_line(const cJSON *in, unsigned long line_no) {
  LlmrClassifyInput input;
  memset(&input, 0, sizeof input);

  const cJSON *status = cJSON_GetObjectItemCaseSensitive(in, "status");
  if (cJSON_IsNumber(status)) {
    input.has_status = true;
    input.status = (uint16_t)status->valuedouble;
  }
  const cJSON *headers = cJSON_GetObjectItemCaseSensitive(in, "headers");
  int header_count = cJSON_IsObject(headers) ? cJSON_GetArraySize(headers) : 0;
  LlmrHeader *list = calloc((size_t)(header_count > 0 ? header_count : 1), sizeof *list);
  if (list == NULL) {
    print_error("out of memory", line_no);
    return 1;
  }
  size_t n = 0;
  const cJSON *header = NULL;
  if (header_count > 0) {
    cJSON_ArrayForEach(header, headers) {
      if (!cJSON_IsString(header)) continue;
      list[n].name = header->string;
      list[n].name_len = strlen(header->string);
      list[n].value = header->valuestring;
      list[n].value_len = strlen(header->valuestring);
      n++;
    }
  }
  input.headers = list;
  input.headers_len = n;
  const cJSON *body = cJSON_GetObjectItemCaseSensitive(in, "body");
  if (cJSON_IsString(body)) {
    input.body = (const uint8_t *)body->valuestring;
    input.body_len = strlen(body->valuestring);
  }
  const cJSON *transport = cJSON_GetObjectItemCaseSensitive(in, "transport");
  if (cJSON_IsString(transport)) {
    input.transport = transport->valuestring;
    input.transport_len = strlen(transport->valuestring);
  }
  const cJSON *wall = cJSON_GetObjectItemCaseSensitive(in, "wall_clock_ms");
  if (cJSON_IsNumber(wall)) {
    input.has_wall_clock_ms = true;
    input.wall_clock_ms = (uint64_t)wall->valuedouble;
  }

  LlmrClassification c;
  LlmrResult result = llmr_classify(&input, &c);
  free(list);
  if (result != LLMR_OK) {
    print_error(llmr_result_name(result), line_no);
    return 1;
  }
  cJSON *out = cJSON_CreateObject();
  cJSON_AddStringToObject(out, "kind", llmr_error_kind_name(c.kind));
  cJSON_AddBoolToObject(out, "retryable", c.retryable);
  add_number(out, "retry_after_ms", c.has_retry_after_ms, c.retry_after_ms);
  add_number(out, "limit_tokens", c.has_limit_tokens, c.limit_tokens);
  add_number(out, "requested_tokens", c.has_requested_tokens, c.requested_tokens);
  add_string(out, "provider", c.provider);
  add_string(out, "code", c.code);
  add_string(out, "error_type", c.error_type);
  add_string(out, "message", c.message);
  llmr_classification_free(&c);
  char *text = cJSON_PrintUnformatted(out);
  puts(text);
  cJSON_free(text);
  cJSON_Delete(out);
  return 0;
}

int main(void) {
  char *line = NULL;
  size_t capacity = 0;
  ssize_t length;
  unsigned long line_no = 0;
  int failures = 0;
  while ((length = getline(&line, &capacity, stdin)) != -1) {
    line_no++;
    if (length <= 1) continue;
    cJSON *in = cJSON_ParseWithLength(line, (size_t)length);
    if (!cJSON_IsObject(in)) {
      print_error("not a JSON object", line_no);
      failures++;
    } else {
      failures += classify_line(in, line_no);
    }
    cJSON_Delete(in);
  }
  free(line);
  return failures == 0 ? 0 : 1;
}
