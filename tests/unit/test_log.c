/* Unit tests for log.c: one record is one line in both formats, whatever an
 * event's fields hold (no forged lines), and a record too long for a line is
 * cut and still ends as it should (JSON that parses, a newline). */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zw/log.h"

#define LINE_MAX 8192

static char *out_buf;
static size_t out_len;
static FILE *out;

static void open_out(zw_log_format_t format)
{
    out_buf = NULL;
    out_len = 0;
    out = open_memstream(&out_buf, &out_len);
    ck_assert_ptr_nonnull(out);
    zw_log_setup(ZW_LOG_DEBUG, format, out);
}

/* What was written, closed; the caller frees it. */
static char *close_out(void)
{
    fclose(out);
    zw_log_setup(ZW_LOG_INFO, ZW_LOG_FORMAT_JSON, stderr);
    return out_buf;
}

static int count_char(const char *s, char c)
{
    int n = 0;

    for (; *s; s++)
        n += *s == c;
    return n;
}

/* The one line written, parsed strictly (valid UTF-8 too). */
static json_object *parse_line(const char *text)
{
    json_tokener *tok = json_tokener_new();
    json_object *o;
    size_t len = strlen(text);

    ck_assert_int_eq(count_char(text, '\n'), 1);
    ck_assert_msg(len > 0 && text[len - 1] == '\n', "the line does not end: ...%s",
                  len > 40 ? text + len - 40 : text);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, text, (int)(len - 1));
    ck_assert_msg(o != NULL, "not JSON (%s): %.200s", json_tokener_error_desc(json_tokener_get_error(tok)),
                  text);
    json_tokener_free(tok);
    return o;
}

static const char *member(json_object *o, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* A newline, a quote and a control character in an event's id stay inside
 * the JSON string: one line, and the value comes back as it was. */
START_TEST(test_json_escapes_what_could_forge_a_line)
{
    const char *id = "e1\n{\"level\":\"error\",\"msg\":\"forged\"}\r\x01\x7f";
    json_object *o;
    char *text;

    open_out(ZW_LOG_FORMAT_JSON);
    ZW_LOG(ZW_LOG_INFO, "event done", ZW_LF_STR("event_id", id), ZW_LF_INT("n", 3));
    text = close_out();
    o = parse_line(text);
    ck_assert_str_eq(member(o, "msg"), "event done");
    ck_assert_str_eq(member(o, "event_id"), id);
    ck_assert_str_eq(member(o, "n"), "3");
    ck_assert_ptr_null(member(o, "truncated"));
    json_object_put(o);
    free(text);
}
END_TEST

/* The same in text: the newline is escaped inside a quoted value, so the
 * forged record does not start a line of its own. */
START_TEST(test_text_escapes_what_could_forge_a_line)
{
    char *text;

    open_out(ZW_LOG_FORMAT_TEXT);
    ZW_LOG(ZW_LOG_INFO, "event done", ZW_LF_STR("event_id", "e1\n2026-01-01T00:00:00Z error forged"),
           ZW_LF_STR("tenant", "acme"), ZW_LF_STR("empty", ""), ZW_LF_STR("q", "a=\"b\""));
    text = close_out();
    ck_assert_int_eq(count_char(text, '\n'), 1);
    ck_assert_ptr_nonnull(strstr(text, " info event done "));
    ck_assert_ptr_nonnull(strstr(text, " event_id=\"e1\\n2026-01-01T00:00:00Z error forged\""));
    ck_assert_ptr_nonnull(strstr(text, " tenant=acme"));
    ck_assert_ptr_nonnull(strstr(text, " empty=\"\""));
    ck_assert_ptr_nonnull(strstr(text, " q=\"a=\\\"b\\\"\""));
    free(text);
}
END_TEST

/* A message with a newline (an error string from a library) in text. */
START_TEST(test_text_message_newline)
{
    char *text;

    open_out(ZW_LOG_FORMAT_TEXT);
    zw_logf(ZW_LOG_ERROR, "cannot connect:\nrefused");
    text = close_out();
    ck_assert_int_eq(count_char(text, '\n'), 1);
    ck_assert_ptr_nonnull(strstr(text, "cannot connect:\\nrefused\n"));
    free(text);
}
END_TEST

/* A string value longer than a line: cut inside the string, closed, marked,
 * ended; the line is never longer than its buffer. */
START_TEST(test_json_long_value_is_cut_and_parses)
{
    size_t n = 20000;
    char *big = malloc(n + 1), *text;
    json_object *o;

    memset(big, 'x', n);
    big[n] = '\0';
    open_out(ZW_LOG_FORMAT_JSON);
    ZW_LOG(ZW_LOG_WARN, "big", ZW_LF_STR("tenant", "acme"), ZW_LF_STR("body", big),
           ZW_LF_STR("after", "never"));
    text = close_out();
    ck_assert_uint_le(strlen(text), LINE_MAX);
    o = parse_line(text);
    ck_assert_str_eq(member(o, "tenant"), "acme");
    ck_assert_ptr_nonnull(member(o, "body"));
    ck_assert_uint_gt(strlen(member(o, "body")), 7000);
    ck_assert_ptr_null(member(o, "after"));
    ck_assert_str_eq(member(o, "truncated"), "true");
    json_object_put(o);
    free(text);
    free(big);
}
END_TEST

/* The cut falls at every kind of place (in a key, a number, an escape, a
 * UTF-8 sequence): for each length of a filler field, the line parses as
 * strict, valid-UTF-8 JSON and ends with a newline. */
START_TEST(test_json_cut_anywhere_parses)
{
    char filler[LINE_MAX];
    const char *tricky = "\xc3\xa9\xe2\x82\xac\"\\\n\x01\xf0\x9f\x98\x80";

    for (size_t len = 7900; len < 8200; len++) {
        char *text;
        json_object *o;

        memset(filler, 'f', len < sizeof(filler) ? len : sizeof(filler) - 1);
        filler[len < sizeof(filler) ? len : sizeof(filler) - 1] = '\0';
        open_out(ZW_LOG_FORMAT_JSON);
        ZW_LOG(ZW_LOG_INFO, "m", ZW_LF_STR("a", filler + (len % 97)), ZW_LF_INT("n", 1234567890),
               ZW_LF_STR("long_key_name_here", tricky), ZW_LF_STR("u", tricky),
               ZW_LF_STR("b", tricky), ZW_LF_STR("c", tricky));
        text = close_out();
        ck_assert_uint_le(strlen(text), LINE_MAX);
        o = parse_line(text);
        json_object_put(o);
        free(text);
    }
}
END_TEST

/* Text lines too long are cut, marked and still end with a newline. */
START_TEST(test_text_long_line_ends)
{
    size_t n = 9000;
    char *big = malloc(n + 1), *text;

    memset(big, 'y', n);
    big[n] = '\0';
    open_out(ZW_LOG_FORMAT_TEXT);
    ZW_LOG(ZW_LOG_INFO, "big", ZW_LF_STR("body", big), ZW_LF_STR("with space", "a b"));
    text = close_out();
    ck_assert_uint_le(strlen(text), LINE_MAX);
    ck_assert_int_eq(count_char(text, '\n'), 1);
    ck_assert_ptr_nonnull(strstr(text, " truncated=true\n"));
    free(text);
    free(big);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_json_escapes_what_could_forge_a_line);
    tcase_add_test(tc, test_text_escapes_what_could_forge_a_line);
    tcase_add_test(tc, test_text_message_newline);
    tcase_add_test(tc, test_json_long_value_is_cut_and_parses);
    tcase_add_test(tc, test_json_cut_anywhere_parses);
    tcase_add_test(tc, test_text_long_line_ends);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
