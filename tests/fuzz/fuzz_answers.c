/* libFuzzer target: what Zendesk answers, read by the worker's pure parsers:
 * lookups (show_many, users search), a user write's answer, membership
 * listings and the changes computed from them, snapshot pages of both walks
 * and the users they hold, and error bodies. Any bytes must be read or
 * refused, never crash, leak or read out of bounds. */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zw/snapshot.h"
#include "zw/users.h"
#include "zw/zendesk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void users_and_pages(json_object *root)
{
    static const int64_t wanted[] = {10, 11, 12};
    json_object *picked, *acc = NULL, *copy;
    const char *after;
    int64_t *ops = NULL;
    size_t n_ops = 0;
    zw_snapshot_page_t page;

    (void)zw_users_is_list(root);
    picked = zw_users_pick(root, "E000001");
    json_object_put(picked);
    (void)zw_users_answer_id(root);
    if (zw_users_memberships_page(root, &acc, &after) == 0 &&
        zw_users_group_ops(acc, wanted, 3, &ops, &n_ops) == 0)
        free(ops);
    json_object_put(acc);
    for (int incremental = 0; incremental < 2; incremental++) {
        if (zw_snapshot_page_parse(root, incremental, &page) != 0)
            continue;
        for (size_t i = 0; i < json_object_array_length(page.users); i++) {
            copy = zw_snapshot_user(json_object_array_get_idx(page.users, i));
            json_object_put(copy);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    zw_http_t req;
    json_object *root;
    char code[128], *body = malloc(size + 1);
    int64_t start;

    if (!body)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';
    memset(&req, 0, sizeof(req));
    req.response = body;
    req.response_len = size;
    req.status = 422;
    root = zw_http_json(&req);
    if (root)
        users_and_pages(root);
    json_object_put(root);
    zw_http_error_code(&req, code, sizeof(code));
    (void)zw_snapshot_cursor_start_time(body, &start);
    free(body);
    return 0;
}
