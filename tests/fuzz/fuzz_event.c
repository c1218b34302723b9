/* libFuzzer target: provisioning and sync requests exactly as they come off
 * the topics (event.c). Any input must parse or be refused with a reason,
 * never crash, leak or read out of bounds; a parsed event must be whole. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zw/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errstr[512], *id = NULL;
    zw_event_t ev;
    zw_sync_request_t req;

    memset(&ev, 0, sizeof(ev));
    if (zw_event_parse((const char *)data, size, 1 << 20, &ev, &id, errstr, sizeof(errstr)) ==
        ZW_EVENT_OK) {
        /* What the rest of the worker relies on once an event is valid. */
        if (!ev.tenant || !ev.event_id || !ev.person.external_id)
            __builtin_trap();
        (void)zw_event_type_name(ev.type);
    }
    zw_event_cleanup(&ev);
    free(id);
    id = NULL;
    memset(&req, 0, sizeof(req));
    if (zw_sync_request_parse((const char *)data, size, 1 << 20, &req, &id, errstr,
                              sizeof(errstr)) == ZW_EVENT_OK) {
        if (!req.tenant || !req.request_id)
            __builtin_trap();
    }
    zw_sync_request_cleanup(&req);
    free(id);
    return 0;
}
